"""Semi-supervised training: the graph pieces that keep learning from unlabelled images while the classifier trains.

Every step takes a labelled batch x (augmented as the labelled batches of any run) and an unlabelled batch u, drawn
from every training image, labels ignored. u is seen in two views, each drawn with its own stateless seed:
a weak one (the run's augmentation) that the teacher classifies, and a strong one (the augmentation at
``strong_magnitude`` times its strength, its brightness, contrast and saturation jittered by at least
``strong_photometric`` percent, then a cutout) that the student learns from. The loss is

    cross-entropy(student(x), labels)
    + reconstruction_weight * reconstruction loss of the strong view before its cutout (its first --batch_size
      images), decoded from the student's conv2 of the strong view by the autoencoder's decoder (latent_var ...
      dconv2), restored from the autoencoder checkpoint: the autoencoder keeps teaching the encoder, and fills in
      what the cutout hid
    + ramp * fixmatch_weight * cross-entropy(student(strong u), the teacher's class of weak u) where the teacher's
      probability reaches fixmatch_threshold (FixMatch, Sohn et al. 2020), averaged over the whole batch
    + ramp * consistency_weight * squared distance between the student's and the teacher's class probabilities
      (Mean Teacher, Tarvainen & Valpola 2017)

Defaults, measured on MNIST with 10 labels per class (README, "Few labels"): both consistency terms, the
reconstruction, an EMA teacher of decay 0.99, 20 passes over the unlabelled images in batches of 256 with 64
labelled images a step. Without a given augmentation the weak view shifts by up to 1/8 of the side; the strong
view shifts twice as far and cuts out a gray half-side square. A weaker strong view (cutout 0.3, 1.5x) lost 4
points at 8 epochs; the number of steps mattered most (8 epochs: 96.4%, 20: 98.2%).

The teacher is an exponential moving average of the student's classifier weights: non-trainable variables named
``<variable>/ExponentialMovingAverage`` (TF1's ``tf.train.ExponentialMovingAverage`` names), updated after each
optimizer step, with TF1's warm-up ``decay = min(decay, (1 + step) / (10 + step))``. It is the classifier that
is validated, tested and exported; the student only trains. With ``ema_decay`` 0 the student is its own teacher.
"""

from typing import NamedTuple

import tensorflow as tf

from cae import augment, layers, models, restore

v1 = tf.compat.v1

EMA_SUFFIX = "ExponentialMovingAverage"
# Seed streams of a step's views (cae.augment.step_seed): the labelled batch uses stream 0.
WEAK_STREAM, STRONG_STREAM, CUTOUT_STREAM = 1, 2, 3
PREVIEW_STREAMS = tuple(augment.PREVIEW_STREAM + i for i in range(3))  # the views TensorBoard shows


class Graph(NamedTuple):
    """What cae.transfer needs of the semi-supervised graph."""
    evaluated: models.Classifier  # the teacher (or the student without one) on IMAGE_IN: validated, tested, exported
    student_logits: tf.Tensor  # the student's logits of the labelled batch
    total: tf.Tensor  # the loss the optimizer minimizes
    terms: dict  # train/ scalar name -> tensor: each loss term, the ramp, the share of confident pseudo-labels
    averages: dict  # classifier variable name -> its moving average (empty without a teacher)


def average_name(variable):
    return f"{variable.op.name}/{EMA_SUFFIX}"


def moving_averages(variables):
    """A non-trainable copy ``<name>/ExponentialMovingAverage`` of each variable (zeros until copy_to_averages
    or a checkpoint fills it)."""
    return {v.op.name: v1.get_variable(average_name(v), v.shape, initializer=v1.zeros_initializer(), trainable=False,
                                       collections=[v1.GraphKeys.GLOBAL_VARIABLES,
                                                    v1.GraphKeys.MOVING_AVERAGE_VARIABLES])
            for v in variables}


def update_averages(averages, variables, decay, global_step):
    """One op: every average moves towards its variable by (1 - decay), with TF1's warm-up of the decay."""
    with v1.name_scope("TEACHER"):
        rate = layers.moving_average_rate(decay, global_step)
        return tf.group(*[v1.assign_sub(averages[v.op.name], rate * (averages[v.op.name] - v))
                          for v in variables], name="update_teacher")


def copy_to_averages(averages, variables):
    """The teacher takes the student's weights as they are (after a restore from the autoencoder)."""
    return tf.group(*[v1.assign(averages[v.op.name], v) for v in variables], name="teacher_from_student")


