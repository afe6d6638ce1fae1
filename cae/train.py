"""The pieces every training run shares: epoch batching, the resumable loop, evaluation, checkpoints."""

import contextlib
import json
import math
import os

import numpy as np
import tensorflow as tf

from cae import interrupt, restore
from cae.errors import UserError
from cae.progress import Progress, log_file_only


v1 = tf.compat.v1


# one_cycle: PyTorch's OneCycleLR defaults, the fast-to-accuracy recipe: warm up linearly from base / 25 to base
# over the first 30% of the steps, then cosine decay to 0.
ONE_CYCLE_WARMUP_FRACTION = 0.3
ONE_CYCLE_START_FRACTION = 1 / 25


def one_cycle_warmup_steps(total_steps):
    """one_cycle's rising steps (at least 1), shared with the Keras baseline so both warm up alike."""
    return max(1, round(ONE_CYCLE_WARMUP_FRACTION * max(1, total_steps)))


def learning_rate(base, schedule, global_step, total_steps):
    """The rate at ``global_step`` of a run of ``total_steps`` (its last step): constant, cosine decay from
    ``base`` to 0, or one_cycle. A pure function of the global step, so a resumed run follows the same schedule
    as an uninterrupted one."""
    total_steps = max(1, total_steps)
    if schedule == "constant":
        return tf.constant(base, tf.float32, name="learning_rate")
    if schedule == "cosine":
        return v1.train.cosine_decay(base, global_step, total_steps, name="learning_rate")
    if schedule == "one_cycle":
        warmup = one_cycle_warmup_steps(total_steps)
        with v1.name_scope("one_cycle"):
            step = tf.cast(global_step, tf.float32)
            start = base * ONE_CYCLE_START_FRACTION
            rising = start + (base - start) * step / warmup
            falling = v1.train.cosine_decay(base, global_step - warmup, max(1, total_steps - warmup))
        return tf.where(step < warmup, rising, falling, name="learning_rate")
    raise ValueError(f"unknown learning-rate schedule {schedule!r}")


def epoch_order(num_examples, epoch, seed):
    """The shuffled example order of one epoch: a pure function of (seed, epoch), so a resumed run sees the
    same batches an uninterrupted one would."""
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


def cycled_rows(num_examples, batch_size, first_step, num_steps, seed):
    """[num_steps, batch_size] example indices: the batches of steps first_step, first_step + 1, ... of an endless
    stream that passes over ``num_examples`` examples again and again, each pass in its own shuffled order (seeded
    apart from epoch_order's). A pure function of its arguments: the labelled batches of a semi-supervised run,
    which pass over a few labels many times while its epochs pass over the unlabelled images once."""
    positions = (first_step + np.arange(num_steps, dtype=np.int64))[:, None] * batch_size + np.arange(batch_size)
    passes = positions // num_examples
    first_pass, last_pass = (int(passes.min()), int(passes.max())) if positions.size else (0, -1)
    orders = np.stack([np.random.default_rng([seed, p, 1]).permutation(num_examples)
                       for p in range(first_pass, last_pass + 1)]) if positions.size else np.zeros([0, 0], np.int64)
    return orders[passes - first_pass, positions % num_examples].astype(np.int64)


def steps_per_epoch(num_examples, batch_size):
    """Every example once per epoch: the last batch may be smaller."""
    return math.ceil(num_examples / batch_size)


# Example indices one start of a tf.data loop takes (8 MB): every epoch of a small set at once, one of a large set.
STREAM_EXAMPLES = 2 ** 20


