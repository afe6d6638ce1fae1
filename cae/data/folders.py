"""A folder of your own images as ``Datasets``, decoded with Pillow.

Labelled (transfer learning), the convention of Keras' ``image_dataset_from_directory`` and TensorFlow's
retrain.py: one subfolder per class, its name the class name, classes in sorted order (label = index), images
anywhere below their class folder::

    image_dir/cat/0001.jpg, image_dir/cat/more/0002.png, ..., image_dir/dog/...

Unlabelled (pretraining): every image below image_dir. Its labels only tell the Embedding Projector which
top-level subfolder an image came from (sorted; images directly in image_dir are class "." and come first).

Files: .png .jpg .jpeg .bmp .gif in any case (a GIF's first frame); hidden files and folders (names starting with
'.') and other files are ignored. Class names sort by code point (as Keras and retrain.py sort them). A photo's
EXIF orientation is applied, so it is seen upright as a viewer shows it.

Every image becomes S x S: a non-square image is centre-cropped to a square on its shorter side, then resized.
Cropping rather than stretching or padding keeps objects at their shape and scale, and adds no artificial border
for the autoencoder to learn; what is lost is the two ends of the longer side.

Colour: transparency is composited over white. ``color_mode`` "grayscale" gives 1 channel (ITU-R 601 luma,
Pillow's ``convert("L")``), "rgb" 3 (gray images repeated), "auto" 3 if any image has colour, else 1. "auto"
looks at the decoded pixels, not at the file's colour model: an image has colour when one of its resized pixels
has R, G and B not all equal, so gray scans saved as RGB and palette images of gray colours stay 1 channel.

Size: ``image_size`` None means the images' own size when all of them are square and share one size that is a
multiple of 4 from 8 to 64; else 28 (large photos need an explicit --image_size: memory grows with its square).
The encoder's two stride-2 convolutions and the decoder's two doublings need a multiple of 4.

Decoding many files uses a pool of worker processes started with "spawn" (TensorFlow may already be loaded here,
and forking a process with TensorFlow's threads is unsafe); they import only this package. Decoded pixels are
cached (``cae.data.cache``), and splits are computed afterwards from the paths (``cae.data.splits``).
"""

import concurrent.futures
import math
import multiprocessing
import numbers
import os
import time

import numpy as np
from absl import logging
from PIL import Image, ImageOps

from cae.data import SPLITS, Datasets, Split, cache, splits
from cae.data.rows import RowFile
from cae.errors import UserError
from cae.progress import format_duration

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
COLOR_MODES = ("auto", "grayscale", "rgb")
DEFAULT_IMAGE_SIZE = 28
# The largest own size taken without --image_size: 50,000 photos of 512x512x3 would need 157 GB as float32, so a
# folder of large photos gets 28 unless the user asks for more.
MAX_OWN_SIZE = 64
MIN_IMAGES_PER_CLASS = 20  # fewer gives a warning
# Worker processes decode a folder of more bytes than this. Starting them costs about a second on 2 cores, and
# small files decode faster than that pays back: 10,000 32x32 JPEGs (5,000 img/s) and 1,500 400x300 JPEGs (2,000
# img/s, JPEG draft mode) decoded no faster with 2 workers here. Large photo collections are where they pay.
POOL_THRESHOLD = 100 * 2 ** 20
UNLABELLED_ROOT_CLASS = "."

# Pillow modes without colour; "auto" decodes these straight to one channel.
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}


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


def decode_images(image_dir, paths, image_size=None, color_mode="auto", stop_at_bad=True, workers=None,
                  pool_threshold=POOL_THRESHOLD, total_bytes=None, writer=None):
    """(uint8 rows [N, S*S*C], (S, S, C), decoded paths, undecodable paths, their errors, shrunk) for ``paths``:
    ``shrunk`` counts the images larger than MAX_OWN_SIZE that ``image_size`` None resized to the default.

    The rows are an array in memory, or with ``writer`` (a cae.data.cache.PixelWriter) a RowFile: each image goes
    to the file as it is decoded, so memory does not grow with the folder. ``image_size`` None probes every
    file's header first (see the module docstring). With ``stop_at_bad`` the work stops at the first undecodable
    file (the caller raises; rows None), so a bad folder fails fast. Worker processes start with "spawn", which
    runs the calling script's top level again: a script of yours that loads a large folder needs the usual
    ``if __name__ == "__main__":`` guard (where they cannot start, this process decodes).
    """
    workers = (os.cpu_count() or 1) if workers is None else workers
    if total_bytes is None:
        total_bytes = sum(os.path.getsize(os.path.join(image_dir, path)) for path in paths)
    sink = writer or _MemorySink()
    if workers > 1 and total_bytes > pool_threshold:
        executor = concurrent.futures.ProcessPoolExecutor(
            max_workers=min(workers, len(paths)), mp_context=multiprocessing.get_context("spawn"))
        try:
            return _decode_all(image_dir, paths, image_size, color_mode, stop_at_bad, sink, executor, workers)
        except concurrent.futures.process.BrokenProcessPool:
            logging.warning("decoding %s in this process: worker processes could not start (a script that loads "
                            "a large folder needs an 'if __name__ == \"__main__\":' guard)", image_dir)
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
    return _decode_all(image_dir, paths, image_size, color_mode, stop_at_bad, sink, None, 1)


