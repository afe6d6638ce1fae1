"""The two ways a batch reaches the graph: the tf.data pipeline (``Input``) or a feed_dict (``Feed``).

Both answer ``start(sess, split, orders, batch_size)`` (before training on the epochs of ``orders``),
``train_feed(split, indices)`` (the feed_dict of one training step) and ``feed(split, indices)`` (the feed_dict of
one evaluation batch), so the training loop and ``train.evaluate``/``train.predict`` take either.

``Input``: training batches gathered from in-memory arrays by a stream of example indices, one initializable
iterator. The model reads ``IMAGE_IN`` (and ``LABELS``), each a ``placeholder_with_default`` over the iterator's
output, so training steps run without a feed_dict while evaluation, inference and export feed the placeholders (a
fed placeholder cuts the iterator out of that run, so it needs no initialization and keeps its place).

The order is an index permutation per epoch (``train.epoch_order``, a pure function of seed and epoch) rather than
``Dataset.shuffle``: a resumed run sees the same batches as an uninterrupted one, and no shuffle buffer holds a
second copy of the images. One start of the iterator takes many epochs' orders, each cut into its own batches:
restarting it costs about 10 ms, as much as a step, which doubled the time of runs on a few hundred images.
"""

from typing import NamedTuple

import numpy as np
import tensorflow as tf

v1 = tf.compat.v1


def _feed(images, labels, split, indices):
    feed = {images: split.images[indices]}
    if labels is not None:
        feed[labels] = split.labels[indices]
    return feed


def batch_rows(orders, batch_size):
    """The batches of ``orders`` (example-index arrays, one per epoch) as the rows of one matrix, each order cut
    into batches of ``batch_size`` on its own (its last batch may be smaller) and padded with -1."""
    rows = [np.concatenate([order, np.full(-len(order) % batch_size, -1)]).reshape(-1, batch_size)
            for order in orders if len(order)]
    return np.concatenate(rows).astype(np.int64) if rows else np.zeros([0, batch_size], np.int64)


class Input(NamedTuple):
    """The tf.data pipeline of a graph: ``images``/``labels`` are IMAGE_IN/LABELS; ``sources`` the placeholders
    ``start`` feeds once per (re)start: the split's arrays and the batches' index rows."""
    images: tf.Tensor
    labels: tf.Tensor  # None for a graph without labels (the autoencoder)
    initializer: tf.Operation
    sources: dict

    def start(self, sess, split, orders, batch_size):
        """(Re)start the iterator: batches of ``batch_size`` examples of ``split``, in the order of each array of
        ``orders`` in turn (see batch_rows)."""
        feed = {self.sources["images"]: split.images, self.sources["rows"]: batch_rows(orders, batch_size)}
        if self.labels is not None:
            feed[self.sources["labels"]] = split.labels
        sess.run(self.initializer, feed)

    def train_feed(self, split, indices):
        return None  # the iterator brings the batch

    def feed(self, split, indices):
        """An evaluation batch fed into IMAGE_IN/LABELS: the training stream keeps its place."""
        return _feed(self.images, self.labels, split, indices)


class Feed(NamedTuple):
    """Batches fed through a feed_dict into ``images`` (any tensor: a fed tensor cuts everything below it out of
    the run, which is how cached frozen-layer features replace the frozen layers) and ``labels``."""
    images: tf.Tensor
    labels: tf.Tensor = None

    def start(self, sess, split, orders, batch_size):
        pass  # nothing to set up: every batch is fed

    def train_feed(self, split, indices):
        return self.feed(split, indices)

    def feed(self, split, indices):
        return _feed(self.images, self.labels, split, indices)


def _fixed_threads():
    """tf.data options without autotuning: its model thread takes CPU from the training step on a small machine
    and sometimes held an iterator's restart for 4 s (measured on 2 cores: epochs 10-15% faster without it)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def build(num_pixels, with_labels=True):
    """Add the pipeline for flattened images of ``num_pixels`` values to the default graph; returns its Input."""
    with v1.name_scope("INPUT"):
        arrays = {"images": v1.placeholder(tf.float32, [None, num_pixels], name="all_images")}
        if with_labels:
            arrays["labels"] = v1.placeholder(tf.int64, [None], name="all_labels")
        rows = v1.placeholder(tf.int64, [None, None], name="batch_rows")  # see batch_rows: -1 pads a row

        def gather(row):
            indices = tf.boolean_mask(row, row >= 0)
            return {name: tf.gather(array, indices) for name, array in arrays.items()}

        dataset = (tf.data.Dataset.from_tensor_slices(rows)
                   .map(gather)
                   .prefetch(1)
                   .with_options(_fixed_threads()))
        iterator = v1.data.make_initializable_iterator(dataset)
        batch = iterator.get_next()
    images = v1.placeholder_with_default(batch["images"], [None, num_pixels], name="IMAGE_IN")
    labels = v1.placeholder_with_default(batch["labels"], [None], name="LABELS") if with_labels else None
    return Input(images, labels, iterator.initializer, dict(arrays, rows=rows))