def fit(run_step, num_examples, batch_size, epochs, first_step, seed, on_epoch_end=None, save_every_steps=0,
        save=None, start_epochs=None):
    """Run ``run_step(indices) -> loss`` over shuffled batches from ``first_step`` up to ``epochs`` epochs.

    ``first_step`` is the restored global step, so an interrupted run continues mid-epoch where it stopped.
    ``start_epochs(orders, step)`` gets the orders of the next epochs (the first one only the rest of its epoch)
    and the global step of their first batch, before it, as many as STREAM_EXAMPLES allows but at least one (a
    tf.data loop starts its iterator with them; its ``run_step`` then ignores the batch indices a feed_dict loop
    needs).
    ``on_epoch_end(epoch, step)`` runs after each completed epoch; a true return value stops training there
    (early stopping). ``save(step)`` also runs every
    ``save_every_steps`` steps inside an epoch (0: never). With ``save``, SIGINT/SIGTERM stop the loop after the
    current step: ``save(step)``, then ``interrupt.Interrupted``. A NaN or Inf loss raises UserError before
    anything else is saved. Returns the last step.
    """
    per_epoch = steps_per_epoch(num_examples, batch_size)
    total = epochs * per_epoch
    step = first_step
    streamed_to = 0  # the first epoch start_epochs has not been given yet
    signals = interrupt.deferred_signals() if save else contextlib.nullcontext(lambda: None)
    with signals as received, Progress(total, batch_size, first_step, steps_per_epoch=per_epoch) as progress:
        while step < total:
            epoch = step // per_epoch
            order = epoch_order(num_examples, epoch, seed)
            if start_epochs and epoch >= streamed_to:
                streamed_to = min(epochs, epoch + max(1, STREAM_EXAMPLES // num_examples))
                start_epochs([order[step % per_epoch * batch_size:]]
                             + [epoch_order(num_examples, e, seed) for e in range(epoch + 1, streamed_to)], step)
            for batch in range(step % per_epoch, per_epoch):
                loss = run_step(order[batch * batch_size:(batch + 1) * batch_size])
                step += 1
                if not math.isfinite(loss):
                    raise UserError(f"training loss became {loss} at step {step}: stopped without saving, the "
                                    f"last checkpoint of the train_dir is the last good one (lower --learning_rate?)")
                progress.update(epoch + 1, epochs, step, loss, force=step == total)
                if received():
                    save(step)
                    raise interrupt.Interrupted(received(), step)
                if save_every_steps and step % save_every_steps == 0 and batch + 1 < per_epoch:
                    save(step)
            progress.end_epoch()  # the epoch's live line stays; its summary lines come below it
            if on_epoch_end and on_epoch_end(epoch + 1, step):
                break
    return step


EVAL_BATCH_SIZE = 1000  # evaluation and prediction run in large batches: no gradients, so memory allows it
# ... of at most this many input values: the activations grow with the image, and 1,000 images of 128x128x3 took
# 3.6 GB at once (2 GB for a 64-image batch of them). MNIST's 1,000 (784 values each) stay.
EVAL_BATCH_VALUES = 2 ** 22


def eval_batch_size(images):
    """The evaluation batch for ``images`` (rows of any shape): EVAL_BATCH_SIZE, fewer for large images."""
    values = math.prod(images.shape[1:]) or 1
    return max(1, min(EVAL_BATCH_SIZE, EVAL_BATCH_VALUES // values))


def evaluate(sess, tensors, batches, split, batch_size=None, per_example=None):
    """Example-weighted means of scalar ``tensors`` (a dict) over a whole split, in order, in large batches.

    ``batches`` is how they reach the graph: a ``pipeline.Input`` (fed through IMAGE_IN, so a training stream
    keeps its place) or a ``pipeline.Feed``. With ``per_example`` (a dict of tensors with one row per image, such
    as predictions), returns (means, those rows concatenated over the split) from the same pass.
    """
    per_example = per_example or {}
    batch_size = batch_size or eval_batch_size(split.images)
    totals = dict.fromkeys(tensors, 0.0)
    rows = {key: [] for key in per_example}
    for indices in _in_order(split, batch_size):
        values = sess.run({"means": tensors, "rows": per_example}, batches.feed(split, indices))
        for key, value in values["means"].items():
            totals[key] += float(value) * len(indices)
        for key, value in values["rows"].items():
            rows[key].append(value)
    means = {key: total / len(split.images) for key, total in totals.items()}
    if not per_example:
        return means
    return means, {key: np.concatenate(parts) for key, parts in rows.items()}


def predict(sess, tensor, batches, split, batch_size=None):
    """``tensor`` over a whole split, in order, concatenated along the first axis (``batches`` as in evaluate)."""
    return evaluate(sess, {}, batches, split, batch_size, {"rows": tensor})[1]["rows"]


def _in_order(split, batch_size):
    """Each batch's example indices, over the whole split in order."""
    num_examples = len(split.images)
    for start in range(0, num_examples, batch_size):
        yield np.arange(start, min(start + batch_size, num_examples))


def restore_latest(sess, saver, train_dir):
    """Restore the newest checkpoint of train_dir into the session; return its path, or None if there is none.

    The checkpoint is first checked against every variable of the graph, so a train_dir holding another model's
    checkpoint, or a damaged one, is a one-line UserError rather than a TensorFlow traceback.
    """
    latest = tf.train.latest_checkpoint(train_dir)
    if latest:
        restore.check_compatible(latest, sess.graph.get_collection(v1.GraphKeys.GLOBAL_VARIABLES))
        saver.restore(sess, latest)
    return latest


def save(sess, saver, train_dir, global_step):
    path = saver.save(sess, os.path.join(train_dir, "model.ckpt"), global_step=global_step)
    log_file_only("saved %s", path)  # in log.txt; on the console the epoch's line is enough
    return path


def write_json(path, values):
    """Write through a temporary file so a crash never leaves half a metrics file."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(values, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
