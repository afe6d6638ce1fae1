"""Steps 2-4 of the workflow: build the classifier, restore only the chosen scopes from the autoencoder
checkpoint, and train only the chosen scopes (TF-Slim's ``--checkpoint_path`` / ``--trainable_scopes`` recipe)."""

import dataclasses
import os

import tensorflow as tf
from absl import logging

from cae import data, features, model_info, models, optimize, pipeline, projector, restore, summaries
from cae import train, train_dir, training_run

v1 = tf.compat.v1


FROZEN_HEAD_SCOPES = "fc1,logits"
ALL_SCOPES = "conv1,conv2,fc1,logits"


def trainable_scopes(cfg):
    """What the optimizer trains: as asked, else the new head over a checkpoint, else everything (scratch)."""
    if cfg.trainable_scopes:
        return cfg.trainable_scopes
    return FROZEN_HEAD_SCOPES if cfg.checkpoint_path else ALL_SCOPES


def build_graph(cfg, total_steps, image_shape=models.MNIST_SHAPE, num_classes=models.MNIST_CLASSES):
    """Classifier, selective restore Saver, and an optimizer over the trainable scopes only: a
    training_run.TrainGraph."""
    cfg = cfg.settled()
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(cfg.seed)
        batches = pipeline.build(models.num_pixels(image_shape), with_labels=True)
        model = models.classifier(batches.images, num_classes, image_shape=image_shape)
        loss, accuracy = models.classification_loss(model.logits, batches.labels)
        # Captured before the optimizer exists: the model's own weights, never slots or global_step.
        model_variables = v1.trainable_variables()
        restored = (restore.select(model_variables, cfg.restore_scopes, "restore_scopes")
                    if cfg.checkpoint_path else [])
        trained = restore.select(model_variables, trainable_scopes(cfg), "trainable_scopes")
        global_step = v1.train.get_or_create_global_step()
        with v1.name_scope("Solver"):
            learning_rate = train.learning_rate(cfg.learning_rate, cfg.lr_schedule, global_step, total_steps)
            train_op, learning_rates = optimize.train_op(loss, trained, restored, learning_rate,
                                                         cfg.restored_lr_multiplier, global_step)
        epoch_summary = summaries.epoch_summary(model_variables,
                                                {"conv1": model.conv1, "conv2": model.conv2, "fc1": model.fc1})
        embedding = (projector.embedding(model.images, model.fc1, cfg.projector_images, "fc1")
                     if cfg.projector_images else None)
        return training_run.TrainGraph(
            graph=graph, model=model, input=batches, metrics={"loss": loss, "accuracy": accuracy},
            global_step=global_step, learning_rate=learning_rate, train_op=train_op, model_variables=model_variables,
            restored=restored, trained=trained, learning_rates=learning_rates,
            train_summary=summaries.train_scalars(loss, learning_rate), epoch_summary=epoch_summary,
            embedding=embedding, init=v1.global_variables_initializer(),
            saver=v1.train.Saver(max_to_keep=cfg.keep_checkpoints),
            restore_saver=restore.restore_saver(restored) if restored else None,
            best_saver=v1.train.Saver(max_to_keep=1, name="best_saver"))


def initialize(sess, g, cfg):
    """Run the initializer, then restore: the train_dir's own checkpoint if it has one (resume), else only the
    selected scopes from --checkpoint_path. Returns the restore report lines."""
    sess.run(g.init)
    own = train.restore_latest(sess, g.saver, cfg.train_dir)
    if own:
        note = f" (--checkpoint_path {cfg.checkpoint_path} ignored)" if cfg.checkpoint_path else ""
        return [f"resumed all variables from {own}{note}"]
    if not cfg.checkpoint_path:
        return restore.report_lines([], g.model_variables, None, g.trained, cfg.restored_lr_multiplier)
    checkpoint = restore.resolve_checkpoint(cfg.checkpoint_path)
    restore.check_input_channels(checkpoint, g.restored)
    restore.check_compatible(checkpoint, g.restored)
    g.restore_saver.restore(sess, checkpoint)
    return restore.report_lines(g.restored, g.model_variables, checkpoint, g.trained, cfg.restored_lr_multiplier)


