"""Export a trained classifier as a SavedModel, built in graph mode with the tf.compat.v1.saved_model builder.

The export graph is fresh: the classifier only (no optimizer, slots or global_step), sized from the checkpoint
(image size and channels from conv1/fc1, classes from logits), with two signatures that share its variables:

- ``serving_default``: ``images`` float32 [N, H, W] (gray) or [N, H, W, 3] (colour) in [0, 1], the scale the
  classifier was trained on (MNIST: [N, 28, 28]);
- ``serving_uint8``: ``images`` uint8 of the same shape (0-255), divided by 255 in the graph (Grappler turns that
  into a multiply by 1/255, so inputs may differ from cae.data's by one float32 ulp: same classes, probabilities
  within about 1e-6);

each returning ``classes`` int64 [N] and ``probabilities`` float32 [N, K]. A SignatureDef has one dtype per
input, hence two signatures for the two input kinds. ``assets/labels.txt`` names the classes in logit order and
``assets/input.json`` says how images were made (cae.model_info), so cae-predict uses the model as it was trained.
A two-class model trained with --target_recall carries its operating point (``assets/decision.json``): its
``classes`` flag the chosen class from that probability on, not from the argmax.
"""

import os
import shutil
import tempfile

import tensorflow as tf

from cae import features, model_info, models, restore, semi_supervised, session, train_dir
from cae.errors import UserError

v1 = tf.compat.v1

DEFAULT_SIGNATURE = v1.saved_model.signature_constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY  # "serving_default"
UINT8_SIGNATURE = "serving_uint8"


def _outputs(images, name, image_shape, num_classes, filters, batch_norm, flag=None):
    """The signature outputs of the classifier on [N, H, W(, C)] float images in [0, 1]; ``flag`` (class index,
    threshold) of a two-class model's operating point: that class where its probability reaches the threshold,
    else the other one."""
    t = models.classifier(tf.reshape(images, [-1, models.num_pixels(image_shape)]), num_classes,
                          image_shape=image_shape, filters=filters, batch_norm=batch_norm)
    classes = t.predictions
    if flag is not None:
        index, threshold = flag
        classes = tf.where(t.probabilities[:, index] >= threshold, tf.constant(index, tf.int64),
                           tf.constant(1 - index, tf.int64))
    return {"classes": tf.identity(classes, name=f"{name}/classes"),
            "probabilities": tf.identity(t.probabilities, name=f"{name}/probabilities")}


def input_shape(image_shape):
    """The signature's image shape: [N, H, W] for gray images (as MNIST arrays come), [N, H, W, C] else."""
    height, width, channels = image_shape
    return [None, height, width] if channels == 1 else [None, height, width, channels]


def serving_signatures(image_shape=models.MNIST_SHAPE, num_classes=models.MNIST_CLASSES,
                       filters=models.ENCODER_FILTERS, batch_norm=False, flag=None):
    """Add the classifier to the default graph, fed by a float and a uint8 placeholder (the second copy reuses
    the first one's variables; ``flag``: see _outputs). Returns {signature name: {"inputs": {...}, "outputs":
    {...}}}."""
    shape = input_shape(image_shape)
    float_images = v1.placeholder(tf.float32, shape, name="images")
    uint8_images = v1.placeholder(tf.uint8, shape, name="images_uint8")
    float_outputs = _outputs(float_images, DEFAULT_SIGNATURE, image_shape, num_classes, filters, batch_norm, flag)
    with v1.variable_scope(v1.get_variable_scope(), reuse=True):
        uint8_outputs = _outputs(tf.cast(uint8_images, tf.float32) / 255.0, UINT8_SIGNATURE, image_shape,
                                 num_classes, filters, batch_norm, flag)
    return {DEFAULT_SIGNATURE: {"inputs": {"images": float_images}, "outputs": float_outputs},
            UINT8_SIGNATURE: {"inputs": {"images": uint8_images}, "outputs": uint8_outputs}}


def classifier_info(checkpoint):
    """(class names, model_info.InputSpec, (encoder filters, batch_norm), model_info.Decision or None) of a
    classifier checkpoint prefix: its shapes, and the labels.txt, input.json and decision.json beside it; UserError
    naming the checkpoint if it holds no classifier."""
    shapes = restore.checkpoint_shapes(checkpoint)
    filters = models.encoder_filters_of(shapes) or models.ENCODER_FILTERS
    missing = [f"{scope}/{kind}" for scope in models.classifier_scopes(filters) for kind in ("kernel", "bias")
               if f"{scope}/{kind}" not in shapes]
    if missing:
        raise UserError(f"{checkpoint}: cannot restore: {'; '.join(f'{name} missing' for name in missing)} (not "
                        f"a classifier checkpoint)")
    image_shape, num_classes, filters = models.classifier_geometry(shapes)
    directory = os.path.dirname(checkpoint)
    if model_info.read_class_names(directory) is None and os.path.basename(directory) == train_dir.BEST_DIR:
        directory = os.path.dirname(directory)  # a best/ from before it had its own copies: its run's
    class_names, spec = model_info.read(directory, image_shape, num_classes)
    decision = model_info.read_decision(directory, class_names)
    return class_names, spec, (filters, models.has_batch_norm(shapes)), decision


