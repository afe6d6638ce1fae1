"""Steps 2-4 of the workflow: build the classifier, restore only the chosen scopes from the autoencoder
checkpoint, and train only the chosen scopes (TF-Slim's ``--checkpoint_path`` / ``--trainable_scopes`` recipe)."""

import contextlib
import os
import time

import tensorflow as tf
from absl import logging

from cae import data, features, models, optimize, pipeline, projector, restore, session, summaries, train, train_dir
from cae.config import TransferConfig  # noqa: F401 (re-exported: cae.transfer.TransferConfig, as before)

v1 = tf.compat.v1


FROZEN_HEAD_SCOPES = "fc1,logits"
ALL_SCOPES = "conv1,conv2,fc1,logits"


def trainable_scopes(cfg):
    """What the optimizer trains: as asked, else the new head over a checkpoint, else everything (scratch)."""
    if cfg.trainable_scopes:
        return cfg.trainable_scopes
    return FROZEN_HEAD_SCOPES if cfg.checkpoint_path else ALL_SCOPES


def build_graph(cfg, total_steps):
    """Classifier, selective restore Saver, and an optimizer over the trainable scopes only.

    Returns (graph, tensors); tensors holds ``model_variables``, ``restored`` and ``trained`` lists too.
    """
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(cfg.seed)
        t_input = pipeline.build(with_labels=True)
        labels = t_input["labels"]
        t = models.classifier(t_input["images"])
        t["labels"], t["input"] = labels, t_input
        t["loss"], t["accuracy"] = models.classification_loss(t["logits"], labels)
        # Captured before the optimizer exists: the model's own weights, never slots or global_step.
        t["model_variables"] = v1.trainable_variables()
        t["restored"] = (restore.select(t["model_variables"], cfg.restore_scopes, "restore_scopes")
                         if cfg.checkpoint_path else [])
        t["trained"] = restore.select(t["model_variables"], trainable_scopes(cfg), "trainable_scopes")
        t["global_step"] = v1.train.get_or_create_global_step()
        with v1.name_scope("Solver"):
            t["learning_rate"] = train.learning_rate(cfg.learning_rate, cfg.lr_schedule, t["global_step"],
                                                     total_steps)
            t["train_op"], t["learning_rates"] = optimize.train_op(
                t["loss"], t["trained"], t["restored"], t["learning_rate"], cfg.restored_lr_multiplier,
                t["global_step"])
        t["train_summary"] = summaries.train_scalars(t["loss"], t["learning_rate"])
        t["epoch_summary"] = summaries.epoch_summary(t["model_variables"],
                                                     {name: t[name] for name in ("conv1", "conv2", "fc1")})
        if cfg.projector_images:
            t["embedding"], t["embedding_update"] = projector.embedding(t["fc1"], cfg.projector_images, "fc1")
        t["init"] = v1.global_variables_initializer()
        t["restore_saver"] = restore.restore_saver(t["restored"]) if t["restored"] else None
        t["saver"] = v1.train.Saver(max_to_keep=cfg.keep_checkpoints)
        t["best_saver"] = v1.train.Saver(max_to_keep=1, name="best_saver")
    return graph, t


def initialize(sess, t, cfg):
    """Run the initializer, then restore: the train_dir's own checkpoint if it has one (resume), else only the
    selected scopes from --checkpoint_path. Returns the restore report lines."""
    sess.run(t["init"])
    own = train.restore_latest(sess, t["saver"], cfg.train_dir)
    if own:
        note = f" (--checkpoint_path {cfg.checkpoint_path} ignored)" if cfg.checkpoint_path else ""
        return [f"resumed all variables from {own}{note}"]
    if not cfg.checkpoint_path:
        return restore.report([], t["model_variables"], None, t["trained"], cfg.restored_lr_multiplier)
    checkpoint = restore.resolve_checkpoint(cfg.checkpoint_path)
    restore.check_compatible(checkpoint, t["restored"])
    t["restore_saver"].restore(sess, checkpoint)
    return restore.report(t["restored"], t["model_variables"], checkpoint, t["trained"],
                          cfg.restored_lr_multiplier)


def cached_inputs(sess, t, datasets):
    """With --cache_features: (the tensor to feed, each split's frozen-layer outputs computed once)."""
    key = features.cache_point(t["restored"], t["trained"])
    logging.info("caching the output of the frozen layers (%s) for every image", key)
    return t[key], datasets._replace(**{
        name: split._replace(images=features.compute(sess, t[key], t["images"], split.images,
                                                     log_progress=f"{key} of {name}"))
        for name, split in datasets._asdict().items()})


def split_runners(sess, t, cfg, datasets, metrics_of):
    """How training reads its batches and how a split is evaluated and predicted.

    Normally the tf.data pipeline brings the images. With --cache_features the frozen layers' outputs, computed
    once, are fed in place of their tensor (a fed tensor cuts everything below it out of the run) together
    with the labels, so the pipeline is never started. Returns (train feed_for, on_epoch_start, evaluate(name),
    predict(name)).
    """
    if not cfg.cache_features:
        return (lambda indices: None,  # the pipeline brings the batch
                lambda indices: pipeline.start(sess, t["input"], datasets.train, indices, cfg.batch_size),
                lambda name: pipeline.evaluate(sess, t["input"], metrics_of, getattr(datasets, name)),
                lambda name: pipeline.predict(sess, t["input"], t["predictions"], getattr(datasets, name)))
    inputs, cached = cached_inputs(sess, t, datasets)

    def feed(split):
        return lambda i: {inputs: split.images[i], t["labels"]: split.labels[i]}
    return (feed(cached.train), None,
            lambda name: train.evaluate(sess, metrics_of, feed(getattr(cached, name)),
                                        len(getattr(cached, name).labels)),
            lambda name: train.predict(sess, t["predictions"], feed(getattr(cached, name)),
                                       len(getattr(cached, name).labels)))


