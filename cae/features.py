"""Outputs of frozen layers: which classifier tensor no training step can change, and computing it in batches.

Used by ``--cache_features`` (train the head on features computed once) and by scripts/extract_features.py.

Cached features are kept in memory up to IN_MEMORY_BYTES; more (a large folder's: 120,000 images of 64x64 give
3.9 GB of conv2 features) go, as retrain.py's bottlenecks do, to disk: an unlinked file in the train_dir, read a
batch at a time (cae.data.rows.RowFile), which disappears with the process however it ends.
"""

import os
import tempfile
import time

import numpy as np
from absl import logging

from cae import data, train
from cae.errors import UserError

IN_MEMORY_BYTES = 2 ** 30


def _scope(variable):
    return variable.op.name.split("/")[0]


def layer_outputs(model):
    """The classifier's layers bottom-up with each one's output (the last conv's flattened, as fc1 sees it)."""
    convs = [(f"conv{i}", output) for i, output in enumerate(model.convs, 1)]
    return convs[:-1] + [(convs[-1][0], model.features), ("fc1", model.fc1)]


def cache_point(model, restored, trained):
    """(layer, its output tensor): the top of the longest run of frozen layers of ``model`` (a models.Classifier)
    from the input up.

    Caching is only meaningful when every restored layer is frozen (otherwise its output changes every step),
    and only if the first layer is frozen; otherwise raise UserError naming the culprit.
    """
    trained_scopes = {_scope(v) for v in trained}
    restored_and_trained = sorted({_scope(v) for v in restored} & trained_scopes)
    if restored_and_trained:
        raise UserError(f"--cache_features needs every restored layer frozen, but --trainable_scopes trains "
                        f"restored {', '.join(restored_and_trained)}; drop it from --trainable_scopes or "
                        f"turn off --cache_features")
    point = None
    for scope, output in layer_outputs(model):
        if scope in trained_scopes:
            break
        point = scope, output
    if point is None:
        raise UserError("--cache_features: conv1 is trained (see --trainable_scopes), so no layer output is "
                        "fixed; freeze at least conv1 or turn off --cache_features")
    return point


def compute(sess, tensor, images_placeholder, images, batch_size=None, log_progress=None, interval=5.0,
            spill_dir=None):
    """``tensor`` evaluated on every image, in batches, into one preallocated float32 array [N, ...] (with
    ``spill_dir``, a RowFile of the same rows in an unlinked file there); with ``log_progress`` (a name for the
    log) a line every ``interval`` seconds and at the end says how far it is. ``batch_size`` defaults to
    train.eval_batch_size's."""
    batch_size = batch_size or train.eval_batch_size(images)
    if spill_dir:
        return _compute_to_file(sess, tensor, images_placeholder, images, batch_size, log_progress, interval,
                                spill_dir)
    output = np.empty([len(images)] + tensor.shape.as_list()[1:], np.float32)
    for begin, end, values in _batches(sess, tensor, images_placeholder, images, batch_size, log_progress, interval):
        output[begin:end] = values
    return output


def _compute_to_file(sess, tensor, images_placeholder, images, batch_size, log_progress, interval, directory):
    fd, path = tempfile.mkstemp(dir=directory, prefix=".features-", suffix=".tmp")
    os.unlink(path)  # the open descriptor keeps it: nothing stays behind, even after a kill
    try:
        for _, _, values in _batches(sess, tensor, images_placeholder, images, batch_size, log_progress, interval):
            os.write(fd, np.ascontiguousarray(values, np.float32).tobytes())
        return data.rows.RowFile(path, tensor.shape.as_list()[1:], dtype=np.float32, fd=fd, flat=False)
    except BaseException:
        os.close(fd)
        raise


def _batches(sess, tensor, images_placeholder, images, batch_size, log_progress, interval):
    """(begin, end, ``tensor`` on images[begin:end]) over all images, with the progress lines of ``compute``."""
    start = last_log = time.monotonic()
    for begin in range(0, len(images), batch_size):
        end = min(begin + batch_size, len(images))
        yield begin, end, sess.run(tensor, {images_placeholder: data.as_float(images[begin:end])})
        now = time.monotonic()
        if log_progress and (now - last_log >= interval or end == len(images)):
            last_log = now
            logging.info("%s: %d/%d images, %.0f img/s", log_progress, end, len(images),
                         end / max(now - start, 1e-9))


def compute_splits(sess, point, images_placeholder, datasets, spill_dir=None):
    """``datasets`` with every split's images replaced by the output of ``point`` (a cache_point) on them: in
    memory, or in ``spill_dir`` where all of them would take more than IN_MEMORY_BYTES."""
    layer, tensor = point
    size = sum(len(split.images) for split in datasets.splits().values()) * tensor.shape[1:].num_elements() * 4
    on_disk = spill_dir if spill_dir and size > IN_MEMORY_BYTES else None
    logging.info("caching the output of the frozen layers (%s) for every image%s", layer,
                 f" on disk ({size / 2 ** 20:,.0f} MiB)" if on_disk else "")
    return datasets.map_splits(lambda name, split: split._replace(images=compute(
        sess, tensor, images_placeholder, split.images, log_progress=f"{layer} of {name}", spill_dir=on_disk)))
