"""Steps 2-4 of the workflow: build the classifier, restore only the chosen scopes from the autoencoder
checkpoint, and train only the chosen scopes (TF-Slim's ``--checkpoint_path`` / ``--trainable_scopes`` recipe)."""

import dataclasses
import os

import numpy as np
import tensorflow as tf
from absl import logging
from tensorboard.plugins.pr_curve import summary as pr_curve_summary

from cae import augment, class_metrics, clones, cluster, data, distributed, export, features, model_info, models
from cae import optimize, pipeline, progress, projector, restore, semi_supervised, session, summaries, train
from cae import train_dir, training_run
from cae.config import PretrainConfig
from cae.errors import UserError

v1 = tf.compat.v1


FROZEN_HEAD_SCOPES = ",".join(models.HEAD_SCOPES)  # fc1,logits
ALL_SCOPES = ",".join(models.classifier_scopes())  # conv1,conv2,fc1,logits: the tutorial's classifier


def _with_decoder(scopes, cfg, latent_size):
    """A semi-supervised run with a reconstruction loss also restores and trains the autoencoder's decoder."""
    if cfg.semi_supervised and cfg.reconstruction_weight:
        return ",".join([scopes, *models.decoder_scopes(cfg.filters, latent_size)])
    return scopes


def trainable_scopes(cfg, latent_size=PretrainConfig.latent_size):
    """What the optimizer trains: as asked, else the new head over a checkpoint, else everything (scratch, and
    every semi-supervised run, its decoder included)."""
    if cfg.trainable_scopes:
        return cfg.trainable_scopes
    every_layer = ",".join(models.classifier_scopes(cfg.filters))
    if cfg.semi_supervised:
        return _with_decoder(every_layer, cfg, latent_size)
    return FROZEN_HEAD_SCOPES if cfg.checkpoint_path else every_layer


def restore_scopes(cfg, latent_size=PretrainConfig.latent_size):
    """What the selective Saver restores from --checkpoint_path: --restore_scopes, by default every conv of the
    encoder (and the decoder, see _with_decoder)."""
    return _with_decoder(cfg.restore_scopes or ",".join(models.conv_scopes(cfg.filters)), cfg, latent_size)


