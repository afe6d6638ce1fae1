"""TensorBoard summaries built in the graph (tf.compat.v1.summary), written by a FileWriter per run.

Cadence: ``train/`` scalars every ``--summary_every_steps`` steps (fetching them every step would slow the hot
loop), histograms and images once per epoch on a fixed batch, ``val/`` per epoch, ``test/`` once at the end.
Every image also lands in ``<run dir>/images/`` as a PNG (the latest one), to look at without TensorBoard.
"""

import os
import struct
import time
import zlib

import numpy as np
import tensorflow as tf

from cae.errors import UserError

v1 = tf.compat.v1

# Summary ops go at the top of the graph, where their tags are their names (train/loss ...); the ops that only
# prepare what they show go under this scope, so the graph tab stays readable.
SCOPE = "SUMMARIES/"

FILTER_ZOOM = 4  # each 5x5 filter pixel becomes a 4x4 block, so a filter is visible without zooming in
FILTER_GAP = 2  # white lines between the filter tiles
CONFUSION_CELL = 20  # pixels per confusion-matrix cell
EPOCH_BATCH = 256  # the first validation images: the fixed batch of the per-epoch histograms and images
PNG_DIR = "images"  # in the run directory: the latest of each image summary as <tag>.png


def image_grid(images, rows, cols, image_shape):
    """[rows*cols, H*W*C] images in [0, 1] -> one [1, rows*H, cols*W, C] image, row-major."""
    height, width, channels = image_shape
    tiles = tf.reshape(images[:rows * cols], [rows, cols, height, width, channels])
    return tf.reshape(tf.transpose(tiles, [0, 2, 1, 3, 4]), [1, rows * height, cols * width, channels])


def rows_image(tag, rows, image_shape, count=8):
    """One image of one row per batch of ``rows``, each its first ``count`` images (black tiles where a small
    validation split has fewer images)."""
    def first(batch):
        batch = batch[:count]
        return tf.pad(batch, [[0, count - tf.shape(batch)[0]], [0, 0]])
    with v1.name_scope(SCOPE):
        grid = image_grid(tf.concat([first(batch) for batch in rows], axis=0), len(rows), count, image_shape)
    return v1.summary.image(tag, grid, max_outputs=1)


def reconstruction_image(images, reconstruction, image_shape, count=8, seen=None):
    """The first ``count`` inputs on the top row, their reconstructions below; with ``seen`` (a denoising, inpainting
    or masked autoencoder's corrupted input) what the encoder saw in between."""
    rows = [images, reconstruction] if seen is None else [images, seen, reconstruction]
    return rows_image("reconstructions/inputs_vs_outputs", rows, image_shape, count)


def augmentation_image(images, views, image_shape, count=8):
    """The first ``count`` images on the top row, below them a row per augmented view of them (what training
    batches look like)."""
    return rows_image("augmentation/images_then_views", [images, *views], image_shape, count)