def transfer(cfg, datasets=None):
    """Train (or resume) the classifier in cfg.train_dir; return the final metrics dict.

    Everything the user gave (train_dir, data, scopes, checkpoints) is checked before the train_dir is created or
    written to.
    """
    summaries.check_every_steps(cfg.summary_every_steps)
    train_dir.check_writable(cfg.train_dir)
    datasets = datasets or data.load(cfg.data_dir, num_labels=cfg.num_labels, download_missing=cfg.download,
                                     dataset=cfg.dataset)
    projector_images, projector_labels = projector.subset(datasets.test, cfg.projector_images)
    total_steps = cfg.epochs * train.steps_per_epoch(len(datasets.train.labels), cfg.batch_size)
    graph, t = build_graph(cfg, total_steps)
    if cfg.cache_features:
        features.cache_point(t["restored"], t["trained"])  # refuse a bad combination before any training
    if cfg.projector_images:
        projector.check_resume(cfg.train_dir, t["embedding"], cfg.projector_images)

    metrics_of = {"loss": t["loss"], "accuracy": t["accuracy"]}
    best = {"accuracy": -1.0, "epoch": 0, "evaluations_since": 0}
    with v1.Session(graph=graph, config=session.config_for(cfg)) as sess, contextlib.ExitStack() as claimed:
        for line in initialize(sess, t, cfg):
            logging.info("%s", line)
        logging.info("training: %s", ", ".join(v.op.name for v in t["trained"]))
        first_step = int(sess.run(t["global_step"]))
        claimed.enter_context(train_dir.claim(cfg.train_dir))  # from here on, this run alone writes there
        writer = train_dir.event_writer(cfg.train_dir, graph, first_step)
        if cfg.projector_images:
            projector.write_assets(cfg.train_dir, t["embedding"], projector_images, projector_labels)

        cache_start = time.time()
        train_feed, on_epoch_start, evaluate, predict = split_runners(sess, t, cfg, datasets, metrics_of)
        cache_time = time.time() - cache_start
        run_step = summaries.training_step(sess, t["train_op"], t["loss"], t["train_summary"], train_feed,
                                           writer, first_step, cfg.summary_every_steps)

        def on_epoch_end(epoch, step):
            """Validate and checkpoint; with --patience keep the best weights and return True to stop."""
            if epoch % cfg.eval_every_epochs and epoch != cfg.epochs:
                return False
            val = evaluate("validation")
            summaries.scalars({"val/loss": val["loss"], "val/accuracy": val["accuracy"]}, step, writer)
            summaries.add(writer, sess.run(t["epoch_summary"],
                                           {t["images"]: datasets.validation.images[:summaries.EPOCH_BATCH]}), step)
            logging.info("epoch %d: validation accuracy %.4f loss %.4f", epoch, val["accuracy"], val["loss"])
            save(step)
            if val["accuracy"] > best["accuracy"]:
                best.update(accuracy=val["accuracy"], epoch=epoch, evaluations_since=0)
                if cfg.patience:
                    t["best_saver"].save(sess, os.path.join(cfg.train_dir, "best", "model.ckpt"), step)
            else:
                best["evaluations_since"] += 1
            return bool(cfg.patience) and best["evaluations_since"] >= cfg.patience

        def save(step):
            projector.refresh(sess, t, projector_images)  # every checkpoint holds its own model's features
            writer.flush()  # events up to a checkpoint are on disk before it: a resume never leaves a gap
            train.save(sess, t["saver"], cfg.train_dir, step)

        try:
            start = time.time()
            step = train.fit(run_step, len(datasets.train.labels), cfg.batch_size, cfg.epochs, first_step, cfg.seed,
                             on_epoch_end, cfg.save_every_steps, save, on_epoch_start)
            wall = time.time() - start
            if cfg.patience and best["epoch"]:  # early stopping: test the weights of the best validation
                t["best_saver"].restore(sess, tf.train.latest_checkpoint(os.path.join(cfg.train_dir, "best")))
            test = evaluate("test")
            summaries.scalars({"test/loss": test["loss"], "test/accuracy": test["accuracy"]}, step, writer)
            predictions = predict("test")
            counts = summaries.confusion_matrix(datasets.test.labels, predictions, data.NUM_CLASSES)
            summaries.image("test/confusion_matrix", summaries.confusion_pixels(counts), step, writer)
        finally:
            writer.close()
        trained = (step - first_step) * cfg.batch_size
        per_epoch = train.steps_per_epoch(len(datasets.train.labels), cfg.batch_size)
        metrics = {"test_accuracy": test["accuracy"], "test_loss": test["loss"], "steps": step,
                   "wall_time_s": wall, "images_per_s": trained / wall if wall > 0 else 0.0,
                   "checkpoint_path": cfg.checkpoint_path, "num_labels": len(datasets.train.labels),
                   "cache_time_s": cache_time, "epoch_time_s": wall * per_epoch / max(1, step - first_step),
                   "best_epoch": best["epoch"], "best_validation_accuracy": best["accuracy"]}
        train.write_json(os.path.join(cfg.train_dir, "metrics.json"), metrics)
        logging.info("test accuracy: %.4f", test["accuracy"])
    return metrics
