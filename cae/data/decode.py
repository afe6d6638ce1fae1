"""Image files to uint8 pixels with Pillow: one file (``decode_image``, which predict uses too, so a served
image is seen as the training images were), or a folder's many files with progress lines and, for large folders,
worker processes (``decode_images``).

Every image becomes S x S: a non-square image is centre-cropped to a square on its shorter side, then resized.
Cropping rather than stretching or padding keeps objects at their shape and scale, and adds no artificial border
for the autoencoder to learn; what is lost is the two ends of the longer side. A GIF gives its first frame; a
photo's EXIF orientation is applied, so it is seen upright as a viewer shows it.

Colour: transparency is composited over white. ``color_mode`` "grayscale" gives 1 channel (ITU-R 601 luma,
Pillow's ``convert("L")``), "rgb" 3 (gray images repeated), "auto" 3 if any image has colour, else 1. "auto"
looks at the decoded pixels, not at the file's colour model: an image has colour when one of its resized pixels
has R, G and B not all equal, so gray scans saved as RGB and palette images of gray colours stay 1 channel.

Size: ``image_size`` None means the images' own size when all of them are square and share one size that is a
multiple of 4 from 8 to 64; else 28 (large photos need an explicit --image_size: memory grows with its square).
The encoder's two stride-2 convolutions and the decoder's two doublings need a multiple of 4.

Worker processes are started with "spawn" (TensorFlow may already be loaded here, and forking a process with
TensorFlow's threads is unsafe); they import only this package.
"""

import concurrent.futures
import math
import multiprocessing
import os
import time

import numpy as np
from absl import logging
from PIL import Image, ImageOps

from cae.progress import format_duration

COLOR_MODES = ("auto", "grayscale", "rgb")
DEFAULT_IMAGE_SIZE = 28
# The largest own size taken without --image_size: 50,000 photos of 512x512x3 would need 157 GB as float32, so a
# folder of large photos gets 28 unless the user asks for more.
MAX_OWN_SIZE = 64
# Worker processes decode a folder of more bytes than this. Starting them costs about a second on 2 cores, and
# small files decode faster than that pays back: 10,000 32x32 JPEGs (5,000 img/s) and 1,500 400x300 JPEGs (2,000
# img/s, JPEG draft mode) decoded no faster with 2 workers here. Large photo collections are where they pay.
POOL_THRESHOLD = 100 * 2 ** 20

# Pillow modes without colour; "auto" decodes these straight to one channel.
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}


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
        paths = [p for p, s in zip(paths, sizes) if not isinstance(s, str)]
        sizes = [s for s in sizes if not isinstance(s, str)]
        image_size = _own_size(sizes)
        shrunk = sum(min(w, h) > MAX_OWN_SIZE for w, h in sizes)  # an own size is never above MAX_OWN_SIZE
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