def filter_grid(kernel, cols=4):
    """A [k, k, C, n] conv kernel -> one [1, H, W, 1 or 3] image of its n filters (in colour for C = 3, else
    their first input channel), each scaled to [0, 1] on its own (so weak filters stay visible), zoomed
    FILTER_ZOOM times and separated by white lines."""
    size, count = int(kernel.shape[0]), int(kernel.shape[-1])
    channels = 3 if kernel.shape[2] == 3 else 1
    rows = -(-count // cols)
    tiles = tf.transpose(kernel[:, :, :channels, :], [3, 0, 1, 2])  # [n, k, k, channels]
    low = tf.reduce_min(tiles, axis=[1, 2, 3], keepdims=True)
    high = tf.reduce_max(tiles, axis=[1, 2, 3], keepdims=True)
    tiles = (tiles - low) / tf.maximum(high - low, 1e-12)
    tiles = tf.repeat(tf.repeat(tiles, FILTER_ZOOM, axis=1), FILTER_ZOOM, axis=2)
    tiles = tf.pad(tiles, [[0, rows * cols - count], [FILTER_GAP, 0], [FILTER_GAP, 0], [0, 0]],
                   constant_values=1.0)
    tile = size * FILTER_ZOOM + FILTER_GAP
    grid = tf.reshape(tf.transpose(tf.reshape(tiles, [rows, cols, tile, tile, channels]), [0, 2, 1, 3, 4]),
                      [rows * tile, cols * tile, channels])
    grid = tf.pad(grid, [[0, FILTER_GAP], [0, FILTER_GAP], [0, 0]], constant_values=1.0)
    return grid[tf.newaxis]


def filters_image(kernel, tag="filters/conv1"):
    with v1.name_scope(SCOPE):
        grid = filter_grid(kernel)
    return v1.summary.image(tag, grid, max_outputs=1)


def histograms(variables, activations):
    """Histograms of every variable (``weights/conv1/kernel`` ...) and of the named activations
    (``activations/conv1`` ...)."""
    ops = [v1.summary.histogram("weights/" + v.op.name, v) for v in variables]
    ops += [v1.summary.histogram("activations/" + name, tensor) for name, tensor in activations.items()]
    return ops


def epoch_summary(variables, activations, *images):
    """Once per epoch, on a fixed batch: histograms, conv1's filters and any further image summaries, merged."""
    conv1_kernel = next(v for v in variables if v.op.name == "conv1/kernel")
    ops = histograms(variables, activations) + [filters_image(conv1_kernel), *images]
    with v1.name_scope(SCOPE):
        return v1.summary.merge(ops, name="epoch")


def train_scalars(loss, learning_rate, more=None):
    """The per-step scalars, fetched only every --summary_every_steps steps; ``more``: {tag: scalar tensor}."""
    ops = [v1.summary.scalar("train/loss", loss), v1.summary.scalar("train/learning_rate", learning_rate)]
    ops += [v1.summary.scalar(tag, tensor) for tag, tensor in (more or {}).items()]
    with v1.name_scope(SCOPE):
        return v1.summary.merge(ops, name="train")


def check_every_steps(every_steps):
    if every_steps < 1:
        raise UserError(f"--summary_every_steps={every_steps}: expected a positive number of steps")


def training_step(sess, train_op, loss, summary, feed_for, writer, first_step, every_steps, clock=time.monotonic):
    """A ``run_step(indices) -> loss`` for train.fit that also fetches ``summary`` when the global step reaches a
    multiple of ``every_steps``, and then writes ``train/images_per_s``: the images trained since the previous
    summary over the time spent in these steps (feeding and running, not the epoch-end validation or saving).

    The global step is counted here from ``first_step`` rather than fetched: one fetch less per step.
    """
    state = {"step": first_step, "images": 0, "busy": 0.0}

    def run_step(indices):
        start = clock()
        feed = feed_for(indices)
        state["step"] += 1
        if state["step"] % every_steps:
            _, loss_value = sess.run([train_op, loss], feed)
        else:
            _, loss_value, summary_value = sess.run([train_op, loss, summary], feed)
        state["images"] += len(indices)
        state["busy"] += clock() - start
        if state["step"] % every_steps == 0:
            writer.add_summary(summary_value, state["step"])
            if state["busy"] > 0:
                scalars({"train/images_per_s": state["images"] / state["busy"]}, state["step"], writer)
            state["images"], state["busy"] = 0, 0.0
        return loss_value

    return run_step


def scalars(values, step, writer):
    """Write python floats as scalar summaries without adding ops to the graph."""
    summary = v1.Summary(value=[v1.Summary.Value(tag=tag, simple_value=float(v)) for tag, v in values.items()])
    writer.add_summary(summary, step)


def encode_png(pixels):
    """uint8 [H, W] gray or [H, W, 3] RGB pixels -> PNG bytes, with zlib alone.

    Not tf.io.encode_png: that needs a Session or the eager runtime, and either would claim GPU memory outside
    the run's --gpu_memory_fraction.
    """
    pixels = np.ascontiguousarray(pixels, np.uint8)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    height, width = pixels.shape[:2]
    color_type = 2 if pixels.ndim == 3 else 0  # 2: RGB, 0: gray

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)  # 8 bits a sample, no interlace
    rows = b"".join(b"\x00" + row.tobytes() for row in pixels)  # each row: filter type 0, then its bytes
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def image(tag, pixels, step, writer):
    """Write a uint8 [H, W] gray or [H, W, 3] RGB numpy image as an image summary (and its PNG)."""
    summary = v1.Summary(value=[v1.Summary.Value(tag=tag, image=v1.Summary.Image(
        height=pixels.shape[0], width=pixels.shape[1], colorspace=3 if pixels.ndim == 3 else 1,
        encoded_image_string=encode_png(pixels)))])
    add(writer, summary, step)


