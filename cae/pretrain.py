"""Step 1 of the workflow: train the convolutional autoencoder on images alone (no labels) and checkpoint it."""

import dataclasses

import tensorflow as tf
from absl import logging

from cae import augment, clones, cluster, data, distributed, models, optimize, pipeline, progress, projector
from cae import session, summaries, train, training_run

v1 = tf.compat.v1

CUTOUT_STREAM = 3  # cae.augment.step_seed's stream of --input_cutout (0: the augmentation)
MASK_STREAM = 4  # ... of --input_mask


def clone_seed(cfg, clone):
    """The seed of clone ``clone``'s own random draws (cae.clones): --seed for clone 0, ``--seed + i * 2**32`` for
    clone i, so its images do not get the squares or patches of clone 0's."""
    return cfg.seed + (clone << 32)


def input_cutout(cfg, image_shape, clone=0):
    """--input_cutout's corruption of the encoder's input (None without it): a new square at every step, drawn as
    the augmentation is, so a resumed run hides the same squares."""
    if not cfg.input_cutout:
        return None
    step = v1.train.get_or_create_global_step()

    def corrupt(images):
        return augment.cutout(images, image_shape, cfg.input_cutout,
                              augment.step_seed(clone_seed(cfg, clone), step, CUTOUT_STREAM))
    return corrupt


def input_mask(cfg, image_shape, clone=0):
    """--input_mask's hidden patches (None without it): images -> their mask, new patches at every step, drawn as
    the augmentation is. A patch is the square one code cell covers (2^N pixels for N convs)."""
    if not cfg.input_mask:
        return None
    step = v1.train.get_or_create_global_step()

    def hide(images):
        return augment.patch_mask(tf.shape(images)[0], image_shape, models.stride(cfg.filters), cfg.input_mask,
                                  augment.step_seed(clone_seed(cfg, clone), step, MASK_STREAM))
    return hide


def corrupted(cfg):
    """Whether the encoder sees other images than the loss compares with (TensorBoard then shows both)."""
    return bool(cfg.input_noise or cfg.input_cutout or cfg.input_mask)


def build_graph(cfg, total_steps, image_shape=models.MNIST_SHAPE):
    """The autoencoder with its optimizer, summaries and Saver, in a new graph: a training_run.TrainGraph. In a
    cluster (cae.cluster.task_of): this worker's graph (cae.distributed)."""
    task = cluster.task_of(cfg)
    graph = tf.Graph()
    with graph.as_default(), distributed.placement(task):
        v1.set_random_seed(cfg.seed)
        aug = augment.from_config(cfg)
        batches = pipeline.build(models.num_pixels(image_shape), with_labels=False,
                                 augment=augment.batch_augmenter(aug, image_shape, cfg.seed), shards=cfg.num_clones,
                                 part=distributed.part(task))
        training = models.training_mode() if cfg.batch_norm else False
        global_step = v1.train.get_or_create_global_step()  # before the model: batch norm's averages warm up by it

        def tower(clone, images):
            model = models.autoencoder(images, cfg.latent_size, cfg.loss, cfg.input_noise, image_shape,
                                       cfg.filters, cfg.batch_norm, training, input_cutout(cfg, image_shape, clone),
                                       input_mask(cfg, image_shape, clone))
            return model, model.loss

        towers = clones.deploy(cfg.num_clones, cfg.clone_on_cpu, tower, batches.shards, batches.shares)
        model = towers.clones[0].outputs  # evaluation, summaries and the projector feed clone 0 whole batches
        model_variables = models.model_variables()
        trained = v1.trainable_variables()
        sync = distributed.SyncReplicas(task, global_step, batches.worker_share) if task else None
        with v1.name_scope("Solver"):
            learning_rate = train.learning_rate(cfg.learning_rate, cfg.lr_schedule, global_step, total_steps)
            train_op, _ = optimize.train_op(model.loss, trained, [], learning_rate, 1.0, global_step, towers, sync)
        # TensorBoard's view of the augmentation, on the fed validation images
        preview = []
        if aug.enabled:
            seed = augment.step_seed(cfg.seed, global_step, augment.PREVIEW_STREAM)
            preview = [summaries.augmentation_image(model.images, [augment.augment(model.images, image_shape, aug,
                                                                                   seed)], image_shape)]
        epoch_summary = summaries.epoch_summary(
            model_variables, models.activations(model, ("latent", model.latent)),
            summaries.reconstruction_image(model.images, model.reconstruction, image_shape,
                                           seen=model.encoder_input if corrupted(cfg) else None), *preview)
        embedding = (projector.embedding(model.images, model.latent, cfg.projector_images, "latent")
                     if cfg.projector_images else None)
        return training_run.TrainGraph(
            graph=graph, model=model, input=batches, metrics={"loss": model.loss}, global_step=global_step,
            learning_rate=learning_rate, train_op=train_op, model_variables=model_variables, restored=[],
            trained=trained, learning_rates={v.op.name: learning_rate for v in trained},
            train_summary=summaries.train_scalars(towers.total_loss, learning_rate), epoch_summary=epoch_summary,
            embedding=embedding, init=v1.global_variables_initializer(),
            saver=v1.train.Saver(max_to_keep=cfg.keep_checkpoints), restore_saver=None, best_saver=None,
            # the training loss of every clone's part of the batch, not clone 0's alone
            objective=towers.total_loss if cfg.num_clones > 1 else None,
            train_feed={training: True} if cfg.batch_norm else None, sync=sync)


