"""A cache of decoded image folders, so a second run over 50,000 photos does not decode them again.

One ``.npz`` file per key: uint8 pixels [N, S, S, C], labels, the relative paths (and those of undecodable
files, with Pillow's error), the class names and the resolved image size and colour mode. The key is the sha256 of
everything the decoded pixels depend on: the sorted relative paths with each file's size and mtime_ns, the
*requested* image size and colour mode, whether the folder is labelled, FORMAT_VERSION and Pillow's version. An
added, removed or modified file gives a new key, so the folder is read again; the split percentages are not in the
key (splits are computed from the paths after the cache). Files live in ``<$XDG_CACHE_HOME or ~/.cache>/cae/images``,
never in the image folder, and are written to a temporary file renamed into place, so a reader never sees half a
file. Stale entries are not removed: delete the directory to reclaim the space.
"""

import hashlib
import json
import os
import tempfile

import numpy as np
import PIL
from absl import logging

FORMAT_VERSION = 1
_ARRAYS = ("version", "pixels", "labels", "paths", "bad_paths", "bad_errors", "class_names", "image_size",
           "color_mode")


def default_dir():
    cache_root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache_root, "cae", "images")


def key(entries, image_size, color_mode, labelled):
    """sha256 hex of the listing ``entries`` ([(relative path, size, mtime_ns)], sorted) and the request."""
    text = json.dumps({"version": FORMAT_VERSION, "pillow": PIL.__version__, "image_size": image_size,
                       "color_mode": color_mode, "labelled": bool(labelled), "files": [list(e) for e in entries]},
                      separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def path_for(cache_key, cache_dir=None):
    return os.path.join(cache_dir or default_dir(), cache_key + ".npz")


def read(path, relative_paths):
    """The cached entry as a dict (None when absent, or unreadable: that is logged and the folder decoded again).

    ``relative_paths`` (the folder's listing) must be exactly the cached decoded and undecodable paths.
    """
    if not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            entry = {name: f[name] for name in _ARRAYS}
        entry["paths"], entry["bad_paths"] = entry["paths"].tolist(), entry["bad_paths"].tolist()
        entry["bad_errors"], entry["class_names"] = entry["bad_errors"].tolist(), tuple(entry["class_names"].tolist())
        entry["image_size"], entry["color_mode"] = int(entry["image_size"]), str(entry["color_mode"])
        if int(entry["version"]) != FORMAT_VERSION:
            raise ValueError(f"format version {int(entry['version'])}, expected {FORMAT_VERSION}")
        pixels, size = entry["pixels"], entry["image_size"]
        if (pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[1:3] != (size, size)
                or len(pixels) != len(entry["paths"]) or entry["labels"].shape != (len(pixels),)
                or len(entry["bad_paths"]) != len(entry["bad_errors"])
                or sorted(entry["paths"] + entry["bad_paths"]) != sorted(relative_paths)):
            raise ValueError("contents do not match the folder")
    except Exception as e:  # noqa: BLE001 - whatever is wrong with a cache file, it is rebuilt
        logging.warning("ignoring the unreadable image cache %s (%s); decoding the images again", path,
                        str(e).replace("\n", " "))
        return None
    return entry


def write(path, pixels, labels, paths, bad_paths, bad_errors, class_names, image_size, color_mode):
    """Atomically write one entry; a failure (read-only home, full disk) is logged, never raised."""
    directory = os.path.dirname(path)
    tmp = None
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=os.path.basename(path) + ".", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, version=np.int64(FORMAT_VERSION), pixels=pixels, labels=np.asarray(labels, np.int64),
                     paths=np.asarray(paths, dtype=str), bad_paths=np.asarray(bad_paths, dtype=str),
                     bad_errors=np.asarray(bad_errors, dtype=str), class_names=np.asarray(class_names, dtype=str),
                     image_size=np.int64(image_size), color_mode=np.asarray(color_mode))
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        logging.warning("could not write the image cache %s (%s); the next run decodes the images again", path, e)
        return False
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
    logging.info("wrote %d decoded images to cache %s", len(pixels), path)
    return True