class _MemorySink:
    """decode_images's pixels without a cache file: one array (a PixelWriter's interface)."""

    def open(self, count, image_size, channels):
        self.pixels = np.zeros((count, image_size, image_size, channels), np.uint8)

    def put(self, slot, image):
        self.pixels[slot] = image  # a gray [S, S, 1] image broadcasts to all three channels

    def finish(self, slots, gray):
        chosen = self.pixels[slots, :, :, :1] if gray else self.pixels[slots]
        return chosen.reshape(len(chosen), -1)


def _decode_all(image_dir, paths, image_size, color_mode, stop_at_bad, sink, executor, workers):
    """decode_images's work, by ``executor``'s worker processes (or here when it is None), into ``sink``."""
    bad, errors, shrunk = [], [], 0
    if image_size is None:
        sizes = [None] * len(paths)
        _map(_probe_chunk, image_dir, paths, (), f"reading the image sizes in {image_dir}", executor, workers,
             stop_at_bad, lambda start, part: sizes.__setitem__(slice(start, start + len(part)), part))
        bad, errors = _errors(paths, sizes)
        if bad and stop_at_bad:
            return None, None, [], bad, errors, 0
        readable = [(p, s) for p, s in zip(paths, sizes) if not isinstance(s, str)]
        paths, sizes = [p for p, _ in readable], [s for _, s in readable]
        image_size = _own_size(sizes)
        shrunk = sum(min(w, h) > MAX_OWN_SIZE for w, h in sizes) if image_size == DEFAULT_IMAGE_SIZE else 0
    # "auto" knows whether any image has colour only at the end: its rows hold 3 channels until then (a gray
    # folder's are cut to one by ``finish``).
    channels = 1 if color_mode == "grayscale" else 3
    sink.open(len(paths), image_size, channels)
    decoded = np.zeros(len(paths), bool)
    failures = {}  # slot -> Pillow's error
    colour = [color_mode == "rgb"]

    def put(start, part):
        for slot, result in enumerate(part, start):
            if isinstance(result, str):
                failures[slot] = result
            else:
                sink.put(slot, result)
                decoded[slot] = True
                colour[0] = colour[0] or result.shape[2] == 3

    _map(_decode_chunk, image_dir, paths, (image_size, color_mode), f"decoding {image_dir}", executor, workers,
         stop_at_bad, put)
    more_bad, more_errors = [paths[slot] for slot in sorted(failures)], [failures[s] for s in sorted(failures)]
    if more_bad and stop_at_bad:
        return None, None, [], more_bad, more_errors, 0
    bad_errors = sorted(zip(bad + more_bad, errors + more_errors))
    bad, errors = [p for p, _ in bad_errors], [e for _, e in bad_errors]
    slots = np.flatnonzero(decoded)
    gray = channels == 3 and not colour[0]
    rows = sink.finish(slots, gray)
    return rows, (image_size, image_size, 1 if gray else channels), [paths[i] for i in slots], bad, errors, shrunk


def _errors(paths, results):
    """(paths, errors) of the results that are errors (str), in path order."""
    pairs = [(p, r) for p, r in zip(paths, results) if isinstance(r, str)]
    return [p for p, _ in pairs], [r for _, r in pairs]


def _own_size(sizes):
    """The side all the (width, height) share when they are one square size fit for the model, else 28."""
    side = sizes[0][0] if sizes else 0
    if all(w == h == side for w, h in sizes) and 8 <= side <= MAX_OWN_SIZE and side % 4 == 0:
        return side
    return DEFAULT_IMAGE_SIZE