def build_graph(cfg, total_steps, image_shape=models.MNIST_SHAPE, num_classes=models.MNIST_CLASSES,
                latent_size=None, class_weights=None):
    """Classifier, selective restore Saver, and an optimizer over the trainable scopes only: a
    training_run.TrainGraph. With cfg.semi_supervised the classifier that is validated is the teacher (see
    cae.semi_supervised) and ``latent_size`` sizes its decoder. ``class_weights`` weigh the training loss (the
    evaluated loss stays unweighted, comparable between runs)."""
    cfg = cfg.settled()
    latent_size = PretrainConfig.latent_size if latent_size is None else latent_size
    task = cluster.task_of(cfg)  # in a cluster: this worker's graph (cae.distributed)
    graph = tf.Graph()
    with graph.as_default(), distributed.placement(task):
        v1.set_random_seed(cfg.seed)
        aug = semi_supervised.augmentation(cfg, image_shape) if cfg.semi_supervised else augment.from_config(cfg)
        augment_batch = augment.batch_augmenter(aug, image_shape, cfg.seed)
        global_step = v1.train.get_or_create_global_step()  # before the model: batch norm's averages warm up by it
        batches = pipeline.build(models.num_pixels(image_shape), with_labels=True, augment=augment_batch,
                                 unlabeled=cfg.semi_supervised, shards=cfg.num_clones, part=distributed.part(task))
        training_feed, training = None, False
        if cfg.batch_norm:  # trained convs normalize by their batch in a training step; frozen ones never do
            switch = models.training_mode()
            trains = restore.scope_regex(trainable_scopes(cfg, latent_size), "trainable_scopes")
            training = {scope: switch for scope in models.conv_scopes(cfg.filters) if trains.match(f"{scope}/")}
            training_feed = {switch: True}
        semi, towers = None, None
        if cfg.semi_supervised:
            semi = semi_supervised.build(batches, cfg, aug, image_shape, num_classes,
                                         latent_size, global_step, total_steps,
                                         class_weights, training)
            model = semi.evaluated
            loss, accuracy = models.classification_loss(model.logits, batches.labels)
            objective = semi.total
        else:
            def tower(clone, images, labels):
                model = models.classifier(images, num_classes, image_shape=image_shape, filters=cfg.filters,
                                          batch_norm=cfg.batch_norm, training=training)
                loss, accuracy = models.classification_loss(model.logits, labels)
                objective = loss
                if class_weights is not None:
                    with v1.name_scope("WEIGHTED_LOSS"):
                        objective = models.cross_entropy(model.logits, labels, class_weights)
                return (model, loss, accuracy, objective), objective

            towers = clones.deploy(cfg.num_clones, cfg.clone_on_cpu, tower, batches.shards, batches.shares)
            # evaluation, summaries and the projector feed clone 0 whole batches; training shows every clone's loss
            model, loss, accuracy, objective = towers.clones[0].outputs
            objective = towers.total_loss if cfg.num_clones > 1 else objective
        # Captured before the optimizer exists: the model's own weights (and batch normalization's moving
        # averages, restored with their layer), never slots, the teacher's averages or global_step.
        model_variables = models.model_variables()
        restored = (restore.select(model_variables, restore_scopes(cfg, latent_size), "restore_scopes")
                    if cfg.checkpoint_path else [])
        trained = restore.select(v1.trainable_variables(), trainable_scopes(cfg, latent_size), "trainable_scopes")
        sync = distributed.SyncReplicas(task, global_step, batches.worker_share) if task else None
        with v1.name_scope("Solver"):
            learning_rate = train.learning_rate(cfg.learning_rate, cfg.lr_schedule, global_step, total_steps)
            train_op, learning_rates = optimize.train_op(objective, trained, restored, learning_rate,
                                                         cfg.restored_lr_multiplier, global_step, towers, sync,
                                                         restored_warmup_steps(cfg, total_steps))
        after_restore = None
        if semi and semi.averages:
            averaged = [v for v in model_variables if v.op.name in semi.averages]
            train_op = semi_supervised.teacher_update(train_op, semi, averaged, cfg.ema_decay, global_step)
            after_restore = semi_supervised.copy_to_averages(semi.averages, averaged)
        # TensorBoard's view of the augmentation, on the fed validation images (the iterator keeps its place)
        preview = []
        if semi or aug.enabled:
            weak, _, strong_view = semi_supervised.views(model.images, image_shape, aug, cfg, global_step,
                                                         semi_supervised.PREVIEW_STREAMS)
            preview = [summaries.augmentation_image(model.images, [weak, strong_view] if semi else [weak],
                                                    image_shape)]
        epoch_summary = summaries.epoch_summary(model_variables, models.activations(model, ("fc1", model.fc1)),
                                                *preview)
        embedding = (projector.embedding(model.images, model.fc1, cfg.projector_images, "fc1")
                     if cfg.projector_images else None)
        train_scalars = summaries.train_scalars(objective, learning_rate, semi.terms if semi else None)
        return training_run.TrainGraph(
            graph=graph, model=model, input=batches, metrics={"loss": loss, "accuracy": accuracy},
            global_step=global_step, learning_rate=learning_rate, train_op=train_op, model_variables=model_variables,
            restored=restored, trained=trained, learning_rates=learning_rates,
            train_summary=train_scalars, epoch_summary=epoch_summary,
            embedding=embedding, init=v1.global_variables_initializer(),
            saver=v1.train.Saver(max_to_keep=cfg.keep_checkpoints),
            restore_saver=restore.restore_saver(restored) if restored else None,
            best_saver=v1.train.Saver(max_to_keep=1, name="best_saver"),
            objective=None if objective is loss else objective, after_restore=after_restore, train_feed=training_feed,
            sync=sync)


def restored_warmup_steps(cfg, total_steps):
    """The steps at the start of the run during which the restored layers stand still (--restored_warmup)."""
    return int(round(cfg.restored_warmup * total_steps)) if cfg.checkpoint_path else 0


