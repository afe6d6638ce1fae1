"""Random augmentation of training batches, in the graph: a pure function of the batch and a seed tensor.

One call of ``augment`` draws, per image, one affine warp (retrain.py's crop and scale, a translation, a rotation,
flips), then a brightness and a contrast factor, for colour images a hue rotation and a saturation factor, and clips
to [0, 1]. The warp is one
``ImageProjectiveTransformV3`` (bilinear, edges reflected), so the options compose into a single resampling.

The random values come from stateless ops seeded by ``seed`` (an int [2] tensor, e.g. ``[--seed, global_step]``):
a batch's augmentation is a pure function of the seed and the step, so a resumed run augments exactly as an
uninterrupted one, and two calls with different seeds give two independent views of one batch (consistency
training). Only training batches pass through here: evaluation, export and prediction feed IMAGE_IN below it.

Meanings follow retrain.py where it has the option: ``crop`` is a percentage of margin cropped off (the image is
enlarged by 1 + crop/100, then a window of the original size is cut at a random place), ``scale`` a percentage of
random enlargement on top (uniform in [1, 1 + scale/100]), ``brightness`` a percentage the pixels are multiplied
by at random (uniform in [1 - b/100, 1 + b/100]); ``contrast`` scales each image's deviation from its mean by a
factor drawn alike; ``translate`` is in pixels and ``rotate`` in degrees, each uniform in [-value, value].
``hue`` (degrees) turns each image's colours about the gray axis (in YIQ, so brightness stays: 180 makes any hue
any other), ``saturation`` (percent) scales each pixel's distance from its gray by a factor drawn as brightness's.
"""

import math
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from cae.errors import UserError

v1 = tf.compat.v1


class Augmentation(NamedTuple):
    """What ``augment`` does; all zero/False (the default) is the identity, and adds no op."""
    translate: float = 0.0  # pixels
    crop: float = 0.0  # percent margin
    scale: float = 0.0  # percent
    flip_left_right: bool = False
    flip_up_down: bool = False
    rotate: float = 0.0  # degrees
    brightness: float = 0.0  # percent
    contrast: float = 0.0  # percent
    hue: float = 0.0  # degrees
    saturation: float = 0.0  # percent

    @property
    def geometric(self):
        return bool(self.translate or self.crop or self.scale or self.flip_left_right or self.flip_up_down
                    or self.rotate)

    @property
    def enabled(self):
        return self.geometric or bool(self.brightness or self.contrast or self.colour)

    @property
    def colour(self):
        return bool(self.hue or self.saturation)


# The cae.config.AugmentConfig field (flag) of each Augmentation field, in Augmentation's order.
FLAGS = ("random_translate", "random_crop", "random_scale", "flip_left_right", "flip_up_down", "random_rotate",
         "random_brightness", "random_contrast", "random_hue", "random_saturation")


def from_config(cfg):
    """The Augmentation of a cae.config.AugmentConfig (its random_* and flip_* fields)."""
    return Augmentation(*(getattr(cfg, flag) for flag in FLAGS))


def flags(aug):
    """The AugmentConfig settings (flag name -> value) that ask for ``aug``."""
    return dict(zip(FLAGS, aug))


def step_seed(seed, global_step, stream=0):
    """The stateless seed of one step's augmentation: (--seed, global_step * 16 + stream), where ``stream`` (0-15)
    tells apart the views drawn in one step."""
    return tf.stack([tf.constant(seed, tf.int64), tf.cast(global_step, tf.int64) * 16 + stream])


PREVIEW_STREAM = 13  # the first seed stream of TensorBoard's views of the augmentation (fixed validation images)


def batch_augmenter(aug, image_shape, seed):
    """``augment`` for pipeline.build's training batches, seeded by (``seed``, global step); None when ``aug`` asks
    for nothing. It creates the global step, so a graph that augments has it first; one that does not keeps its
    op order, and with it the random initial values its seed gave before augmentation existed."""
    if not aug.enabled:
        return None
    global_step = v1.train.get_or_create_global_step()
    return lambda images: augment(images, image_shape, aug, step_seed(seed, global_step))


def _uniform(seed, index, count, low, high):
    """``count`` values uniform in [low, high), from the ``index``-th stream of ``seed``."""
    return tf.random.stateless_uniform([count], seed=tf.stack([seed[0], seed[1] * 16 + index]),
                                       minval=low, maxval=high)


def _sign(seed, index, count, enabled):
    if not enabled:
        return tf.ones([count])
    return tf.where(_uniform(seed, index, count, 0.0, 1.0) < 0.5, -1.0, 1.0)


def _warp(images, aug, seed, count, height, width):
    """One affine warp per image: zoom (crop, scale), rotation and flips about the centre, then a shift."""
    margin = 1.0 + aug.crop / 100.0
    zoom = margin * _uniform(seed, 0, count, 1.0, 1.0 + aug.scale / 100.0 + 1e-12)
    angle = _uniform(seed, 1, count, -1.0, 1.0) * (aug.rotate * math.pi / 180.0)
    flip_x = _sign(seed, 2, count, aug.flip_left_right)
    flip_y = _sign(seed, 3, count, aug.flip_up_down)
    # The enlarged image's window of the original size lies anywhere inside it: the shift, in input pixels, is
    # up to half of what the zoom cut off, plus the translation.
    shift_x = (_uniform(seed, 4, count, -1.0, 1.0) * (width * (1.0 - 1.0 / zoom) / 2.0)
               + _uniform(seed, 5, count, -1.0, 1.0) * aug.translate)
    shift_y = (_uniform(seed, 6, count, -1.0, 1.0) * (height * (1.0 - 1.0 / zoom) / 2.0)
               + _uniform(seed, 7, count, -1.0, 1.0) * aug.translate)
    # Output pixel (x, y) reads input centre + A (x - centre) + shift, A = rotation * diag(flip / zoom).
    cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
    a00, a01, a10, a11 = cos * flip_x, -sin * flip_y, sin * flip_x, cos * flip_y
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    transforms = tf.stack([a00, a01, cx - a00 * cx - a01 * cy + shift_x,
                           a10, a11, cy - a10 * cx - a11 * cy + shift_y,
                           tf.zeros([count]), tf.zeros([count])], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.constant([height, width], tf.int32),
        fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT")


# RGB <-> YIQ: Y is the brightness, (I, Q) the colour; a hue rotation turns (I, Q) and keeps Y.
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], np.float32)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ).astype(np.float32)


