"""A folder of your own images as ``Datasets``: which files, which class, which split, read through the cache.

Labelled (transfer learning), the convention of Keras' ``image_dataset_from_directory`` and TensorFlow's
retrain.py: one subfolder per class, its name the class name, classes in sorted order (label = index), images
anywhere below their class folder::

    image_dir/cat/0001.jpg, image_dir/cat/more/0002.png, ..., image_dir/dog/...

Unlabelled (pretraining): every image below image_dir. Its labels only tell the Embedding Projector which
top-level subfolder an image came from (sorted; images directly in image_dir are class "." and come first).

Files: .png .jpg .jpeg .bmp .gif in any case; hidden files and folders (names starting with '.') and other files
are ignored. Class names sort by code point (as Keras and retrain.py sort them). How a file becomes S x S pixels
(crop, resize, colour, the default size) is ``cae.data.decode``'s; decoded pixels are cached (``cae.data.cache``),
and splits are computed afterwards from the paths (``cae.data.splits``).
"""

import numbers
import os

import numpy as np
from absl import logging

from cae.data import SPLITS, Datasets, Split, cache, splits
from cae.data.decode import COLOR_MODES, MAX_OWN_SIZE, POOL_THRESHOLD, decode_images
from cae.data.rows import RowFile
from cae.errors import UserError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
MIN_IMAGES_PER_CLASS = 20  # fewer gives a warning
UNLABELLED_ROOT_CLASS = "."


def load_image_dir(image_dir, image_size=None, color_mode="auto", validation_percentage=10, testing_percentage=10,
                   num_labels=None, labelled=True, skip_bad_images=False, cache_dir=None, limit_flag="num_labels",
                   workers=None, pool_threshold=POOL_THRESHOLD, fold=0):
    """Train/validation/test ``Datasets`` of the images in ``image_dir`` (see the module docstring).

    Images are uint8 rows [N, S*S*C] (row-major HWC), read from the cache's file a batch at a time (a
    cae.data.rows.RowFile; an array in memory where the cache cannot be written), ``image_shape`` (S, S, C),
    ``class_names`` the class folders. Splits are stable per file (``cae.data.splits``; ``fold`` turns them for
    cross-validation); ``num_labels`` keeps the first N training images of their hash order. Undecodable files
    raise a UserError naming the first, or with ``skip_bad_images`` are skipped with one warning. ``cache_dir``
    overrides ``cae.data.cache.default_dir()``; ``workers`` (default: one per CPU) decode in separate processes
    when the files hold more than ``pool_threshold`` bytes.


    Every check on the options and the folder comes before anything is decoded or written.
    """
    check_options(image_size, color_mode, validation_percentage, testing_percentage, fold)
    class_names, paths = list_images(image_dir, labelled)
    listed = splits.hash_split(paths, validation_percentage, testing_percentage, fold)
    _check_splits(image_dir, listed, len(paths), validation_percentage, testing_percentage)
    if num_labels is not None:
        splits.check_limit(num_labels, len(listed["train"]), limit_flag)

    entries = []
    for path in paths:
        info = os.stat(os.path.join(image_dir, path))
        entries.append((path, info.st_size, info.st_mtime_ns))
    cache_path = cache.path_for(cache.key(entries, image_size, color_mode, labelled), cache_dir)
    cached = cache.read(cache_path, paths)
    if cached is not None:
        logging.info("read %d decoded images from cache %s", len(cached["paths"]), cache_path)
        images, good, bad, errors = cached["pixels"], cached["paths"], cached["bad_paths"], cached["bad_errors"]
        image_shape, shrunk = images.image_shape, cached["shrunk"]
    else:
        images, image_shape, good, bad, errors, shrunk = _decode_into_cache(
            cache_path, image_dir, paths, image_size, color_mode, stop_at_bad=not skip_bad_images, workers=workers,
            pool_threshold=pool_threshold, total_bytes=sum(size for _, size, _ in entries))
    _report_bad(image_dir, bad, errors, skip_bad_images)
    if shrunk:  # from the cache too: a folder of scans silently at 28 pixels loses the details its classes differ by
        logging.warning("%d of %d images are larger than %d pixels and are resized to %d, the default: to keep "
                        "more of them pass --image_size (64, 96, 128) with a deeper --encoder_filters, as README's "
                        "recipe for larger photos or scans does", shrunk, len(good), MAX_OWN_SIZE, image_shape[0])
    labels = _labels(good, class_names, labelled)
    chosen = splits.hash_split(good, validation_percentage, testing_percentage, fold)
    if bad:  # what was skipped may have emptied a class or a split
        if labelled:
            counts = np.bincount(labels, minlength=len(class_names))
            for name, count in zip(class_names, counts):
                if count == 0:
                    raise UserError(f"{os.path.join(image_dir, name)}: class folder holds no decodable images")
        _check_splits(image_dir, chosen, len(good), validation_percentage, testing_percentage)
    if cached is None and isinstance(images, RowFile):
        cache.write(cache_path, images, labels, good, bad, errors, class_names, image_shape[0],
                    "rgb" if image_shape[2] == 3 else "grayscale", shrunk)
    if labelled:
        counts = np.bincount(labels, minlength=len(class_names))
        few = [f"{name} ({count})" for name, count in zip(class_names, counts) if count < MIN_IMAGES_PER_CLASS]
        if few:
            logging.warning("%s: classes with fewer than %d images: %s", image_dir, MIN_IMAGES_PER_CLASS,
                            ", ".join(few))

    if num_labels is not None:
        splits.check_limit(num_labels, len(chosen["train"]), limit_flag)
        chosen["train"] = chosen["train"][:num_labels]
    return Datasets(*(Split(images[chosen[name]], labels[chosen[name]]) for name in SPLITS),
                    image_shape=tuple(int(d) for d in image_shape), class_names=tuple(class_names))