def initialize(sess, g, cfg, warmup_steps=0):
    """Run the initializer, then restore: the train_dir's own checkpoint if it has one (resume), else only the
    selected scopes from --checkpoint_path. Returns the restore report lines (``warmup_steps``: the restored layers'
    first trained step, for the report)."""
    sess.run(g.init)
    own = train.restore_latest(sess, g.saver, cfg.train_dir)
    if own:
        note = f" (--checkpoint_path {cfg.checkpoint_path} ignored)" if cfg.checkpoint_path else ""
        return [f"resumed all variables from {own}{note}"]
    if not cfg.checkpoint_path:
        lines = restore.report_lines([], g.model_variables, None, g.trained)
    else:
        checkpoint = restore.resolve_checkpoint(cfg.checkpoint_path)
        restore.check_input_channels(checkpoint, g.restored)
        restore.check_compatible(checkpoint, g.restored)
        g.restore_saver.restore(sess, checkpoint)
        lines = restore.report_lines(g.restored, g.model_variables, checkpoint, g.trained,
                                     cfg.restored_lr_multiplier, warmup_steps)
    if g.after_restore is not None:
        sess.run(g.after_restore)
        lines.append("teacher: the exponential moving average of the classifier's weights starts from them")
    return lines


def check_options(cfg):
    """The semi-supervised and augmentation flags that cannot go together; returns cfg (cache_features settled)."""
    if cfg.num_clones > 1 and cfg.semi_supervised:
        raise UserError(f"--num_clones={cfg.num_clones} with --semi_supervised: a semi-supervised step is not split "
                        f"over clones yet; drop one of them")
    if cfg.num_clones > 1 and cfg.cache_features:
        raise UserError(f"--num_clones={cfg.num_clones} with --cache_features: cached features train the head "
                        f"alone on fed batches, which clones cannot split; drop one of them")
    if cfg.semi_supervised and cfg.cache_features:
        raise UserError("--semi_supervised with --cache_features: a semi-supervised run trains the encoder on "
                        "augmented views at every step, so no feature cache can serve; drop --cache_features")
    if cfg.unlabeled_dir and not cfg.semi_supervised:
        raise UserError(f"--unlabeled_dir={cfg.unlabeled_dir} needs --semi_supervised")
    if cfg.strong_photometric and not cfg.semi_supervised:
        raise UserError(f"--strong_photometric={cfg.strong_photometric:g} needs --semi_supervised (it jitters only "
                        f"the student's unlabelled view); for the labelled batches use --random_brightness and "
                        f"--random_contrast")
    if cfg.restored_warmup and not cfg.checkpoint_path:
        raise UserError(f"--restored_warmup={cfg.restored_warmup:g} needs --checkpoint_path (it holds the restored "
                        f"layers still while the new ones learn)")
    if cfg.positive_class and not cfg.target_recall:
        raise UserError(f"--positive_class={cfg.positive_class} needs --target_recall (the share of it to find)")
    if cfg.num_labels and cfg.labels_per_class:
        raise UserError(f"--num_labels={cfg.num_labels} and --labels_per_class={cfg.labels_per_class}: give one")
    if cfg.cache_features and cfg.augmenting:
        logging.warning("--cache_features: augmented training images change at every step, so their features "
                        "cannot be cached (retrain.py's rule); running the frozen layers at every step")
        cfg = dataclasses.replace(cfg, cache_features=False)
    return cfg


def load_data(cfg, datasets=None):
    """(Datasets whose train split is the labelled training images, the unlabelled images or None).

    ``--num_labels`` keeps the first N training images, ``--labels_per_class`` the first N of each class (in the
    folder's hash order, or for MNIST an order drawn from --seed). A semi-supervised run's unlabelled images are
    every training image, labels ignored, and the images of --unlabeled_dir. Given ``datasets`` are whole, except
    that without either of those a caller has already cut them to --num_labels.
    """
    whole = cfg.semi_supervised or cfg.labels_per_class
    if datasets is None:
        datasets = data.from_config(cfg, limit=None if whole else cfg.num_labels)
    if not whole:
        return datasets, None
    labelled = datasets.train
    if cfg.labels_per_class:
        order = None if cfg.image_dir else np.random.default_rng(cfg.seed).permutation(len(labelled.labels))
        labelled = data.splits.per_class(labelled, cfg.labels_per_class, datasets.class_names, order)
    elif cfg.num_labels:
        labelled = data.splits.limit(labelled, cfg.num_labels)
    unlabeled = None
    if cfg.semi_supervised:
        unlabeled = datasets.train.images
        if cfg.unlabeled_dir:
            more = data.folders.load_unlabeled(cfg.unlabeled_dir, datasets.image_shape, cfg.skip_bad_images)
            unlabeled = data.concatenate(unlabeled, more)
    return datasets._replace(train=labelled), unlabeled