def flag_of(decision, class_names):
    """_outputs' ``flag`` for a model_info.Decision (None: none)."""
    return (class_names.index(decision.class_name), decision.threshold) if decision else None


def teacher_or_own(checkpoint, variables):
    """{name in the checkpoint: variable}: a semi-supervised run's teacher, ``<name>/ExponentialMovingAverage``,
    where the checkpoint holds one for every trainable variable (the weights it validated and tested), else each
    variable's own name; batch normalization's moving averages always by their own names (the teacher shares the
    student's)."""
    stored = restore.checkpoint_shapes(checkpoint)
    trainable = [v for v in variables if v.trainable]
    teacher = {semi_supervised.average_name(v): v for v in trainable}
    if not trainable or not all(name in stored for name in teacher):
        return restore.by_name(variables)
    return {**teacher, **restore.by_name([v for v in variables if not v.trainable])}


def restore_classifier(sess, checkpoint):
    """Restore every classifier variable of the session's graph from a transfer checkpoint prefix (the teacher's
    weights where it has a teacher); UserError naming the checkpoint and each missing or misshapen variable."""
    with sess.graph.as_default():
        variables = teacher_or_own(checkpoint, models.model_variables())
    restore.check_compatible(checkpoint, variables)
    with sess.graph.as_default():
        restore.restore_saver(variables).restore(sess, checkpoint)


def served_probabilities(checkpoint, image_shape, num_classes, encoder, image_sets):
    """Each set's class probabilities ([N, K] float32) as the exported model computes them: the serving graph's
    classifier (_outputs), float32 whatever --precision trained the checkpoint, restored from a classifier
    checkpoint prefix. ``encoder``: (filters, batch_norm); ``image_sets``: images as cae.data keeps them."""
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph, config=session.config_proto()) as sess:
        images = v1.placeholder(tf.float32, [None, models.num_pixels(image_shape)], name="images")  # cae.data's rows
        probabilities = _outputs(images, DEFAULT_SIGNATURE, image_shape, num_classes, *encoder)["probabilities"]
        restore_classifier(sess, checkpoint)
        return [features.compute(sess, probabilities, images, image_set) for image_set in image_sets]


def _check_export_dir(export_dir):
    if os.path.isdir(export_dir) and os.listdir(export_dir):
        raise UserError(f"--export_dir={export_dir}: directory exists and is not empty; export into a new (or "
                        f"empty) directory, e.g. the next version number")
    if os.path.exists(export_dir) and not os.path.isdir(export_dir):
        raise UserError(f"--export_dir={export_dir}: exists and is not a directory")


def export(cfg):
    """Write the SavedModel to cfg.export_dir; return the checkpoint prefix it was made from.

    It is built in a temporary sibling directory and renamed into place, so a failed export leaves nothing.
    """
    _check_export_dir(cfg.export_dir)
    checkpoint = train_dir.tested_checkpoint(cfg.checkpoint_path, "checkpoint_path")
    class_names, spec, (filters, batch_norm), decision = classifier_info(checkpoint)
    parent = os.path.dirname(os.path.abspath(cfg.export_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=parent)  # private (0700); the builder makes model/ in it
    try:
        assets = os.path.join(staging, "assets")
        os.makedirs(assets)
        model_info.write(assets, class_names, spec)  # the builder copies them into the SavedModel's assets/
        names = [model_info.LABELS_FILE, model_info.INPUT_FILE]
        if decision:  # the graph applies it; the file says where it came from
            model_info.write_decision(assets, decision)
            names.append(model_info.DECISION_FILE)
        graph = tf.Graph()
        with graph.as_default(), v1.Session(graph=graph, config=session.config_proto()) as sess:
            signatures = serving_signatures(spec.image_shape, len(class_names), filters, batch_norm,
                                            flag_of(decision, class_names))
            restore_classifier(sess, checkpoint)
            signature_defs = {name: v1.saved_model.predict_signature_def(s["inputs"], s["outputs"])
                              for name, s in signatures.items()}
            for name in names:
                v1.add_to_collection(v1.GraphKeys.ASSET_FILEPATHS,
                                     tf.constant(os.path.join(assets, name), name=f"asset_{name.split('.')[0]}"))
            builder = v1.saved_model.Builder(os.path.join(staging, "model"))
            builder.add_meta_graph_and_variables(
                sess, [v1.saved_model.tag_constants.SERVING], signature_def_map=signature_defs,
                assets_collection=v1.get_collection(v1.GraphKeys.ASSET_FILEPATHS), strip_default_attrs=True)
            builder.save()
        os.replace(os.path.join(staging, "model"), cfg.export_dir)  # replaces an empty export_dir
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return checkpoint
