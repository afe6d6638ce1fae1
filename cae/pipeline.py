"""tf.data input: batches gathered from in-memory arrays by a stream of example indices, one initializable iterator.

The model reads ``IMAGE_IN`` (and ``LABELS``), each a ``placeholder_with_default`` over the iterator's output, so
training and evaluation run without a feed_dict while inference and export still feed the placeholders (a fed
placeholder cuts the iterator out of that run, so it needs no initialization).

The order is an index permutation fed when the iterator starts (``train.epoch_order``, a pure function of seed and
epoch) rather than ``Dataset.shuffle``: a resumed run sees the same batches as an uninterrupted one, and no shuffle
buffer holds a second copy of the images. The same iterator serves evaluation, restarted over a split in order.
"""

import numpy as np
import tensorflow as tf

from cae import train
from cae.data import NUM_PIXELS

v1 = tf.compat.v1

EVAL_BATCH_SIZE = 1000


def build(with_labels=True):
    """Add the pipeline to the default graph; returns {"images", "labels"?, "initializer", "sources"}.

    ``sources`` holds the placeholders ``start`` feeds once per (re)start: the split's arrays, the index stream
    and the batch size.
    """
    with v1.name_scope("INPUT"):
        arrays = {"images": v1.placeholder(tf.float32, [None, NUM_PIXELS], name="all_images")}
        if with_labels:
            arrays["labels"] = v1.placeholder(tf.int64, [None], name="all_labels")
        indices = v1.placeholder(tf.int64, [None], name="indices")
        batch_size = v1.placeholder(tf.int64, [], name="batch_size")
        dataset = (tf.data.Dataset.from_tensor_slices(indices)
                   .batch(batch_size)
                   .map(lambda i: {name: tf.gather(array, i) for name, array in arrays.items()})
                   .prefetch(1))
        iterator = v1.data.make_initializable_iterator(dataset)
        batch = iterator.get_next()
    p = {"initializer": iterator.initializer,
         "sources": dict(arrays, indices=indices, batch_size=batch_size),
         "images": v1.placeholder_with_default(batch["images"], [None, NUM_PIXELS], name="IMAGE_IN")}
    if with_labels:
        p["labels"] = v1.placeholder_with_default(batch["labels"], [None], name="LABELS")
    return p


def start(sess, p, split, indices, batch_size):
    """(Re)start the iterator: batches of ``batch_size`` examples of ``split`` taken in the order of ``indices``."""
    sources = p["sources"]
    feed = {sources["images"]: split.images, sources["indices"]: indices, sources["batch_size"]: batch_size}
    if "labels" in sources:
        feed[sources["labels"]] = split.labels
    sess.run(p["initializer"], feed)


def evaluate(sess, p, tensors, split, batch_size=EVAL_BATCH_SIZE):
    """``train.evaluate`` over a whole split in large batches drawn from the pipeline (no feed_dict).

    It restarts the iterator: a training loop must ``start`` it again afterwards.
    """
    start(sess, p, split, np.arange(len(split.images)), batch_size)
    return train.evaluate(sess, tensors, lambda indices: None, len(split.images), batch_size)


def predict(sess, p, tensor, split, batch_size=EVAL_BATCH_SIZE):
    """``train.predict`` over a whole split, in order, from the pipeline; it restarts the iterator too."""
    start(sess, p, split, np.arange(len(split.images)), batch_size)
    return train.predict(sess, tensor, lambda indices: None, len(split.images), batch_size)