def transfer(cfg, datasets=None):
    """Train (or resume) the classifier in cfg.train_dir; return the final metrics dict.

    Everything the user gave (train_dir, data, scopes, checkpoints) is checked before the train_dir is created or
    written to.
    """
    cfg = cfg.settled()
    summaries.check_every_steps(cfg.summary_every_steps)
    train_dir.check_writable(cfg.train_dir)
    datasets = datasets or data.from_config(cfg, limit=cfg.num_labels)
    cfg = dataclasses.replace(cfg, projector_images=projector.fit_count(cfg.projector_images, datasets.test))
    projector_set = projector.subset(datasets.test, cfg.projector_images, image_shape=datasets.image_shape)
    total_steps = cfg.epochs * train.steps_per_epoch(len(datasets.train.images), cfg.batch_size)
    g = build_graph(cfg, total_steps, datasets.image_shape, len(datasets.class_names))
    model_info.check_resume(cfg.train_dir, datasets.class_names)
    # With --cache_features the frozen layers' outputs, computed once, are fed in place of their tensor (a fed
    # tensor cuts everything below it out of the run), so the pipeline never starts.
    cache_point = features.cache_point(g.model, g.restored, g.trained) if cfg.cache_features else None
    if g.embedding is not None:
        projector.check_resume(cfg.train_dir, g.embedding.variable, cfg.projector_images)

    def initialize_and_log(sess):
        lines = initialize(sess, g, cfg)
        return lines + [f"training: {', '.join(v.op.name for v in g.trained)}"]

    def prepare_batches(sess):
        if not cache_point:
            return g.input, datasets
        cached = features.compute_splits(sess, cache_point, g.model.images, datasets)
        return pipeline.Feed(cache_point[1], g.input.labels), cached

    best = {"accuracy": -1.0, "epoch": 0, "evaluations_since": 0}

    def on_epoch_end(run, epoch, step):
        """Validate and checkpoint; with --patience keep the best weights; return True to stop (no better
        validation for --patience validations, or --stop_at_accuracy reached)."""
        if epoch % cfg.eval_every_epochs and epoch != cfg.epochs:
            return False
        val = train.evaluate(run.sess, g.metrics, run.batches, run.splits.validation)
        summaries.scalars({"val/loss": val["loss"], "val/accuracy": val["accuracy"]}, step, run.writer)
        training_run.write_epoch_summary(run, g, datasets.validation.images, step)
        logging.info("epoch %d: validation accuracy %.4f loss %.4f", epoch, val["accuracy"], val["loss"])
        run.save(step)
        if val["accuracy"] > best["accuracy"]:
            best.update(accuracy=val["accuracy"], epoch=epoch, evaluations_since=0)
            if cfg.patience:
                g.best_saver.save(run.sess, os.path.join(cfg.train_dir, "best", "model.ckpt"), step)
        else:
            best["evaluations_since"] += 1
        if cfg.stop_at_accuracy and val["accuracy"] >= cfg.stop_at_accuracy:
            logging.info("validation accuracy %.4f reached --stop_at_accuracy=%g: stopping", val["accuracy"],
                         cfg.stop_at_accuracy)
            best["reached_at_epoch"] = epoch
            return True
        return bool(cfg.patience) and best["evaluations_since"] >= cfg.patience

    def finish(run, step):
        if cfg.patience and best["epoch"]:  # early stopping: test the weights of the best validation
            g.best_saver.restore(run.sess, tf.train.latest_checkpoint(os.path.join(cfg.train_dir, "best")))
        test = train.evaluate(run.sess, g.metrics, run.batches, run.splits.test)
        summaries.scalars({"test/loss": test["loss"], "test/accuracy": test["accuracy"]}, step, run.writer)
        predictions = train.predict(run.sess, g.model.predictions, run.batches, run.splits.test)
        counts = summaries.confusion_matrix(datasets.test.labels, predictions, len(datasets.class_names))
        summaries.image("test/confusion_matrix", summaries.confusion_pixels(counts, datasets.class_names), step,
                        run.writer)
        logging.info("test accuracy: %.4f", test["accuracy"])
        return {"test_accuracy": test["accuracy"], "test_loss": test["loss"], "checkpoint_path": cfg.checkpoint_path,
                "num_labels": len(datasets.train.labels), "best_epoch": best["epoch"],
                "best_validation_accuracy": best["accuracy"], "class_names": list(datasets.class_names),
                "stopped_at_accuracy_epoch": best.get("reached_at_epoch")}

    return training_run.run(cfg, g, datasets, initialize_and_log, on_epoch_end, finish, projector_set,
                            prepare_batches,
                            classifier_info=(datasets.class_names, model_info.spec_of(datasets, cfg.image_dir)))