def png_name(tag):
    """``reconstructions/inputs_vs_outputs/image`` -> ``reconstructions_inputs_vs_outputs.png``."""
    return tag.removesuffix("/image").replace("/", "_") + ".png"


def add(writer, summary, step):
    """``writer.add_summary`` (a Summary or its serialized bytes, as Session.run returns a merged summary), and each
    image in it also as ``<logdir>/images/<tag>.png``: the same PNG bytes TensorBoard shows, the latest one."""
    writer.add_summary(summary, step)
    if isinstance(summary, bytes):
        summary = v1.Summary.FromString(summary)
    for value in summary.value:
        if value.HasField("image"):
            directory = os.path.join(writer.get_logdir(), PNG_DIR)
            os.makedirs(directory, exist_ok=True)
            path = os.path.join(directory, png_name(value.tag))
            with open(path + ".tmp", "wb") as f:  # then renamed: an image viewer never sees half a file
                f.write(value.image.encoded_image_string)
            os.replace(path + ".tmp", path)


def confusion_pixels(counts, class_names=None):
    """A confusion matrix as a gray image: row = true class, column = predicted class, each cell as bright as the
    fraction of its row (so the diagonal is white for a perfect classifier), CONFUSION_CELL pixels square.

    With ``class_names`` the grid takes the image's bottom-right corner and the names label its rows (left) and
    columns (top, written downwards), drawn with Pillow's built-in font.
    """
    fractions = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    cells = np.round(fractions * 255).astype(np.uint8)
    grid = np.kron(cells, np.ones([CONFUSION_CELL, CONFUSION_CELL], np.uint8))
    if not class_names:
        return grid
    from PIL import Image, ImageDraw, ImageFont  # only here: the rest of the summaries need no Pillow
    font = ImageFont.load_default()
    names = [str(name) for name in class_names]
    margin = 6 + max(int(np.ceil(font.getlength(name))) for name in names)
    size = grid.shape[0]
    canvas = Image.new("L", (margin + size, margin + size), 96)  # mid gray: the cells' black and white both show
    canvas.paste(Image.fromarray(grid), (margin, margin))
    draw = ImageDraw.Draw(canvas)
    for i, name in enumerate(names):
        middle = margin + i * CONFUSION_CELL + CONFUSION_CELL // 2
        draw.text((margin - 3, middle), name, fill=255, font=font, anchor="rm")  # row i: the true class
    columns = Image.new("L", (margin, size), 0)  # the column names, drawn across, then turned a quarter left
    column_draw = ImageDraw.Draw(columns)
    for i, name in enumerate(names):
        column_draw.text((3, i * CONFUSION_CELL + CONFUSION_CELL // 2), name, fill=255, font=font, anchor="lm")
    turned = columns.transpose(Image.Transpose.ROTATE_90)  # name i above column i, read upwards from the grid
    canvas.paste(turned, (margin, 0), turned)
    return np.asarray(canvas)