def _classifier_with(averages, images, num_classes, image_shape, filters, batch_norm):
    """The classifier on ``images`` with the student's variables (reused) or, with ``averages``, their averages."""
    def teacher_getter(getter, name, *args, **kwargs):
        return averages[name] if averages and name in averages else getter(name, *args, **kwargs)
    with v1.variable_scope(v1.get_variable_scope(), reuse=True, custom_getter=teacher_getter):
        return models.classifier(images, num_classes, image_shape=image_shape, filters=filters,
                                 batch_norm=batch_norm)  # batch normalization by the moving averages


def sigmoid_ramp(global_step, ramp_steps):
    """exp(-5 (1 - t)^2) for t = step / ramp_steps up to 1 (Laine & Aila 2017): 0.007 at the start, 1 from
    ramp_steps on."""
    if ramp_steps <= 0:
        return tf.constant(1.0)
    t = tf.minimum(tf.cast(global_step, tf.float32) / float(ramp_steps), 1.0)
    return tf.exp(-5.0 * tf.square(1.0 - t), name="ramp")


def strong(aug, magnitude, photometric=0.0, colour=False):
    """The student's augmentation: every amount ``magnitude`` times as large (within each option's range), and
    brightness and contrast (and for ``colour`` images saturation) jittered by at least ``photometric`` percent,
    whatever the weak view does: FixMatch's strong view (RandAugment) changes colours as well as geometry."""
    amplified = aug._replace(translate=aug.translate * magnitude, crop=min(99.0, aug.crop * magnitude),
                             scale=min(99.0, aug.scale * magnitude), rotate=min(180.0, aug.rotate * magnitude),
                             brightness=min(99.0, aug.brightness * magnitude),
                             contrast=min(99.0, aug.contrast * magnitude))
    return amplified._replace(brightness=max(amplified.brightness, photometric),
                              contrast=max(amplified.contrast, photometric),
                              saturation=max(amplified.saturation, photometric) if colour else amplified.saturation)


def augmentation(cfg, image_shape):
    """The weak augmentation of a semi-supervised run (its labelled batches and the teacher's view): the run's,
    or where it asks for none, shifts of up to 1/8 of the image's side (FixMatch's weak view without its flip,
    which would turn digits and text into other classes)."""
    aug = augment.from_config(cfg)
    return aug if aug.enabled else augment.Augmentation(translate=image_shape[0] / 8)


def views(images, image_shape, aug, cfg, global_step, streams):
    """(weak, strong before its cutout, strong) views of ``images``, drawn from the three seed ``streams``."""
    weak = augment.augment(images, image_shape, aug, augment.step_seed(cfg.seed, global_step, streams[0]),
                           name="WEAK")
    warped = augment.augment(images, image_shape,
                             strong(aug, cfg.strong_magnitude, cfg.strong_photometric, image_shape[2] == 3),
                             augment.step_seed(cfg.seed, global_step, streams[1]), name="STRONG")
    return weak, warped, augment.cutout(warped, image_shape, cfg.cutout,
                                        augment.step_seed(cfg.seed, global_step, streams[2]))


