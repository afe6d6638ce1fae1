"""Step 1 of the workflow: train the convolutional autoencoder on MNIST images (no labels) and checkpoint it."""

import contextlib
import os
import time

import tensorflow as tf
from absl import logging

from cae import data, models, pipeline, projector, session, summaries, train, train_dir
from cae.config import PretrainConfig  # noqa: F401 (re-exported: cae.pretrain.PretrainConfig, as before)

v1 = tf.compat.v1


def build_graph(cfg, total_steps):
    """The autoencoder with its optimizer, summaries and Saver, in a new graph; returns (graph, tensors)."""
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(cfg.seed)
        t_input = pipeline.build(with_labels=False)
        images = t_input["images"]
        t = models.autoencoder(images, cfg.latent_size, cfg.loss, cfg.input_noise)
        t["input"] = t_input
        model_variables = v1.trainable_variables()
        t["global_step"] = v1.train.get_or_create_global_step()
        with v1.name_scope("Solver"):
            t["learning_rate"] = train.learning_rate(cfg.learning_rate, cfg.lr_schedule, t["global_step"],
                                                     total_steps)
            optimizer = v1.train.AdamOptimizer(t["learning_rate"])
            t["train_op"] = optimizer.minimize(t["loss"], global_step=t["global_step"])
        t["train_summary"] = summaries.train_scalars(t["loss"], t["learning_rate"])
        t["epoch_summary"] = summaries.epoch_summary(
            model_variables, {name: t[name] for name in ("conv1", "conv2", "latent")},
            summaries.reconstruction_image(images, t["reconstruction"]))
        if cfg.projector_images:
            t["embedding"], t["embedding_update"] = projector.embedding(t["latent"], cfg.projector_images, "latent")
        t["init"] = v1.global_variables_initializer()
        t["saver"] = v1.train.Saver(max_to_keep=cfg.keep_checkpoints)
    return graph, t


def pretrain(cfg, datasets=None):
    """Train (or resume) the autoencoder in cfg.train_dir; return the final metrics dict.

    Everything the user gave (train_dir, data, the train_dir's own checkpoint) is checked before the train_dir is
    created or written to.
    """
    summaries.check_every_steps(cfg.summary_every_steps)
    train_dir.check_writable(cfg.train_dir)
    datasets = datasets or data.load(cfg.data_dir, num_labels=cfg.max_train_examples,
                                     download_missing=cfg.download, limit_flag="max_train_examples",
                                     dataset=cfg.dataset)
    train_images = datasets.train.images
    projector_images, projector_labels = projector.subset(datasets.test, cfg.projector_images)
    graph, t = build_graph(cfg, cfg.epochs * train.steps_per_epoch(len(train_images), cfg.batch_size))
    if cfg.projector_images:
        projector.check_resume(cfg.train_dir, t["embedding"], cfg.projector_images)
    with v1.Session(graph=graph, config=session.config_for(cfg)) as sess, contextlib.ExitStack() as claimed:
        sess.run(t["init"])
        resumed = train.restore_latest(sess, t["saver"], cfg.train_dir)
        first_step = int(sess.run(t["global_step"]))
        claimed.enter_context(train_dir.claim(cfg.train_dir))  # from here on, this run alone writes there
        writer = train_dir.event_writer(cfg.train_dir, graph, first_step)
        if cfg.projector_images:
            projector.write_assets(cfg.train_dir, t["embedding"], projector_images, projector_labels)
        if resumed:
            logging.info("resuming from %s at step %d", resumed, first_step)

        def on_epoch_start(indices):
            pipeline.start(sess, t["input"], datasets.train, indices, cfg.batch_size)

        run_step = summaries.training_step(sess, t["train_op"], t["loss"], t["train_summary"],
                                           lambda indices: None,  # the pipeline brings the batch
                                           writer, first_step, cfg.summary_every_steps)

        def on_epoch_end(epoch, step):
            val = pipeline.evaluate(sess, t["input"], {"loss": t["loss"]}, datasets.validation)
            summaries.scalars({"val/reconstruction_loss": val["loss"]}, step, writer)
            summaries.add(writer, sess.run(t["epoch_summary"],
                                           {t["images"]: datasets.validation.images[:summaries.EPOCH_BATCH]}), step)
            logging.info("epoch %d: validation reconstruction loss %.5f", epoch, val["loss"])
            save(step)

        def save(step):
            projector.refresh(sess, t, projector_images)  # every checkpoint holds its own model's features
            writer.flush()  # events up to a checkpoint are on disk before it: a resume never leaves a gap
            train.save(sess, t["saver"], cfg.train_dir, step)

        try:
            start = time.time()
            step = train.fit(run_step, len(train_images), cfg.batch_size, cfg.epochs, first_step, cfg.seed,
                             on_epoch_end, cfg.save_every_steps, save, on_epoch_start)
            wall = time.time() - start
            test = pipeline.evaluate(sess, t["input"], {"loss": t["loss"]}, datasets.test)
            summaries.scalars({"test/reconstruction_loss": test["loss"]}, step, writer)
        finally:
            writer.close()
        trained = (step - first_step) * cfg.batch_size
        metrics = {"test_reconstruction_loss": test["loss"], "loss": cfg.loss, "steps": step,
                   "wall_time_s": wall, "images_per_s": trained / wall if wall > 0 else 0.0}
        train.write_json(os.path.join(cfg.train_dir, "metrics.json"), metrics)
        logging.info("test reconstruction loss (%s): %.5f", cfg.loss, test["loss"])
    return metrics
