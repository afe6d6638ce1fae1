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

Augmentation (cae.augment) is applied to the iterator's batch below IMAGE_IN, so it touches training batches only.

Semi-supervised runs (``unlabeled=True``) stream two things per step: a batch of unlabelled images, whose epochs
the training loop counts (its ``split`` is a ``Streams``), and a labelled batch cycled over the few labelled
images at its own pace (``train.cycled_rows``): both are pure functions of the seed and the step.
"""

from typing import NamedTuple

import numpy as np
import tensorflow as tf

from cae import data, train

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

    unlabeled: tf.Tensor = None  # UNLABELED_IN, the unlabelled batch of a semi-supervised graph

    def start(self, sess, split, orders, batch_size, first_step=0):
        """(Re)start the iterator: batches of ``batch_size`` examples of ``split``, in the order of each array of
        ``orders`` in turn (see batch_rows), the first one at global step ``first_step``. A semi-supervised
        graph's ``split`` is a Streams: ``orders`` index its unlabelled images, and its labelled batches follow."""
        rows = batch_rows(orders, batch_size)
        if self.unlabeled is None:
            feed = {self.sources["images"]: split.images, self.sources["rows"]: rows}
            if self.labels is not None:
                feed[self.sources["labels"]] = split.labels
        else:
            labelled = split.labelled
            feed = {self.sources["unlabeled"]: split.images, self.sources["rows"]: rows,
                    self.sources["images"]: labelled.images, self.sources["labels"]: labelled.labels,
                    self.sources["labelled_rows"]: train.cycled_rows(len(labelled.images), split.labelled_batch_size,
                                                                     first_step, len(rows), split.seed)}
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

    def start(self, sess, split, orders, batch_size, first_step=0):
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


class Streams(NamedTuple):
    """The training split of a semi-supervised run: ``images`` the unlabelled images an epoch passes over, and the
    labelled split whose batches of ``labelled_batch_size`` ride along, cycled (``train.cycled_rows``)."""
    images: np.ndarray
    labelled: data.Split
    labelled_batch_size: int
    seed: int


def _gather(arrays, row):
    indices = tf.boolean_mask(row, row >= 0)
    return {name: tf.gather(array, indices) for name, array in arrays.items()}


def build(num_pixels, with_labels=True, augment=None, unlabeled=False):
    """Add the pipeline for flattened images of ``num_pixels`` values to the default graph; returns its Input.

    ``augment(images) -> images`` (cae.augment) is applied to each training batch under IMAGE_IN; with
    ``unlabeled`` the iterator also brings an unlabelled batch, UNLABELED_IN (not augmented here: its views are
    the semi-supervised graph's)."""
    with v1.name_scope("INPUT"):
        arrays = {"images": v1.placeholder(tf.float32, [None, num_pixels], name="all_images")}
        if with_labels:
            arrays["labels"] = v1.placeholder(tf.int64, [None], name="all_labels")
        rows = v1.placeholder(tf.int64, [None, None], name="batch_rows")  # see batch_rows: -1 pads a row
        sources = dict(arrays, rows=rows)
        if not unlabeled:
            dataset = tf.data.Dataset.from_tensor_slices(rows).map(lambda row: _gather(arrays, row))
        else:
            pool = {"unlabeled": v1.placeholder(tf.float32, [None, num_pixels], name="all_unlabeled_images")}
            labelled_rows = v1.placeholder(tf.int64, [None, None], name="labelled_batch_rows")
            sources.update(pool, labelled_rows=labelled_rows)
            dataset = (tf.data.Dataset.from_tensor_slices((rows, labelled_rows))
                       .map(lambda row, labelled_row: dict(_gather(pool, row), **_gather(arrays, labelled_row))))
        iterator = v1.data.make_initializable_iterator(dataset.prefetch(1).with_options(_fixed_threads()))
        batch = iterator.get_next()
        train_images = augment(batch["images"]) if augment else batch["images"]
    images = v1.placeholder_with_default(train_images, [None, num_pixels], name="IMAGE_IN")
    labels = v1.placeholder_with_default(batch["labels"], [None], name="LABELS") if with_labels else None
    unlabeled_images = (v1.placeholder_with_default(batch["unlabeled"], [None, num_pixels], name="UNLABELED_IN")
                        if unlabeled else None)
    return Input(images, labels, iterator.initializer, sources, unlabeled_images)