def pretrain(cfg, datasets=None):
    """Train (or resume) the autoencoder in cfg.train_dir; return the final metrics dict.

    Everything the user gave (train_dir, data, the train_dir's own checkpoint) is checked before the train_dir is
    created or written to.
    """
    summaries.check_every_steps(cfg.summary_every_steps)
    task = training_run.check_devices_and_cluster(cfg)
    if task and task.job == "ps":
        return distributed.serve(task, session.config_proto_for(cfg))
    datasets = datasets or data.from_config(cfg, labelled=False, limit=cfg.max_train_examples,
                                            limit_flag="max_train_examples")
    models.check_image_size(cfg.filters, datasets.image_shape, f"--encoder_filters={cfg.encoder_filters}")
    cfg = dataclasses.replace(cfg, projector_images=projector.fit_count(cfg.projector_images, datasets.test))
    projector_set = projector.subset(datasets.test, cfg.projector_images, image_shape=datasets.image_shape)
    g = build_graph(cfg, cfg.epochs * train.steps_per_epoch(len(datasets.train.images), cfg.batch_size),
                    datasets.image_shape)
    if g.embedding is not None:
        projector.check_resume(cfg.train_dir, g.embedding.variable, cfg.projector_images)

    def initialize(sess):
        sess.run(g.init)
        resumed = train.restore_latest(sess, g.saver, cfg.train_dir)
        return [f"resuming from {resumed} at step {int(sess.run(g.global_step))}"] if resumed else []

    def on_epoch_end(run, epoch, step):
        val = train.evaluate(run.sess, g.metrics, run.batches, run.splits.validation)
        summaries.scalars({"val/reconstruction_loss": val["loss"]}, step, run.writer)
        training_run.write_epoch_summary(run, g, datasets.validation.images, step)
        logging.info("epoch %d: validation reconstruction loss %.5f", epoch, val["loss"])
        run.save(step)
        return False

    def finish(run, step):
        test = train.evaluate(run.sess, g.metrics, run.batches, run.splits.test)
        summaries.scalars({"test/reconstruction_loss": test["loss"]}, step, run.writer)
        progress.log_file_only("test reconstruction loss (%s): %.5f", cfg.loss, test["loss"])  # printed by the command
        return {"test_reconstruction_loss": test["loss"], "loss": cfg.loss}

    return training_run.run(cfg, g, datasets, initialize, on_epoch_end, finish, projector_set)