def _decode_into_cache(cache_path, image_dir, paths, image_size, color_mode, **options):
    """decode_images with the pixels written to the cache entry's file as they come (in memory where it cannot
    be written); on any failure, nothing of the entry stays behind."""
    writer = cache.PixelWriter.create(cache_path)
    try:
        result = decode_images(image_dir, paths, image_size, color_mode, writer=writer, **options)
    except OSError as e:
        if writer is None:
            raise
        writer.discard()
        writer = None
        logging.warning("could not write the image cache %s (%s): decoding into memory, and the next run decodes "
                        "the images again", cache_path, e)
        result = decode_images(image_dir, paths, image_size, color_mode, **options)
    finally:
        if writer is not None and writer.tmp is not None:  # not finished: a bad image stopped it, or an interrupt
            writer.discard()
    return result


def load_unlabeled(image_dir, image_shape, skip_bad_images=False, flag="unlabeled_dir"):
    """Every image below ``image_dir`` (any tree), resized and converted to ``image_shape`` (S, S, C): uint8 rows
    [N, S*S*C] in memory, in path order. Undecodable files raise a UserError naming the first, or with
    ``skip_bad_images`` are skipped with one warning."""
    size, _, channels = image_shape
    _, paths = list_images(image_dir, labelled=False, flag=flag)
    rows, _, good, bad, errors, _ = decode_images(image_dir, paths, size, "rgb" if channels == 3 else "grayscale",
                                                  stop_at_bad=not skip_bad_images)
    _report_bad(image_dir, bad, errors, skip_bad_images)
    if not good:
        raise UserError(f"--{flag}={image_dir}: no decodable images in it")
    logging.info("--%s: %d unlabelled images from %s", flag, len(good), image_dir)
    return rows


def _report_bad(image_dir, bad, errors, skip_bad_images):
    """Undecodable files: a UserError naming the first, or with ``skip_bad_images`` one warning."""
    if not bad:
        return
    first = os.path.join(image_dir, bad[0])
    if not skip_bad_images:
        raise UserError(f"{first}: not a decodable image ({errors[0]}); fix or remove it, or pass --skip_bad_images")
    logging.warning("skipped %d undecodable image file(s) in %s, the first: %s (%s)", len(bad), image_dir, first,
                    errors[0])


