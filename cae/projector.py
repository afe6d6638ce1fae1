"""TensorBoard's Embedding Projector for a run: the encoder features of a fixed set of test images.

The features live in a non-trainable variable ``embedding/<layer>`` of the training graph, refreshed before every
checkpoint, so the run's latest checkpoint (which the projector reads) always holds the current model's features.
Beside it in the run directory: ``metadata.tsv`` (one label per row), ``sprite.png`` (the digits, row-major) and
``projector_config.pbtxt``, which names them by paths relative to the run directory, so the run can be moved or
served from any ``--logdir``.
"""

import math
import os
from typing import NamedTuple

import numpy as np
import tensorflow as tf
from tensorboard.plugins import projector

from cae import restore
from cae.data import IMAGE_SIZE
from cae.errors import UserError
from cae.summaries import encode_png

v1 = tf.compat.v1

METADATA_FILE = "metadata.tsv"
SPRITE_FILE = "sprite.png"
MAX_SPRITE_SIZE = 8192  # the projector's limit on the sprite's width and height


def subset(split, count, flag="projector_images"):
    """The first ``count`` images and labels of a split."""
    largest = min(len(split.labels), (MAX_SPRITE_SIZE // IMAGE_SIZE) ** 2)
    if not 0 <= count <= largest:
        raise UserError(f"--{flag}={count}: expected 0 (no projector) to {largest} (the test set has "
                        f"{len(split.labels)} images)")
    return split.images[:count], split.labels[:count]


class Embedding(NamedTuple):
    variable: tf.Variable  # [count, features] ``embedding/<layer>``, saved with every checkpoint
    update: tf.Tensor  # stores the features of the images fed to ``images`` in it
    images: tf.Tensor  # the model's input


def embedding(images, features, count, name):
    """The Embedding ``embedding/<name>`` of ``features`` (computed from the input ``images``; feed exactly
    ``count`` images)."""
    with v1.variable_scope("embedding"):
        variable = v1.get_variable(name, [count, features.shape[-1]], trainable=False,
                                   initializer=v1.zeros_initializer())
    with v1.name_scope("PROJECTOR"):
        update = variable.assign(tf.ensure_shape(features, variable.shape))
    return Embedding(variable, update, images)


def sprite(images):
    """[N, 784] images in [0, 1] -> uint8 [S*28, S*28], S = ceil(sqrt(N)), row-major, white where none is left.

    Dark digits on white: on the projector's white canvas, MNIST's white-on-black tiles hide each other."""
    side = math.ceil(math.sqrt(len(images)))
    tiles = np.full([side * side, IMAGE_SIZE, IMAGE_SIZE], 255, np.uint8)
    tiles[:len(images)] = 255 - np.round(images.reshape(-1, IMAGE_SIZE, IMAGE_SIZE) * 255)
    return tiles.reshape(side, side, IMAGE_SIZE, IMAGE_SIZE).transpose(0, 2, 1, 3).reshape(
        side * IMAGE_SIZE, side * IMAGE_SIZE)


def refresh(sess, embedding, images):
    """Store the current features of the projector images in the embedding variable (before each checkpoint);
    nothing without an embedding."""
    if embedding is not None:
        sess.run(embedding.update, {embedding.images: images})


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


def write_assets(run_dir, variable, images, labels):
    """metadata.tsv, sprite.png and projector_config.pbtxt for ``variable`` in run_dir (after check_resume)."""
    with open(os.path.join(run_dir, METADATA_FILE), "w") as f:
        f.writelines(f"{label}\n" for label in labels)  # one column: the projector wants no header then
    with open(os.path.join(run_dir, SPRITE_FILE), "wb") as f:
        f.write(encode_png(sprite(images)))
    config = projector.ProjectorConfig()
    entry = config.embeddings.add()
    entry.tensor_name = variable.op.name
    entry.metadata_path = METADATA_FILE
    entry.sprite.image_path = SPRITE_FILE
    entry.sprite.single_image_dim.extend([IMAGE_SIZE, IMAGE_SIZE])
    projector.visualize_embeddings(run_dir, config)  # writes projector_config.pbtxt
