"""Run a restored encoder over one split and save a chosen layer's output with the labels to an .npz file."""

import os

import numpy as np
import tensorflow as tf
from absl import logging

from cae import data, features, layers, models, restore, session, train_dir
from cae.errors import UserError

v1 = tf.compat.v1

# layer -> the scopes its output depends on besides the encoder's convs (read from the checkpoint); "conv2" is the
# last conv's output, whatever the encoder's depth (conv2 of the tutorial's)
LAYER_SCOPES = {"conv2": (), "latent": ("latent_var",), "fc1": ("fc1",)}


def layer_scopes(layer, filters):
    return ",".join(models.conv_scopes(filters) + LAYER_SCOPES[layer])


def build_graph(layer, shapes, image_shape=models.MNIST_SHAPE):
    """The checkpoint's encoder up to ``layer`` for images of ``image_shape``, its dense layer sized from the
    checkpoint's shapes; returns (graph, images, output, variables)."""
    graph = tf.Graph()
    with graph.as_default():
        images = models.image_input(image_shape)
        convs = models.encoder(images, image_shape, models.encoder_filters_of(shapes) or models.ENCODER_FILTERS,
                               models.has_batch_norm(shapes))
        output = layers.flatten(convs[-1])
        if layer == "latent":
            output = layers.dense(output, shapes.get("latent_var/kernel", (0, 1))[-1], "latent_var")
        elif layer == "fc1":
            output = layers.dense(output, shapes.get("fc1/kernel", (0, 1))[-1], "fc1", tf.nn.relu)
    return graph, images, output, graph.get_collection(v1.GraphKeys.GLOBAL_VARIABLES)


def extract(cfg):
    """Write cfg.output; returns (features, labels)."""
    if cfg.layer not in LAYER_SCOPES:
        raise UserError(f"--layer={cfg.layer}: expected one of {', '.join(LAYER_SCOPES)}")
    if not cfg.output or not cfg.output.endswith(".npz"):
        raise UserError(f"--output={cfg.output}: expected a path ending in .npz")
    if not cfg.checkpoint_path:
        raise UserError("--checkpoint_path: required (an autoencoder or classifier checkpoint or directory)")
    datasets = data.from_config(cfg)
    splits = datasets.splits()
    if cfg.split not in splits:
        raise UserError(f"--split={cfg.split}: expected one of {', '.join(splits)}")
    checkpoint = train_dir.tested_checkpoint(cfg.checkpoint_path, "checkpoint_path")
    shapes = restore.checkpoint_shapes(checkpoint)
    filters = models.encoder_filters_of(shapes) or models.ENCODER_FILTERS
    models.check_image_size(filters, datasets.image_shape, f"--checkpoint_path={cfg.checkpoint_path} (its encoder)")
    graph, images, output, variables = build_graph(cfg.layer, shapes, datasets.image_shape)
    with graph.as_default():
        chosen = restore.select(variables, layer_scopes(cfg.layer, filters), "layer")
        restore.check_input_channels(checkpoint, chosen)
        restore.check_compatible(checkpoint, chosen)
        saver = restore.restore_saver(chosen)
    split = splits[cfg.split]
    with v1.Session(graph=graph, config=session.config_proto_for(cfg)) as sess:
        saver.restore(sess, checkpoint)
        logging.info("extracting %s of %d %s images from %s", cfg.layer, len(split.labels), cfg.split, checkpoint)
        values = features.compute(sess, output, images, split.images, cfg.batch_size,
                                  log_progress=f"{cfg.layer} of {cfg.split}")
    directory = os.path.dirname(os.path.abspath(cfg.output))
    os.makedirs(directory, exist_ok=True)
    tmp = cfg.output[:-len(".npz")] + ".tmp.npz"  # written whole, then renamed: never half a file
    np.savez(tmp, features=values, labels=split.labels, layer=cfg.layer, checkpoint=checkpoint,
             dataset=cfg.image_dir or cfg.dataset, split=cfg.split, class_names=np.array(datasets.class_names))
    os.replace(tmp, cfg.output)
    return values, split.labels
