"""Export a trained classifier as a SavedModel, built in graph mode with the tf.compat.v1.saved_model builder.

The export graph is fresh: the classifier only (no optimizer, slots or global_step), with two signatures that
share its variables:

- ``serving_default``: ``images`` float32 [N, 28, 28] in [0, 1], the scale the classifier was trained on;
- ``serving_uint8``: ``images`` uint8 [N, 28, 28] (0-255), divided by 255 in the graph (Grappler turns that
  into a multiply by 1/255, so inputs may differ from cae.data's by one float32 ulp: same classes, probabilities
  within about 1e-6);

each returning ``classes`` int64 [N] and ``probabilities`` float32 [N, 10]. A SignatureDef has one dtype per
input, hence two signatures for the two input kinds.
"""

import os
import shutil
import tempfile

import tensorflow as tf

from cae import models, restore, session
from cae.data import IMAGE_SIZE, NUM_PIXELS
from cae.errors import UserError

v1 = tf.compat.v1

DEFAULT_SIGNATURE = v1.saved_model.signature_constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY  # "serving_default"
UINT8_SIGNATURE = "serving_uint8"


def _outputs(images, name):
    """The signature outputs of the classifier on [N, 28, 28] float images in [0, 1]."""
    t = models.classifier(tf.reshape(images, [-1, NUM_PIXELS]))
    return {"classes": tf.identity(t.predictions, name=f"{name}/classes"),
            "probabilities": tf.identity(t.probabilities, name=f"{name}/probabilities")}


def serving_signatures():
    """Add the classifier to the default graph, fed by a float and a uint8 placeholder (the second copy reuses
    the first one's variables). Returns {signature name: {"inputs": {...}, "outputs": {...}}}."""
    shape = [None, IMAGE_SIZE, IMAGE_SIZE]
    float_images = v1.placeholder(tf.float32, shape, name="images")
    uint8_images = v1.placeholder(tf.uint8, shape, name="images_uint8")
    float_outputs = _outputs(float_images, DEFAULT_SIGNATURE)
    with v1.variable_scope(v1.get_variable_scope(), reuse=True):
        uint8_outputs = _outputs(tf.cast(uint8_images, tf.float32) / 255.0, UINT8_SIGNATURE)
    return {DEFAULT_SIGNATURE: {"inputs": {"images": float_images}, "outputs": float_outputs},
            UINT8_SIGNATURE: {"inputs": {"images": uint8_images}, "outputs": uint8_outputs}}


def restore_classifier(sess, checkpoint_path, flag="checkpoint_path"):
    """Restore every classifier variable of the session's graph from a transfer checkpoint (prefix or directory);
    UserError naming the checkpoint and each missing or misshapen variable. Returns the checkpoint prefix."""
    checkpoint = restore.resolve_checkpoint(checkpoint_path, flag)
    variables = sess.graph.get_collection(v1.GraphKeys.TRAINABLE_VARIABLES)
    restore.check_compatible(checkpoint, variables)
    with sess.graph.as_default():
        restore.restore_saver(variables).restore(sess, checkpoint)
    return checkpoint


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
    parent = os.path.dirname(os.path.abspath(cfg.export_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=parent)  # private (0700); the builder makes model/ in it
    try:
        graph = tf.Graph()
        with graph.as_default(), v1.Session(graph=graph, config=session.config_proto()) as sess:
            signatures = serving_signatures()
            checkpoint = restore_classifier(sess, cfg.checkpoint_path)
            signature_defs = {name: v1.saved_model.predict_signature_def(s["inputs"], s["outputs"])
                              for name, s in signatures.items()}
            builder = v1.saved_model.Builder(os.path.join(staging, "model"))
            builder.add_meta_graph_and_variables(sess, [v1.saved_model.tag_constants.SERVING],
                                                 signature_def_map=signature_defs, strip_default_attrs=True)
            builder.save()
        os.replace(os.path.join(staging, "model"), cfg.export_dir)  # replaces an empty export_dir
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return checkpoint
