"""TensorBoard summaries built in the graph (tf.compat.v1.summary), written by a FileWriter per run."""

import tensorflow as tf

from cae.data import IMAGE_SIZE

v1 = tf.compat.v1


def image_grid(images, rows, cols):
    """[rows*cols, 784] images in [0, 1] -> one [1, rows*28, cols*28, 1] image, row-major."""
    tiles = tf.reshape(images[:rows * cols], [rows, cols, IMAGE_SIZE, IMAGE_SIZE])
    grid = tf.reshape(tf.transpose(tiles, [0, 2, 1, 3]), [1, rows * IMAGE_SIZE, cols * IMAGE_SIZE, 1])
    return grid


def reconstruction_image(images, reconstruction, count=8):
    """One image: the first ``count`` inputs on the top row, their reconstructions below."""
    both = tf.concat([images[:count], reconstruction[:count]], axis=0)
    return v1.summary.image("reconstructions/inputs_vs_outputs", image_grid(both, 2, count), max_outputs=1)


def scalars(values, step, writer):
    """Write python floats as scalar summaries without adding ops to the graph."""
    summary = v1.Summary(value=[v1.Summary.Value(tag=tag, simple_value=float(v)) for tag, v in values.items()])
    writer.add_summary(summary, step)
