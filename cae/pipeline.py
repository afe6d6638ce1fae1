"""The two ways a batch reaches the graph: the tf.data pipeline (``Input``) or a feed_dict (``Feed``).

Both answer ``start(sess, split, orders, batch_size)`` (before training on the epochs of ``orders``),
``train_feed(split, indices)`` (the feed_dict of one training step) and ``feed(split, indices)`` (the feed_dict of
one evaluation batch), so the training loop and ``train.evaluate``/``train.predict`` take either.

``Input``: training batches gathered by a stream of example indices, one initializable iterator. Its one Python step
(``tf.numpy_function``) takes each batch's rows from the split's images, wherever they are (an array, or an image
folder's RowFile, which reads them from disk: memory is set by the batch and the prefetch buffer of one batch, never
by the number of images), and scales pixels to float32 [0, 1] there. The model reads ``IMAGE_IN`` (and ``LABELS``),
each a ``placeholder_with_default`` over the iterator's output, so training steps run without a feed_dict while
evaluation, inference and export feed the placeholders (a fed placeholder cuts the iterator out of that run, so it
needs no initialization and keeps its place).

The order is an index permutation per epoch (``train.epoch_order``, a pure function of seed and epoch) rather than
``Dataset.shuffle``: a resumed run sees the same batches as an uninterrupted one, every image is equally likely at
every place of an epoch (a shuffle buffer over a file would mix only neighbours), and no buffer holds images. One
start of the iterator takes many epochs' orders, each cut into its own batches: restarting it costs about 10 ms, as
much as a step, which doubled the time of runs on a few hundred images.


Augmentation (cae.augment) is applied to the iterator's batch below IMAGE_IN, so it touches training batches only.

Semi-supervised runs (``unlabeled=True``) stream two things per step: a batch of unlabelled images, whose epochs
the training loop counts (its ``split`` is a ``Streams``), and a labelled batch cycled over the few labelled
images at its own pace (``train.cycled_rows``): both are pure functions of the seed and the step.
"""

from typing import NamedTuple

import numpy as np
import tensorflow as tf

from cae import clones, data, train

v1 = tf.compat.v1