def check_options(image_size, color_mode, validation_percentage, testing_percentage, fold=0):
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, numbers.Integral)
                                   or image_size < 8 or image_size % 4):
        raise UserError(f"--image_size={image_size}: expected a multiple of 4 that is at least 8 (the encoder "
                        f"halves the image twice and the decoder doubles it back)")
    if color_mode not in COLOR_MODES:
        raise UserError(f"--color_mode={color_mode}: expected one of {', '.join(COLOR_MODES)}")
    for flag, value in (("validation_percentage", validation_percentage), ("testing_percentage", testing_percentage)):
        if not 0 < value < 100:
            raise UserError(f"--{flag}={value}: expected a percentage above 0 and below 100")
    if validation_percentage + testing_percentage >= 100:
        raise UserError(f"--validation_percentage={validation_percentage} and --testing_percentage="
                        f"{testing_percentage} add up to {validation_percentage + testing_percentage}: expected "
                        f"less than 100 (the rest is the training split)")
    last = splits.folds(testing_percentage) - 1
    if isinstance(fold, bool) or not isinstance(fold, numbers.Integral) or not 0 <= fold <= last:
        raise UserError(f"--fold={fold}: expected 0 to {last} (--testing_percentage={testing_percentage} makes "
                        f"{last + 1} folds with disjoint test sets)")


def list_images(image_dir, labelled=True, flag="image_dir"):
    """(class names, sorted relative paths with '/' separators) of the images in ``image_dir`` (--``flag``)."""
    if not os.path.exists(image_dir):
        raise UserError(f"--{flag}={image_dir}: no such directory")
    if not os.path.isdir(image_dir):
        raise UserError(f"--{flag}={image_dir}: not a directory")
    kinds = ", ".join(IMAGE_EXTENSIONS)
    if not labelled:
        paths = _walk(image_dir, "")
        if not paths:
            raise UserError(f"{image_dir}: no images ({kinds}) in it or below it")
        tops = {p.split("/", 1)[0] for p in paths if "/" in p}
        root = (UNLABELLED_ROOT_CLASS,) if any("/" not in p for p in paths) else ()
        return root + tuple(sorted(tops)), paths
    class_names = sorted(entry.name for entry in os.scandir(image_dir)
                         if not entry.name.startswith(".") and entry.is_dir())
    if len(class_names) < 2:
        found = f" ({', '.join(class_names)})" if class_names else ""
        raise UserError(f"{image_dir}: {len(class_names)} class subfolder{'s' if len(class_names) != 1 else ''}"
                        f"{found}, expected at least 2 (one subfolder of images per class)")
    paths = []
    for name in class_names:
        found = _walk(os.path.join(image_dir, name), name + "/")
        if not found:
            raise UserError(f"{os.path.join(image_dir, name)}: class folder holds no images ({kinds})")
        paths.extend(found)
    return tuple(class_names), sorted(paths)


def _walk(directory, prefix):
    """Sorted relative paths (prefix + '/'-joined) of the image files below directory, hidden names skipped."""
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        relative = os.path.relpath(root, directory)
        relative = "" if relative == "." else relative.replace(os.sep, "/") + "/"
        found.extend(prefix + relative + f for f in files
                     if not f.startswith(".") and os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS)
    return sorted(found)


def _labels(paths, class_names, labelled):
    """int64 labels: the index of each path's first component (unlabelled: "." for a file in the folder itself)."""
    index = {name: i for i, name in enumerate(class_names)}
    if labelled:
        return np.array([index[p.split("/", 1)[0]] for p in paths], dtype=np.int64)
    return np.array([index[p.split("/", 1)[0] if "/" in p else UNLABELLED_ROOT_CLASS] for p in paths],
                    dtype=np.int64)


def _check_splits(image_dir, chosen, count, validation_percentage, testing_percentage):
    empty = [name for name in SPLITS if len(chosen[name]) == 0]
    if empty:
        raise UserError(f"{image_dir}: {count} image{'s' if count != 1 else ''} leave the {' and '.join(empty)} "
                        f"split{'s' if len(empty) > 1 else ''} empty at --validation_percentage="
                        f"{validation_percentage} --testing_percentage={testing_percentage}: add images or change "
                        f"--validation_percentage/--testing_percentage")
