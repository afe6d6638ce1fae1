"""One training run in a --train_dir, for both workflow steps: the graph bundle they build, and the wrapper that
owns the session, the directory lock, the event writer, checkpoints and metrics.json.

The rules live here once: nothing is written before the run has initialized (every input was checked before),
the train_dir is locked before the first write, events are flushed before every checkpoint (a resume never
leaves a gap in TensorBoard), the projector's embedding is refreshed before every checkpoint, metrics.json is
written last. A workflow supplies only what differs, as TF-Slim's train script supplies ``init_fn`` and
``var_list`` to one loop: how to initialize, what to do at an epoch's end, and the final test.
"""

import contextlib
import os
import resource
import sys
import time
from typing import Callable, NamedTuple

import tensorflow as tf
from absl import logging

from cae import clones, cluster, data, distributed, model_info, pipeline, progress, projector, session, summaries
from cae import train, train_dir

v1 = tf.compat.v1


class TrainGraph(NamedTuple):
    """Everything a training run needs of its graph (built by pretrain.build_graph and transfer.build_graph)."""
    graph: tf.Graph
    model: NamedTuple  # models.Autoencoder or models.Classifier
    input: pipeline.Input  # the tf.data pipeline feeding model.images (and labels)
    metrics: dict  # name -> scalar tensor, averaged over a split by evaluation ("loss", "accuracy")
    global_step: tf.Variable
    learning_rate: tf.Tensor
    train_op: tf.Operation
    model_variables: list  # the model's own weights: never optimizer slots, global_step or the embedding
    restored: list  # restored from --checkpoint_path (empty for pretraining and from scratch)
    trained: list  # what the optimizer updates (its var_list)
    learning_rates: dict  # trained variable name -> its learning-rate tensor
    train_summary: tf.Tensor  # the train/ scalars, every --summary_every_steps
    epoch_summary: tf.Tensor  # histograms and images, once per epoch
    embedding: projector.Embedding  # None without --projector_images
    init: tf.Operation
    saver: tf.compat.v1.train.Saver  # every variable, into the train_dir
    restore_saver: tf.compat.v1.train.Saver  # only ``restored``, by name (None when nothing is restored)
    best_saver: tf.compat.v1.train.Saver  # the best validation's weights, into <train_dir>/best
    # What the optimizer minimizes, where it is not metrics["loss"] (a semi-supervised run's sum of terms).
    objective: tf.Tensor = None
    # Run after a restore that did not come from the train_dir's own checkpoint (the EMA teacher takes the weights).
    after_restore: tf.Operation = None
    # Fed with every training step (batch normalization's training switch), never with evaluation.
    train_feed: dict = None
    # In a cluster: the synchronous aggregation whose tokens start, step and end every worker (cae.distributed).
    sync: object = None

    @property
    def loss(self):
        """The training loss the loop watches and shows."""
        return self.metrics["loss"] if self.objective is None else self.objective


class Run(NamedTuple):
    """What a workflow's callbacks get while the run is on."""
    sess: tf.compat.v1.Session
    writer: tf.compat.v1.summary.FileWriter
    batches: object  # pipeline.Input or pipeline.Feed: how the splits below reach the graph
    splits: NamedTuple  # data.Datasets as batches reads them (cached features replace images)
    save: Callable  # save(step): refresh the projector, flush events, checkpoint


def check_devices_and_cluster(cfg):
    """Where a run of either workflow step will train, checked before anything is written: --num_clones against
    the devices and the batch, the cluster settings, and --train_dir where this task writes (one process, or a
    cluster's chief: another task's machine may lack it), its split too when it resumes. Returns this task of the
    cluster (None: one process)."""
    clones.check(cfg.num_clones, cfg.clone_on_cpu, cfg.batch_size)
    task = cluster.task_of(cfg)
    distributed.check(task, cfg)
    if task is None or task.is_chief:
        train_dir.check_writable(cfg.train_dir)
        train_dir.check_split(cfg.train_dir, train_dir.split_of(cfg))
    return task