def build(batches, cfg, aug, image_shape, num_classes, latent_size, global_step, total_steps, class_weights=None,
          training=False):
    """The student on the labelled batch and the strong view of UNLABELED_IN, the decoder on the latter, the
    teacher on the weak view, and the loss: a Graph. Variables are created here, the student's first.
    ``class_weights`` weigh the labelled cross-entropy (cae.models.cross_entropy); ``training`` is the student's
    batch-normalization mode (cae.models.encoder)."""
    with v1.name_scope("VIEWS"):
        weak, warped, strong_view = views(batches.unlabeled, image_shape, aug, cfg, global_step,
                                          (WEAK_STREAM, STRONG_STREAM, CUTOUT_STREAM))
    labelled_count = tf.shape(batches.images)[0]
    # One student pass over both batches: one large batch keeps two cores busier than two small ones.
    student = models.classifier(tf.concat([batches.images, strong_view], 0), num_classes, image_shape=image_shape,
                                filters=cfg.filters, batch_norm=cfg.batch_norm, training=training)
    student_logits, strong_logits = student.logits[:labelled_count], student.logits[labelled_count:]
    classifier_variables = restore.select(v1.trainable_variables(), ",".join(models.classifier_scopes(cfg.filters)))

    terms = {}
    with v1.name_scope("SUPERVISED"):
        supervised = models.cross_entropy(student_logits, batches.labels, class_weights)
    terms["train/supervised"] = supervised
    total = supervised
    if cfg.reconstruction_weight:
        # The decoder costs as much as the rest of the step: it rebuilds only the first --batch_size of the
        # strong view (a quarter by default), the autoencoder's own batch size.
        decoded = slice(labelled_count, labelled_count + cfg.batch_size)
        _, _, logits, reconstruction = models.decoder(student.convs[-1][decoded], latent_size, image_shape,
                                                      cfg.filters)
        terms["train/reconstruction"] = models.reconstruction_loss(warped[:cfg.batch_size], logits, reconstruction,
                                                                  cfg.loss, image_shape, models.stride(cfg.filters))
        total += cfg.reconstruction_weight * terms["train/reconstruction"]

    averages = moving_averages(classifier_variables) if cfg.ema_decay else {}
    with v1.name_scope("TEACHER"):
        teacher = _classifier_with(averages, weak, num_classes, image_shape, cfg.filters, cfg.batch_norm)
        targets = tf.stop_gradient(teacher.probabilities)
    if cfg.distribution_alignment:
        targets = align_distribution(targets, batches.labels, num_classes)
    ramp = sigmoid_ramp(global_step, round(cfg.unlabeled_ramp_up * total_steps))
    terms["train/ramp"] = ramp
    if cfg.fixmatch_weight:
        with v1.name_scope("PSEUDO_LABELS"):
            confident = tf.cast(tf.reduce_max(targets, axis=1) >= cfg.fixmatch_threshold, tf.float32)
            per_image = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.argmax(targets, axis=1),
                                                                       logits=strong_logits)
            pseudo_label = tf.reduce_mean(confident * per_image, name="pseudo_label_loss")
        terms["train/pseudo_label"] = pseudo_label
        terms["train/pseudo_label_share"] = tf.reduce_mean(confident)
        total += ramp * cfg.fixmatch_weight * pseudo_label
    if cfg.consistency_weight:
        with v1.name_scope("CONSISTENCY"):
            consistency = tf.reduce_mean(tf.reduce_sum(tf.square(tf.nn.softmax(strong_logits) - targets), axis=1),
                                         name="consistency_loss")
        terms["train/consistency"] = consistency
        total += ramp * cfg.consistency_weight * consistency
    total = tf.identity(total, name="total_loss")

    evaluated = _classifier_with(averages, batches.images, num_classes, image_shape, cfg.filters, cfg.batch_norm)
    return Graph(evaluated, student_logits, total, terms, averages)


ALIGNMENT_MOMENTUM = 0.99  # the running class distributions follow about the last 100 steps


def align_distribution(probabilities, labels, num_classes):
    """The teacher's class probabilities of the unlabelled batch, each multiplied by the labelled images' class
    frequency over the teacher's mean prediction and renormalized (ReMixMatch's distribution alignment, Berthelot
    et al. 2020): a class the teacher calls too often is damped, so early mistakes cannot grow into a collapse
    onto a few classes. Both distributions are running means over the steps, in non-trainable variables
    (checkpointed, so a resumed run aligns as an uninterrupted one)."""
    with v1.variable_scope("distribution_alignment"):
        def running_mean(name, batch_mean):
            mean = v1.get_variable(name, [num_classes], initializer=v1.constant_initializer(1.0 / num_classes),
                                   trainable=False)
            return v1.assign(mean, ALIGNMENT_MOMENTUM * mean + (1.0 - ALIGNMENT_MOMENTUM) * batch_mean)
        labelled = running_mean("labelled_classes", tf.reduce_mean(tf.one_hot(labels, num_classes), axis=0))
        predicted = running_mean("teacher_classes", tf.reduce_mean(probabilities, axis=0))
        aligned = probabilities * (labelled / predicted)
        return tf.stop_gradient(aligned / tf.reduce_sum(aligned, axis=1, keepdims=True), name="aligned")


def teacher_update(train_op, graph, variables, decay, global_step):
    """``train_op`` followed by the teacher's update (nothing to add without a teacher)."""
    if not graph.averages:
        return train_op
    with tf.control_dependencies([train_op]):
        update = update_averages(graph.averages, variables, decay, global_step)
    return tf.group(train_op, update, name="train_and_update_teacher")