def check_encoder(cfg):
    """A checkpoint whose encoder has another depth than --encoder_filters: one line naming both (where the default
    --restore_scopes would restore the whole encoder). Other widths, or no encoder at all, are named variable by
    variable, with both shapes, by the restore's checks."""
    if not cfg.checkpoint_path:
        return
    checkpoint = restore.resolve_checkpoint(cfg.checkpoint_path, warn=False)
    shapes = restore.checkpoint_shapes(checkpoint)
    stored = models.encoder_filters_of(shapes)
    if stored and models.has_batch_norm(shapes) != cfg.batch_norm:
        held, flag = (("batch-normalized convs", "--batch_norm") if models.has_batch_norm(shapes) else
                      ("convs without batch normalization", "--nobatch_norm"))
        raise UserError(f"--checkpoint_path={cfg.checkpoint_path}: holds {held} (conv1/batch_normalization/gamma "
                        f"{'present' if cfg.batch_norm is False else 'missing'}); pass {flag} as its autoencoder "
                        f"was trained")
    if stored and len(stored) != len(cfg.filters) and not cfg.restore_scopes:
        raise UserError(f"--checkpoint_path={cfg.checkpoint_path}: holds an encoder of {len(stored)} convs of widths "
                        f"{','.join(map(str, stored))}; --encoder_filters={cfg.encoder_filters} builds "
                        f"{len(cfg.filters)} (pass the autoencoder's --encoder_filters, or choose --restore_scopes)")


def decoder_latent_size(cfg):
    """The latent size of the decoder a semi-supervised run restores from --checkpoint_path (None: nothing to
    restore; 0: a decoder without a dense bottleneck); UserError where the checkpoint has no decoder but the
    reconstruction loss needs one."""
    if not (cfg.semi_supervised and cfg.reconstruction_weight and cfg.checkpoint_path):
        return None
    checkpoint = restore.resolve_checkpoint(cfg.checkpoint_path, warn=False)
    shapes = restore.checkpoint_shapes(checkpoint)
    shape = shapes.get("latent_var/kernel")
    if shape is None and "dconv1/kernel" in shapes:
        return 0
    if shape is None:
        raise UserError(f"--checkpoint_path={cfg.checkpoint_path}: no decoder in it (latent_var/kernel missing; "
                        f"not an autoencoder checkpoint), but --semi_supervised's reconstruction loss needs one; "
                        f"pass an autoencoder checkpoint or --reconstruction_weight=0")
    return shape[1]


def training_class_weights(cfg, datasets):
    """--class_weight's loss weights from the labelled training split (None: unweighted)."""
    if cfg.class_weight == "none":
        return None
    try:
        return class_metrics.balanced_class_weights(datasets.train.labels, datasets.class_names)
    except ValueError as e:
        raise UserError(f"--class_weight=balanced: {e} (every class needs one in the labelled training split)")


def positive_class(cfg, datasets):
    """The index of the class --target_recall finds: --positive_class, else the one with fewer labelled training
    images (the second on a tie); None without --target_recall. UserError unless there are two classes."""
    if not cfg.target_recall:
        return None
    names = list(datasets.class_names)
    if len(names) != 2:
        raise UserError(f"--target_recall={cfg.target_recall:g}: an operating point needs two classes, the data has "
                        f"{len(names)}")
    if cfg.positive_class and cfg.positive_class not in names:
        raise UserError(f"--positive_class={cfg.positive_class}: not a class of the data ({', '.join(names)})")
    counts = np.bincount(datasets.train.labels, minlength=2)
    index = names.index(cfg.positive_class) if cfg.positive_class else int(counts[0] >= counts[1])
    if not np.any(datasets.validation.labels == index):
        raise UserError(f"--target_recall={cfg.target_recall:g}: the validation split has no image of "
                        f"{names[index]} to choose a threshold on (give it more images, or a larger "
                        f"--validation_percentage)")
    return index


def evaluate(run, g, split):
    """(mean loss and accuracy, every image's predictions and probabilities) of the evaluated classifier."""
    return train.evaluate(run.sess, g.metrics, run.batches, split, per_example={
        "predictions": g.model.predictions, "probabilities": g.model.probabilities})


