"""TensorBoard's Embedding Projector for a run: the encoder features of a fixed set of test images.

The features live in a non-trainable variable ``embedding/<layer>`` of the training graph, refreshed before every
checkpoint, so the run's latest checkpoint (which the projector reads) always holds the current model's features.
Beside it in the run directory: ``metadata.tsv`` (one class name per row), ``sprite.png`` (the images, row-major) and
``projector_config.pbtxt``, which names them by paths relative to the run directory, so the run can be moved or
served from any ``--logdir``.
"""

import math
import os
from typing import NamedTuple

import numpy as np
import tensorflow as tf
from absl import logging
from tensorboard.plugins import projector

from cae import data, features, restore
from cae.models import MNIST_SHAPE
from cae.errors import UserError
from cae.summaries import encode_png

v1 = tf.compat.v1

METADATA_FILE = "metadata.tsv"
SPRITE_FILE = "sprite.png"
MAX_SPRITE_SIZE = 8192  # the projector's limit on the sprite's width and height


def fit_count(count, split, flag="projector_images"):
    """``count`` projector images, or all of a smaller test split (a folder of your own images may hold fewer than
    the default 2000), which is then logged."""
    if count > len(split.labels):
        logging.info("--%s=%d: the test split has %d images, projecting all of them", flag, count,
                     len(split.labels))
        return len(split.labels)
    return count


def subset(split, count, flag="projector_images", image_shape=MNIST_SHAPE):
    """The first ``count`` images and labels of a split."""
    largest = min(len(split.labels), (MAX_SPRITE_SIZE // max(image_shape[:2])) ** 2)
    if not 0 <= count <= largest:
        raise UserError(f"--{flag}={count}: expected 0 (no projector) to {largest} (the test set has "
                        f"{len(split.labels)} images)")
    return data.as_float(split.images[:count]), split.labels[:count]


class Embedding(NamedTuple):
    variable: tf.Variable  # [count, features] ``embedding/<layer>``, saved with every checkpoint
    update: tf.Tensor  # stores the features fed to ``values`` in it
    images: tf.Tensor  # the model's input
    features: tf.Tensor  # what is stored, computed from ``images``
    values: tf.Tensor  # the placeholder ``update`` stores


def embedding(images, features, count, name):
    """The Embedding ``embedding/<name>`` of ``features`` (computed from the input ``images``) of ``count``
    images."""
    with v1.variable_scope("embedding"):
        variable = v1.get_variable(name, [count, features.shape[-1]], trainable=False,
                                   initializer=v1.zeros_initializer())
    with v1.name_scope("PROJECTOR"):
        values = v1.placeholder(tf.float32, variable.shape, name="features")
        update = variable.assign(values)
    return Embedding(variable, update, images, features, values)


def sprite(images, image_shape=MNIST_SHAPE):
    """[N, H*W*C] images in [0, 1] -> uint8 [S*H, S*W(, 3)], S = ceil(sqrt(N)), row-major, white where none is
    left.

    Images drawn light on a dark background (MNIST) are shown dark on white: on the projector's white canvas,
    white-on-black tiles hide each other. Other images (photos, dark-on-light scans) are shown as they are."""
    height, width, channels = image_shape
    side = math.ceil(math.sqrt(len(images)))
    pixels = np.round(images.reshape(-1, height, width, channels) * 255)
    border = np.concatenate([pixels[:, [0, -1]].reshape(-1), pixels[:, :, [0, -1]].reshape(-1)])
    if border.size and border.mean() < 127.5:
        pixels = 255 - pixels
    tiles = np.full([side * side, height, width, channels], 255, np.uint8)
    tiles[:len(images)] = pixels
    grid = tiles.reshape(side, side, height, width, channels).transpose(0, 2, 1, 3, 4).reshape(
        side * height, side * width, channels)
    return grid[:, :, 0] if channels == 1 else grid


def refresh(sess, embedding, images):
    """Store the current features of the projector images in the embedding variable (before each checkpoint),
    computed in evaluation batches (2,000 large images at once took gigabytes); nothing without an embedding."""
    if embedding is not None:
        values = features.compute(sess, embedding.features, embedding.images, images)
        sess.run(embedding.update, {embedding.values: values})


def check_resume(run_dir, variable, count, flag="projector_images"):
    """If run_dir holds a checkpoint to resume from, its embedding must have ``count`` rows (else the restore
    would fail deep inside TensorFlow). Run before anything is written to run_dir."""
    latest = tf.train.latest_checkpoint(run_dir)
    if latest:
        try:
            restore.check_compatible(latest, [variable])
        except UserError as e:
            raise UserError(f"--{flag}={count} cannot resume this run: {e} (use the value the run started "
                            f"with, or a new --train_dir)") from None


def write_assets(run_dir, variable, images, labels, image_shape=MNIST_SHAPE, class_names=None):
    """metadata.tsv (each image's class name), sprite.png and projector_config.pbtxt for ``variable`` in run_dir
    (after check_resume)."""
    with open(os.path.join(run_dir, METADATA_FILE), "w") as f:  # one column: the projector wants no header then
        f.writelines(f"{class_names[label] if class_names else label}\n" for label in labels)
    with open(os.path.join(run_dir, SPRITE_FILE), "wb") as f:
        f.write(encode_png(sprite(images, image_shape)))
    config = projector.ProjectorConfig()
    entry = config.embeddings.add()
    entry.tensor_name = variable.op.name
    entry.metadata_path = METADATA_FILE
    entry.sprite.image_path = SPRITE_FILE
    entry.sprite.single_image_dim.extend([image_shape[1], image_shape[0]])  # width, height
    projector.visualize_embeddings(run_dir, config)  # writes projector_config.pbtxt