def _feed(images, labels, split, indices):
    feed = {images: data.as_float(split.images[indices])}
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
    """The tf.data pipeline of a graph: ``images``/``labels`` are IMAGE_IN/LABELS; ``rows`` the placeholders of
    the batches' index rows ``start`` feeds once per (re)start, and ``held`` the splits the iterator reads from
    (set by ``start``: each graph's own)."""
    images: tf.Tensor
    labels: tf.Tensor  # None for a graph without labels (the autoencoder)
    initializer: tf.Operation
    rows: dict
    held: dict

    unlabeled: tf.Tensor = None  # UNLABELED_IN, the unlabelled batch of a semi-supervised graph
    # Each clone's part of the training batch (cae.clones): (images, labels) or (images,); the first is
    # (IMAGE_IN, LABELS), whose defaults are clone 0's part, so a fed evaluation batch reaches clone 0 whole.
    shards: list = None
    shares: list = None  # each clone's fraction of the training batch (None: one clone)
    worker_share: tf.Tensor = None  # with ``part``: this worker's fraction of the training batch (cae.distributed)

    def start(self, sess, split, orders, batch_size, first_step=0):
        """(Re)start the iterator: batches of ``batch_size`` examples of ``split``, in the order of each array of
        ``orders`` in turn (see batch_rows), the first one at global step ``first_step``. A semi-supervised
        graph's ``split`` is a Streams: ``orders`` index its unlabelled images, and its labelled batches follow."""
        rows = batch_rows(orders, batch_size)
        if self.unlabeled is None:
            self.held.update(train=split)
            feed = {self.rows["train"]: rows}
        else:
            labelled = split.labelled
            self.held.update(train=labelled, unlabeled=split.images)
            feed = {self.rows["unlabeled"]: rows,
                    self.rows["train"]: train.cycled_rows(len(labelled.images), split.labelled_batch_size,
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


def _batch(held, name, row, with_labels):
    """The rows ``row`` (-1 pads it) of the held split ``name``: float32 images [, int64 labels]."""
    indices = row[row >= 0]
    if name == "unlabeled":
        return data.as_float(held[name][indices])
    split = held[name]
    images = data.as_float(split.images[indices])
    return (images, split.labels[indices]) if with_labels else images


def _read(held, name, row, num_pixels, with_labels):
    """A batch as tensors, read by Python: from an array or a RowFile alike (see the module docstring)."""
    types = [tf.float32, tf.int64] if with_labels else tf.float32
    batch = tf.numpy_function(lambda r: _batch(held, name, r, with_labels), [row], types, name=f"read_{name}")
    images, labels = batch if with_labels else (batch, None)
    images.set_shape([None, num_pixels])
    if not with_labels:
        return {"images": images}
    labels.set_shape([None])
    return {"images": images, "labels": labels}


def build(num_pixels, with_labels=True, augment=None, unlabeled=False, shards=1, part=None):
    """Add the pipeline for flattened images of ``num_pixels`` values to the default graph; returns its Input.

    ``augment(images) -> images`` (cae.augment) is applied to each training batch under IMAGE_IN; with
    ``unlabeled`` the iterator also brings an unlabelled batch, UNLABELED_IN (not augmented here: its views are
    the semi-supervised graph's). ``shards`` > 1 splits each training batch, after its augmentation (so it draws
    what one device would), into that many parts, one per clone (cae.clones). ``part`` (index, count): a worker of
    a cluster trains on its part of each training batch only, cut as clones cut it (cae.distributed)."""
    if unlabeled and shards > 1:
        raise ValueError("a semi-supervised batch is not split over clones")
    held = {}
    with v1.name_scope("INPUT"):
        rows = {"train": v1.placeholder(tf.int64, [None, None], name="batch_rows")}  # see batch_rows: -1 pads
        if not unlabeled:
            dataset = tf.data.Dataset.from_tensor_slices(rows["train"]).map(
                lambda row: _read(held, "train", row, num_pixels, with_labels))
        else:
            rows["unlabeled"], rows["train"] = rows["train"], v1.placeholder(
                tf.int64, [None, None], name="labelled_batch_rows")

            def both(row, labelled_row):
                batch = _read(held, "train", labelled_row, num_pixels, True)
                batch["unlabeled"] = _read(held, "unlabeled", row, num_pixels, False)["images"]
                return batch

            dataset = tf.data.Dataset.from_tensor_slices((rows["unlabeled"], rows["train"])).map(both)
        iterator = v1.data.make_initializable_iterator(dataset.prefetch(1).with_options(_fixed_threads()))
        batch = iterator.get_next()
        train_images = augment(batch["images"]) if augment else batch["images"]
        parts, shares = [[train_images] + ([batch["labels"]] if with_labels else [])], None
        worker_share = None
        if part is not None:  # every worker reads and augments the whole batch, as one process would
            workers, worker_shares = clones.split(parts[0], part[1])
            parts, worker_share = [workers[part[0]]], worker_shares[part[0]]
        if shards > 1:
            parts, shares = clones.split(parts[0], shards)
    images = v1.placeholder_with_default(parts[0][0], [None, num_pixels], name="IMAGE_IN")
    labels = v1.placeholder_with_default(parts[0][1], [None], name="LABELS") if with_labels else None
    unlabeled_images = (v1.placeholder_with_default(batch["unlabeled"], [None, num_pixels], name="UNLABELED_IN")
                        if unlabeled else None)
    first = (images, labels) if with_labels else (images,)
    return Input(images, labels, iterator.initializer, rows, held, unlabeled_images,
                 [first, *map(tuple, parts[1:])], shares, worker_share)