def run(cfg, g, datasets, initialize, on_epoch_end, finish, projector_set=None, prepare_batches=None,
        classifier_info=None, batch_size=None):
    """Train ``g`` on ``datasets`` in cfg.train_dir from its global step to cfg.epochs; return the metrics.

    ``initialize(sess)`` runs the initializer and restores (the train_dir's own checkpoint, or a selective
    restore) and returns lines for the log. ``prepare_batches(sess)`` returns (batches, splits) for training
    and evaluation (default: the pipeline over ``datasets``). ``on_epoch_end(run, epoch, step)`` validates and
    saves, returning True to stop early; ``finish(run, step)`` tests and returns the workflow's metrics, to
    which the run adds its own (steps, times, images/s) before writing ``metrics.json``. A classifier's
    ``classifier_info`` (class names in logit order, model_info.InputSpec) go to ``labels.txt`` and ``input.json``
    as soon as the train_dir is claimed. An epoch passes over the training split's images in steps of
    ``batch_size`` (default cfg.batch_size; a semi-supervised run's unlabelled batch size).
    """
    batch_size = batch_size or cfg.batch_size
    task = cluster.task_of(cfg)
    with distributed.joined(task, session.config_proto_for(cfg)) as joined, \
            v1.Session(joined.target, graph=g.graph, config=joined.config) as sess, \
            contextlib.ExitStack() as claimed:
        if task is not None and not task.is_chief:
            return _follow(cfg, g, sess, datasets, prepare_batches, batch_size, joined.watch)
        report = initialize(sess)
        if g.sync is not None:
            sess.run(g.sync.start)  # the variables are ready: the other workers may start
        first_step = int(sess.run(g.global_step))
        claimed.enter_context(train_dir.claim(cfg.train_dir))  # from here on, this run alone writes there
        claimed.enter_context(_log_file(os.path.join(cfg.train_dir, LOG_FILE)))
        for line in report:
            logging.info("%s", line)
        writer = train_dir.event_writer(cfg.train_dir, g.graph, first_step)
        split = train_dir.split_of(cfg)
        if split:  # a folder's: it must hold when the run resumes
            train.write_json(os.path.join(cfg.train_dir, train_dir.SPLIT_FILE), split)
        if classifier_info:
            model_info.write(cfg.train_dir, *classifier_info)
        if g.embedding is not None:
            projector.write_assets(cfg.train_dir, g.embedding.variable, *projector_set, datasets.image_shape,
                                   datasets.class_names)

        prepare_start = time.time()
        batches, splits = prepare_batches(sess) if prepare_batches else (g.input, datasets)
        prepare_time = time.time() - prepare_start
        run_step = summaries.training_step(sess, g.train_op, g.loss, g.train_summary,
                                           lambda indices: {**(batches.train_feed(splits.train, indices) or {}),
                                                            **(g.train_feed or {})},
                                           writer, first_step, cfg.summary_every_steps)

        def save(step):
            # every checkpoint holds its own model's features
            projector.refresh(sess, g.embedding, projector_set[0] if projector_set else None)
            writer.flush()  # events up to a checkpoint are on disk before it: a resume never leaves a gap
            train.save(sess, g.saver, cfg.train_dir, step)

        current = Run(sess, writer, batches, splits, save)
        try:
            start = time.time()
            step = train.fit(run_step, len(splits.train.images), batch_size, cfg.epochs, first_step, cfg.seed,
                             lambda epoch, step: on_epoch_end(current, epoch, step), cfg.save_every_steps, save,
                             lambda orders, step: batches.start(sess, splits.train, orders, batch_size, step))
            wall = time.time() - start
            metrics = finish(current, step)
        finally:
            writer.close()
        steps = step - first_step
        metrics.update(steps=step, wall_time_s=wall, images_per_s=steps * batch_size / wall if wall > 0 else 0.0,
                       epoch_time_s=wall * train.steps_per_epoch(len(splits.train.images), batch_size)
                       / max(1, steps), peak_rss_mb=peak_rss_mb())
        if prepare_batches:
            metrics["cache_time_s"] = prepare_time
        train.write_json(os.path.join(cfg.train_dir, "metrics.json"), metrics)
        if g.sync is not None:
            joined.watch.stop()  # the others end now, as this task does
            sess.run(g.sync.finish)
    return metrics


def _follow(cfg, g, sess, datasets, prepare_batches, batch_size, watch):
    """A worker other than the chief: the same steps over the same batches (its part of each), writing nothing;
    returns None once the chief has written metrics.json."""
    sess.run(g.sync.wait)  # the chief's token: the variables are initialized or restored
    first_step = int(sess.run(g.global_step))
    batches, splits = prepare_batches(sess) if prepare_batches else (g.input, datasets)

    def run_step(indices):
        feed = {**(batches.train_feed(splits.train, indices) or {}), **(g.train_feed or {})}
        return sess.run([g.train_op, g.loss], feed)[1]

    train.fit(run_step, len(splits.train.images), batch_size, cfg.epochs, first_step, cfg.seed,
              start_epochs=lambda orders, step: batches.start(sess, splits.train, orders, batch_size, step))
    logging.info("trained to the last step; waiting for the chief to finish")
    sess.run(g.sync.finished)
    watch.stop()
    return None


def peak_rss_mb():
    """This process's peak resident memory so far, in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2 ** 20 if sys.platform == "darwin" else 2 ** 10)


LOG_FILE = "log.txt"  # absl's full records (time, thread, file:line) of every run in the train_dir, appended


@contextlib.contextmanager
def _log_file(path):
    handler = progress.log_file(path)
    absl_logger = logging.get_absl_logger()
    absl_logger.addHandler(handler)
    try:
        yield
    finally:
        absl_logger.removeHandler(handler)
        handler.close()


def write_epoch_summary(current, g, images, step):
    """The per-epoch histograms and images, on a fixed batch of ``images`` (the first validation images)."""
    batch = {g.model.images: data.as_float(images[:summaries.EPOCH_BATCH])}
    summaries.add(current.writer, current.sess.run(g.epoch_summary, batch), step)
