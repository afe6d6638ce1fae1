"""The two ways a batch reaches the graph: the tf.data pipeline (``Input``) or a feed_dict (``Feed``).

Both answer ``start(sess, split, indices, batch_size)`` (before a pass over a split) and ``feed(split, indices)``
(the feed_dict of one batch), so the training loop and ``train.evaluate``/``train.predict`` take either.

``Input``: batches gathered from in-memory arrays by a stream of example indices, one initializable iterator. The
model reads ``IMAGE_IN`` (and ``LABELS``), each a ``placeholder_with_default`` over the iterator's output, so
training and evaluation run without a feed_dict while inference and export still feed the placeholders (a fed
placeholder cuts the iterator out of that run, so it needs no initialization).

The order is an index permutation fed when the iterator starts (``train.epoch_order``, a pure function of seed and
epoch) rather than ``Dataset.shuffle``: a resumed run sees the same batches as an uninterrupted one, and no shuffle
buffer holds a second copy of the images. The same iterator serves evaluation, restarted over a split in order.
"""

from typing import NamedTuple

import tensorflow as tf

v1 = tf.compat.v1


class Input(NamedTuple):
    """The tf.data pipeline of a graph: ``images``/``labels`` are IMAGE_IN/LABELS; ``sources`` the placeholders
    ``start`` feeds once per (re)start: the split's arrays, the index stream and the batch size."""
    images: tf.Tensor
    labels: tf.Tensor  # None for a graph without labels (the autoencoder)
    initializer: tf.Operation
    sources: dict

    def start(self, sess, split, indices, batch_size):
        """(Re)start the iterator: batches of ``batch_size`` examples of ``split`` in the order of ``indices``."""
        feed = {self.sources["images"]: split.images, self.sources["indices"]: indices,
                self.sources["batch_size"]: batch_size}
        if self.labels is not None:
            feed[self.sources["labels"]] = split.labels
        sess.run(self.initializer, feed)

    def feed(self, split, indices):
        return None  # the iterator brings the batch


class Feed(NamedTuple):
    """Batches fed through a feed_dict into ``images`` (any tensor: a fed tensor cuts everything below it out of
    the run, which is how cached frozen-layer features replace the frozen layers) and ``labels``."""
    images: tf.Tensor
    labels: tf.Tensor = None

    def start(self, sess, split, indices, batch_size):
        pass  # nothing to set up: every batch is fed

    def feed(self, split, indices):
        feed = {self.images: split.images[indices]}
        if self.labels is not None:
            feed[self.labels] = split.labels[indices]
        return feed


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
        indices = v1.placeholder(tf.int64, [None], name="indices")
        batch_size = v1.placeholder(tf.int64, [], name="batch_size")
        dataset = (tf.data.Dataset.from_tensor_slices(indices)
                   .batch(batch_size)
                   .map(lambda i: {name: tf.gather(array, i) for name, array in arrays.items()})
                   .prefetch(1)
                   .with_options(_fixed_threads()))
        iterator = v1.data.make_initializable_iterator(dataset)
        batch = iterator.get_next()
    images = v1.placeholder_with_default(batch["images"], [None, num_pixels], name="IMAGE_IN")
    labels = v1.placeholder_with_default(batch["labels"], [None], name="LABELS") if with_labels else None
    return Input(images, labels, iterator.initializer, dict(arrays, indices=indices, batch_size=batch_size))