def _colour(x, aug, seed, count):
    """Each image's colours turned by an angle uniform in [-hue, hue] about the gray axis and pushed away from
    (or towards) gray by a factor uniform in [1 - s/100, 1 + s/100]: one 3x3 matrix per image."""
    angle = _uniform(seed, 12, count, -1.0, 1.0) * (aug.hue * math.pi / 180.0)
    s = aug.saturation / 100.0
    chroma = _uniform(seed, 13, count, 1.0 - s, 1.0 + s)
    cos, sin, one, zero = chroma * tf.cos(angle), chroma * tf.sin(angle), tf.ones([count]), tf.zeros([count])
    turn = tf.reshape(tf.stack([one, zero, zero, zero, cos, -sin, zero, sin, cos], axis=1), [-1, 3, 3])
    matrices = tf.einsum("ij,njk,kl->nil", _YIQ_TO_RGB, turn, _RGB_TO_YIQ)  # rgb' = M rgb
    return tf.einsum("nhwc,ndc->nhwd", x, matrices)


def check_channels(aug, image_shape):
    """UserError where ``aug`` turns colours of images that have none."""
    if aug.colour and image_shape[2] != 3:
        flag = "--random_hue" if aug.hue else "--random_saturation"
        raise UserError(f"{flag} needs colour images: these have {image_shape[2]} channel(s), expected 3")


def augment(images, image_shape, aug, seed, name="AUGMENT"):
    """``images`` [N, H*W*C] in [0, 1], augmented as ``aug`` says with the stateless ``seed`` (int64 [2]); the
    same shape and range. The identity (the tensor itself) when ``aug`` asks for nothing."""
    if not aug.enabled:
        return images
    check_channels(aug, image_shape)
    height, width, channels = image_shape
    with v1.name_scope(name):
        count = tf.shape(images)[0]
        x = tf.reshape(images, [-1, height, width, channels])
        if aug.geometric:
            x = _warp(x, aug, seed, count, height, width)
        if aug.brightness:
            b = aug.brightness / 100.0
            x = x * tf.reshape(_uniform(seed, 8, count, 1.0 - b, 1.0 + b), [-1, 1, 1, 1])
        if aug.contrast:
            c = aug.contrast / 100.0
            mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
            x = mean + (x - mean) * tf.reshape(_uniform(seed, 9, count, 1.0 - c, 1.0 + c),
                                               [-1, 1, 1, 1])
        if aug.colour:
            x = _colour(x, aug, seed, count)
        x = tf.clip_by_value(x, 0.0, 1.0)
        return tf.reshape(x, [-1, height * width * channels])


def cutout(images, image_shape, fraction, seed, name="CUTOUT"):
    """Each image of ``images`` [N, H*W*C] with one square of side ``fraction`` * side set to gray 0.5, at a random
    place (DeVries & Taylor 2017; FixMatch's strong view). The identity for ``fraction`` 0."""
    if not fraction:
        return images
    height, width, channels = image_shape
    with v1.name_scope(name):
        count = tf.shape(images)[0]
        size_y, size_x = max(1, round(height * fraction)), max(1, round(width * fraction))
        centre_y = tf.floor(_uniform(seed, 10, count, 0.0, float(height)))
        centre_x = tf.floor(_uniform(seed, 11, count, 0.0, float(width)))
        rows = tf.range(height, dtype=tf.float32)[tf.newaxis, :, tf.newaxis]
        cols = tf.range(width, dtype=tf.float32)[tf.newaxis, tf.newaxis, :]
        inside = ((tf.abs(rows - centre_y[:, tf.newaxis, tf.newaxis]) * 2 < size_y)
                  & (tf.abs(cols - centre_x[:, tf.newaxis, tf.newaxis]) * 2 < size_x))
        x = tf.reshape(images, [-1, height, width, channels])
        x = tf.where(inside[..., tf.newaxis], 0.5, x)
        return tf.reshape(x, [-1, height * width * channels])


def patch_mask(count, image_shape, patch, ratio, seed, name="PATCH_MASK"):
    """[count, H*W*C], 1 on the pixels of the hidden patches: of each image's ``patch`` x ``patch`` squares exactly
    round(``ratio`` x their number) at random (MAE's random masking, He et al. 2022), the same for every channel."""
    height, width, channels = image_shape
    rows, cols = height // patch, width // patch
    with v1.name_scope(name):
        noise = tf.random.stateless_uniform(tf.stack([count, rows * cols]), seed=seed)
        rank = tf.argsort(tf.argsort(noise, axis=1), axis=1)  # each patch's place in its image's random order
        hidden = tf.cast(rank < round(ratio * rows * cols), tf.float32)
        hidden = tf.broadcast_to(tf.reshape(hidden, [-1, rows, 1, cols, 1, 1]),
                                 tf.stack([count, rows, patch, cols, patch, channels]))
        return tf.reshape(hidden, [-1, height * width * channels])
