"""A cache of decoded image folders, so a second run over 50,000 photos does not decode them again, and the file the
training reads its pixels from.

Two files per key: ``<key>.pixels``, the uint8 pixels as fixed-size rows (one slot per decoded file, written as
the images are decoded, read a batch at a time through ``cae.data.rows.RowFile``: a folder never has to fit in
memory), and ``<key>.npz``, what describes them: the slot of each decoded file, labels, the relative paths (and
those of undecodable files, with Pillow's error), the class names, the resolved image size and colour mode, the
channels the rows were written with, and how many large images the default size shrank (so a run that reads the
entry warns as the one that decoded it did). The key is the sha256 of everything the decoded pixels depend on: the
sorted relative paths with each file's size and mtime_ns, the *requested* image size and colour mode, whether the
folder is labelled, FORMAT_VERSION and Pillow's version. An added, removed or modified file gives a new key, so the
folder is read again; the split percentages are not in the key (splits are computed from the paths after the
cache). Files live in ``<$XDG_CACHE_HOME or ~/.cache>/cae/images``, never in the image folder. Both are written to
temporary files renamed into place, the pixels first: a reader that finds the ``.npz`` finds its pixels whole.
Stale entries are not removed: delete the directory to reclaim the space.
"""

import hashlib
import json
import os
import tempfile

import numpy as np
import PIL
from absl import logging

from cae.data.rows import RowFile

FORMAT_VERSION = 3  # 1 held the pixels inside the .npz; 2 had no "shrunk"
_ARRAYS = ("version", "slots", "labels", "paths", "bad_paths", "bad_errors", "class_names",
           "image_size", "color_mode", "shrunk")
PIXELS_SUFFIX = ".pixels"


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
    """The entry's .npz; its pixels are beside it (``pixels_path``)."""
    return os.path.join(cache_dir or default_dir(), cache_key + ".npz")


def pixels_path(path):
    return path[:-len(".npz")] + PIXELS_SUFFIX


def read(path, relative_paths):
    """The cached entry as a dict, its pixels a RowFile (None when absent, or unreadable: that is logged and the
    folder decoded again).

    ``relative_paths`` (the folder's listing) must be exactly the cached decoded and undecodable paths.
    """
    if not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            entry = {name: f[name] for name in _ARRAYS}
        if int(entry["version"]) != FORMAT_VERSION:
            raise ValueError(f"format version {int(entry['version'])}, expected {FORMAT_VERSION}")
        entry["paths"], entry["bad_paths"] = entry["paths"].tolist(), entry["bad_paths"].tolist()
        entry["bad_errors"], entry["class_names"] = entry["bad_errors"].tolist(), tuple(entry["class_names"].tolist())
        entry["image_size"], entry["color_mode"] = int(entry["image_size"]), str(entry["color_mode"])
        entry["shrunk"] = int(entry["shrunk"])
        size, channels = entry["image_size"], 3 if entry["color_mode"] == "rgb" else 1
        entry["pixels"] = RowFile(pixels_path(path), (size, size, channels), entry["slots"])
        if (len(entry["slots"]) != len(entry["paths"]) or entry["labels"].shape != (len(entry["paths"]),)
                or len(entry["bad_paths"]) != len(entry["bad_errors"])
                or sorted(entry["paths"] + entry["bad_paths"]) != sorted(relative_paths)):
            raise ValueError("contents do not match the folder")
    except Exception as e:  # noqa: BLE001 - whatever is wrong with a cache file, it is rebuilt
        logging.warning("ignoring the unreadable image cache %s (%s); decoding the images again", path,
                        str(e).replace("\n", " "))
        return None
    return entry


class PixelWriter:
    """Where decoding writes an entry's pixels, image by image, so a folder never has to fit in memory: a
    temporary file beside the entry, renamed into place by ``finish``. ``create`` returns None (logged) where the
    cache cannot be written; a folder created for it is removed again by ``discard``."""

    def __init__(self, path, fd, tmp, created):
        self.path, self.fd, self.tmp, self.created = path, fd, tmp, created
        self.shape = None

    @classmethod
    def create(cls, path):
        directory = os.path.dirname(path)
        created = []
        parent = directory
        while parent and not os.path.exists(parent):
            created.append(parent)
            parent = os.path.dirname(parent)
        try:
            os.makedirs(directory, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=os.path.basename(pixels_path(path)) + ".",
                                       suffix=".tmp")
        except OSError as e:
            logging.warning("could not write the image cache %s (%s): decoding into memory, and the next run decodes "
                            "the images again", path, e)
            _remove_dirs(created)
            return None
        return cls(path, fd, tmp, created)

    def open(self, count, image_size, channels):
        """Room for ``count`` images of image_size x image_size x channels (rows of zeros until written)."""
        self.shape = (image_size, image_size, channels)
        os.ftruncate(self.fd, count * image_size * image_size * channels)

    def put(self, slot, image):
        """Write one decoded image (a gray [S, S, 1] image is repeated over three channels)."""
        image = np.broadcast_to(image, self.shape)
        os.pwrite(self.fd, image.tobytes(), slot * image.size)

    def finish(self, slots, gray):
        """The written pixels, renamed into place, as a RowFile over ``slots``; ``gray``: rows written with three
        equal channels keep one (rewritten a block of rows at a time, so memory stays small)."""
        if gray:
            self._keep_one_channel()
        os.close(self.fd)
        self.fd = None
        os.replace(self.tmp, pixels_path(self.path))
        self.tmp = None
        return RowFile(pixels_path(self.path), self.shape, slots)

    def _keep_one_channel(self, block=4096):
        height, width, _ = self.shape
        rgb = RowFile(self.tmp, self.shape)
        gray_fd, gray_tmp = tempfile.mkstemp(dir=os.path.dirname(self.tmp), prefix=os.path.basename(self.tmp) + ".",
                                             suffix=".tmp")
        try:
            for start in range(0, len(rgb), block):
                os.write(gray_fd, np.asarray(rgb[start:start + block])[:, ::3].tobytes())
        except BaseException:
            os.close(gray_fd)
            os.remove(gray_tmp)
            raise
        os.close(self.fd)
        os.remove(self.tmp)
        self.fd, self.tmp, self.shape = gray_fd, gray_tmp, (height, width, 1)

    def discard(self):
        """Remove what was written (after a failure: nothing of this entry stays behind)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.tmp is not None and os.path.exists(self.tmp):
            os.remove(self.tmp)
        self.tmp = None
        _remove_dirs(self.created)


def _remove_dirs(directories):
    """Remove the (innermost first) ``directories`` this module created, where they are still empty."""
    for directory in directories:
        try:
            os.rmdir(directory)
        except OSError:
            return


def write(path, pixels, labels, paths, bad_paths, bad_errors, class_names, image_size, color_mode, shrunk):
    """Atomically write the description of an entry whose ``pixels`` (a RowFile) a PixelWriter has put in place;
    a failure (read-only home, full disk) is logged, never raised."""
    directory = os.path.dirname(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=os.path.basename(path) + ".", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, version=np.int64(FORMAT_VERSION), slots=pixels.slots, labels=np.asarray(labels, np.int64),
                     paths=np.asarray(paths, dtype=str), bad_paths=np.asarray(bad_paths, dtype=str),
                     bad_errors=np.asarray(bad_errors, dtype=str), class_names=np.asarray(class_names, dtype=str),
                     image_size=np.int64(image_size), color_mode=np.asarray(color_mode), shrunk=np.int64(shrunk))
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