def measure(run, g, split, class_names, prefix, step):
    """Loss, accuracy and class_metrics.report of the evaluated classifier on ``split`` (with its confusion
    ``counts``), written to TensorBoard as ``<prefix>/...`` scalars and, for two classes, a PR curve of each class
    (TensorBoard's PR-curve plugin)."""
    means, rows = evaluate(run, g, split)
    counts = class_metrics.confusion_matrix(split.labels, rows["predictions"], len(class_names))
    values = class_metrics.report(counts, split.labels, rows["probabilities"], class_names)
    # the graph's own loss and accuracy, the figures of every earlier run
    values.update(means, counts=counts)
    shown = {key: values[key] for key in ("loss", "accuracy", "balanced_accuracy", "macro_f1", "roc_auc")
             if values.get(key) is not None}
    summaries.scalars({f"{prefix}/{key}": value for key, value in shown.items()}, step, run.writer)
    if len(class_names) == 2:  # each class's curve: which one is "positive" (the defect, the rare) is the user's
        for index, name in enumerate(class_names):
            run.writer.add_summary(pr_curve_summary.pb(f"{prefix}/pr_curve/{name}", split.labels == index,
                                                       rows["probabilities"][:, index].astype(np.float32)), step)
    return values


def operating_point(cfg, datasets, checkpoint, index, run, step):
    """--target_recall's threshold on class ``index`` and what it does on the test split, logged and written to
    TensorBoard: (model_info.Decision, class_metrics.operating_point report). Chosen and measured on the
    probabilities of the model export and predict serve from the tested ``checkpoint`` (float32): a
    --precision=mixed_bfloat16 run's own probabilities differ a little, enough to move a threshold where scores
    crowd."""
    validation, test = export.served_probabilities(checkpoint, datasets.image_shape, len(datasets.class_names),
                                                   (cfg.filters, cfg.batch_norm),
                                                   [datasets.validation.images, datasets.test.images])
    point = class_metrics.operating_point(cfg.target_recall, index, datasets.class_names[index],
                                          (datasets.validation.labels, validation), (datasets.test.labels, test))
    for line in class_metrics.operating_point_lines(point):
        logging.info("%s", line)
    summaries.scalars({f"test/operating_point/{key}": point["test"][key] for key in ("recall", "false_alarm_rate")},
                      step, run.writer)
    return model_info.Decision(point["class"], point["threshold"], point["target_recall"]), point