def decode_image(path, image_size, color_mode="auto"):
    """uint8 [S, S, C] of one file: C is 1 for "grayscale", 3 for "rgb"; for "auto" 1 when every pixel is gray."""
    with Image.open(path) as image:
        gray = color_mode == "grayscale" or (color_mode == "auto" and image.mode in _GRAY_MODES)
        image.draft("L" if gray else "RGB", (image_size, image_size))  # JPEG only: decode at 1/2, 1/4, 1/8 scale
        image = _flatten(ImageOps.exif_transpose(image), gray)  # upright as a viewer shows it (camera photos)
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    # Crop first: resize(box=...) would let the filter reach into the rows or columns cropped off.
    image = image.crop((left, top, left + side, top + side))
    if side != image_size:
        # BOX when shrinking averages every source pixel into the output (no aliasing, no ringing halo around
        # strokes); BILINEAR when enlarging interpolates smoothly, again without ringing.
        image = image.resize((image_size, image_size), Image.BOX if side > image_size else Image.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        return array[:, :, None]
    if color_mode == "auto" and (array[:, :, :1] == array[:, :, 1:]).all():
        return np.ascontiguousarray(array[:, :, :1])
    return array


def _flatten(image, gray):
    """An "L" or "RGB" copy of a just-opened image: 16-bit gray scaled to 8 bits, transparency over white."""
    if image.mode == "I" or image.mode.startswith("I;16"):
        values = np.asarray(image, dtype=np.float64) / 257.0
        image = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return image.convert("L" if gray else "RGB")


def probe_size(path):
    """(width, height) from the file's header, without decoding its pixels."""
    with Image.open(path) as image:
        return image.size


def describe_error(error):
    """Pillow's error as one line."""
    return " ".join(str(error).split()) or type(error).__name__


def _probe_chunk(image_dir, paths):
    results = []
    for path in paths:
        try:
            results.append(probe_size(os.path.join(image_dir, path)))
        except Exception as e:  # noqa: BLE001 - any failure means "not a decodable image", reported by name
            results.append(describe_error(e))
    return results


def _decode_chunk(image_dir, paths, image_size, color_mode):
    results = []
    for path in paths:
        try:
            results.append(decode_image(os.path.join(image_dir, path), image_size, color_mode))
        except Exception as e:  # noqa: BLE001
            results.append(describe_error(e))
    return results


def _map(function, image_dir, paths, args, label, executor, workers, stop_at_bad, consume):
    """``function`` over ``paths`` in chunks, with progress lines: ``consume(start, results)`` gets each chunk's
    results (one per path; an error is a str) as it is done, and nothing keeps them after that. With
    ``stop_at_bad`` it stops after the first chunk holding an error."""
    if not paths:
        return
    size = max(1, min(64, math.ceil(len(paths) / (4 * workers))))
    starts = range(0, len(paths), size)
    progress = _Progress(label, len(paths))
    done = 0
    if executor is None:
        for start in starts:
            part = function(image_dir, paths[start:start + size], *args)
            consume(start, part)
            done += len(part)
            progress.update(done)
            if stop_at_bad and any(isinstance(r, str) for r in part):
                return
    else:
        futures = {executor.submit(function, image_dir, paths[start:start + size], *args): start
                   for start in starts}
        try:
            for future in concurrent.futures.as_completed(futures):
                part = future.result()
                consume(futures.pop(future), part)  # popped: the chunk's pixels are freed once written
                done += len(part)
                progress.update(done)
                if stop_at_bad and any(isinstance(r, str) for r in part):
                    return
        finally:
            for future in futures:
                future.cancel()
    progress.update(done, force=True)


class _Progress:
    """One log line every ``interval`` seconds and one at the end: done/total, images/s, ETA."""

    def __init__(self, label, total, interval=5.0, clock=time.monotonic):
        self.label, self.total, self.interval, self.clock = label, total, interval, clock
        self.start = self.last = clock()

    def update(self, done, force=False):
        now = self.clock()
        if not force and now - self.last < self.interval:
            return
        self.last = now
        rate = done / (now - self.start) if now > self.start else 0.0
        eta = format_duration((self.total - done) / rate) if rate > 0 else "?"
        logging.info("%s: %d/%d images, %s img/s, ETA %s", self.label, done, self.total, f"{rate:,.0f}", eta)