def transfer(cfg, datasets=None):
    """Train (or resume) the classifier in cfg.train_dir; return the final metrics dict.

    Everything the user gave (train_dir, data, scopes, checkpoints) is checked before the train_dir is created or
    written to.
    """
    task = cluster.task_of(cfg)
    if task and cfg.cache_features is None:  # workers train on parts of the pipeline's batches, never fed features
        cfg = dataclasses.replace(cfg, cache_features=False)
    cfg = check_options(cfg.settled())
    summaries.check_every_steps(cfg.summary_every_steps)
    training_run.check_devices_and_cluster(cfg)
    if task and task.job == "ps":
        return distributed.serve(task, session.config_proto_for(cfg))
    check_encoder(cfg)
    latent_size = decoder_latent_size(cfg)
    datasets, unlabeled = load_data(cfg, datasets)
    models.check_image_size(cfg.filters, datasets.image_shape, f"--encoder_filters={cfg.encoder_filters}")
    cfg = dataclasses.replace(cfg, projector_images=projector.fit_count(cfg.projector_images, datasets.test))
    projector_set = projector.subset(datasets.test, cfg.projector_images, image_shape=datasets.image_shape)
    # An epoch is a pass over the images the training loop counts: a semi-supervised run's unlabelled ones.
    epoch_images, epoch_batch = ((len(unlabeled), cfg.unlabeled_batch_size) if unlabeled is not None else
                                 (len(datasets.train.images), cfg.batch_size))
    total_steps = cfg.epochs * train.steps_per_epoch(epoch_images, epoch_batch)
    class_weights = training_class_weights(cfg, datasets)
    positive = positive_class(cfg, datasets)
    g = build_graph(cfg, total_steps, datasets.image_shape, len(datasets.class_names), latent_size, class_weights)
    model_info.check_resume(cfg.train_dir, datasets.class_names)
    # With --cache_features the frozen layers' outputs, computed once, are fed in place of their tensor (a fed
    # tensor cuts everything below it out of the run), so the pipeline never starts.
    cache_point = features.cache_point(g.model, g.restored, g.trained) if cfg.cache_features else None
    if g.embedding is not None:
        projector.check_resume(cfg.train_dir, g.embedding.variable, cfg.projector_images)

    def initialize_and_log(sess):
        lines = initialize(sess, g, cfg, restored_warmup_steps(cfg, total_steps))
        return lines + [f"training: {', '.join(v.op.name for v in g.trained)}"]

    def prepare_batches(sess):
        if unlabeled is not None:
            return g.input, datasets._replace(train=pipeline.Streams(unlabeled, datasets.train, cfg.batch_size,
                                                                     cfg.seed))
        if not cache_point:
            return g.input, datasets
        cached = features.compute_splits(sess, cache_point, g.model.images, datasets, spill_dir=cfg.train_dir)
        return pipeline.Feed(cache_point[1], g.input.labels), cached

    best = {"score": -1.0, "accuracy": None, "epoch": 0, "evaluations_since": 0}
    best_dir = os.path.join(cfg.train_dir, train_dir.BEST_DIR)

    def on_epoch_end(run, epoch, step):
        """Validate and checkpoint; with --patience keep the best weights by --select_by; return True to stop (no
        better validation for --patience validations, or --stop_at_accuracy reached)."""
        if epoch % cfg.eval_every_epochs and epoch != cfg.epochs:
            return False
        val = measure(run, g, run.splits.validation, datasets.class_names, "val", step)
        training_run.write_epoch_summary(run, g, datasets.validation.images, step)
        logging.info("epoch %d: validation accuracy %.4f loss %.4f%s", epoch, val["accuracy"], val["loss"],
                     "" if cfg.select_by == "accuracy" else f" {cfg.select_by} {val[cfg.select_by]:.4f}")
        run.save(step)
        if val[cfg.select_by] > best["score"]:
            best.update(score=val[cfg.select_by], accuracy=val["accuracy"], epoch=epoch, evaluations_since=0)
            if cfg.patience:  # a model of its own: predict and export take it as it is (train_dir.tested_checkpoint)
                g.best_saver.save(run.sess, os.path.join(best_dir, "model.ckpt"), step)
                model_info.write(best_dir, datasets.class_names, model_info.spec_of(datasets, cfg.image_dir))
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
            g.best_saver.restore(run.sess, tf.train.latest_checkpoint(best_dir))
        test = measure(run, g, run.splits.test, datasets.class_names, "test", step)
        summaries.image("test/confusion_matrix", summaries.confusion_pixels(test["counts"], datasets.class_names),
                        step, run.writer)
        progress.log_file_only("test accuracy: %.4f", test["accuracy"])  # the command prints it
        for line in class_metrics.table_lines(test):
            logging.info("%s", line)
        metrics = {"test_accuracy": test["accuracy"], "test_loss": test["loss"],
                   "test_balanced_accuracy": test["balanced_accuracy"], "test_macro_f1": test["macro_f1"],
                   "test_per_class": test["per_class"], "checkpoint_path": cfg.checkpoint_path,
                   "num_labels": len(datasets.train.labels), "best_epoch": best["epoch"],
                   "best_validation_accuracy": best["accuracy"], "select_by": cfg.select_by,
                   "best_validation_score": best["score"], "class_names": list(datasets.class_names),
                   "stopped_at_accuracy_epoch": best.get("reached_at_epoch")}
        if "roc_auc" in test:
            metrics["test_roc_auc"] = test["roc_auc"]
        decision = None
        tested_dir = best_dir if cfg.patience and best["epoch"] else cfg.train_dir  # its latest: the session's
        if positive is not None:
            decision, metrics["operating_point"] = operating_point(cfg, datasets, tf.train.latest_checkpoint(
                tested_dir), positive, run, step)
        for directory in {cfg.train_dir, tested_dir}:  # an earlier run's threshold belonged to other weights
            model_info.write_decision(directory, decision if directory == tested_dir else None)
        if class_weights is not None:
            metrics["class_weights"] = [float(w) for w in class_weights]
        return metrics

    return training_run.run(cfg, g, datasets, initialize_and_log, on_epoch_end, finish, projector_set,
                            prepare_batches,
                            classifier_info=(datasets.class_names, model_info.spec_of(datasets, cfg.image_dir)),
                            batch_size=epoch_batch)
