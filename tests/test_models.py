import re

import numpy as np
import pytest
import tensorflow as tf

from cae import models, pretrain, restore
from cae.config import PretrainConfig
from cae.errors import UserError

AUTOENCODER_SHAPES = {
    "conv1/kernel": [5, 5, 1, 16], "conv1/bias": [16],
    "conv2/kernel": [5, 5, 16, 32], "conv2/bias": [32],
    "latent_var/kernel": [1568, 20], "latent_var/bias": [20],
    "z_matrix/kernel": [20, 1568], "z_matrix/bias": [1568],
    "dconv1/kernel": [5, 5, 16, 32], "dconv1/bias": [16],
    "dconv2/kernel": [5, 5, 1, 16], "dconv2/bias": [1],
}
CLASSIFIER_SHAPES = {
    "conv1/kernel": [5, 5, 1, 16], "conv1/bias": [16],
    "conv2/kernel": [5, 5, 16, 32], "conv2/bias": [32],
    "fc1/kernel": [1568, 200], "fc1/bias": [200],
    "logits/kernel": [200, 10], "logits/bias": [10],
}


def variable_shapes(build):
    with tf.Graph().as_default():
        tensors = build(models.image_input())
        return {v.op.name: v.shape.as_list() for v in tf.compat.v1.global_variables()}, tensors


def test_autoencoder_names_and_shapes():
    shapes, t = variable_shapes(models.autoencoder)
    assert shapes == AUTOENCODER_SHAPES
    assert t.reconstruction.shape.as_list() == [None, 784]
    assert t.latent.shape.as_list() == [None, 20]
    assert t.images.op.name == "IMAGE_IN"


def test_classifier_names_and_shapes():
    shapes, t = variable_shapes(models.classifier)
    assert shapes == CLASSIFIER_SHAPES
    assert t.logits.shape.as_list() == [None, 10]


def test_latent_size_and_both_graphs_twice_in_one_process():
    for _ in range(2):
        assert variable_shapes(models.classifier)[0] == CLASSIFIER_SHAPES
        shapes, _ = variable_shapes(lambda x: models.autoencoder(x, latent_size=7, loss="mse"))
        assert shapes["latent_var/kernel"] == [1568, 7]


def test_encoder_ops_live_in_readable_name_scopes():
    with tf.Graph().as_default() as g:
        models.autoencoder(models.image_input())
        names = [op.name for op in g.get_operations()]
    for scope in ("ENCODER/conv1/", "LATENT/latent_var/", "DECODER/dconv2/", "LOSS/"):
        assert any(n.startswith(scope) for n in names), scope


def test_scope_selection_is_whole_scope_not_substring():
    """'conv1' must not pick dconv1 (the substring pitfall), nor Adam slots or global_step."""
    with tf.Graph().as_default():
        t = models.autoencoder(models.image_input())
        model_variables = tf.compat.v1.trainable_variables()
        tf.compat.v1.train.AdamOptimizer().minimize(
            t.loss, global_step=tf.compat.v1.train.get_or_create_global_step())
        everything = tf.compat.v1.global_variables()
        assert any(re.search("conv1/kernel/Adam_1", v.op.name) for v in everything)
        chosen = [v.op.name for v in restore.select(model_variables, "conv1,conv2")]
        assert chosen == ["conv1/kernel", "conv1/bias", "conv2/kernel", "conv2/bias"]
        substring_pitfall = [v.op.name for v in everything if "conv1" in v.name]
        assert "dconv1/kernel" in substring_pitfall  # what the regex avoids
        pattern = restore.scope_regex("conv1,conv2")
        assert not pattern.match("dconv1/kernel") and not pattern.match("conv10/kernel")


def test_scope_that_matches_nothing_or_bad_regex_is_a_user_error():
    with tf.Graph().as_default():
        models.classifier(models.image_input())
        variables = tf.compat.v1.trainable_variables()
        with pytest.raises(UserError, match="--restore_scopes: scope 'conv3' matches no variable"):
            restore.select(variables, "conv1,conv3", "restore_scopes")
        with pytest.raises(UserError, match="--trainable_scopes: 'fc1\\(' is not a valid regular expression"):
            restore.select(variables, "fc1(", "trainable_scopes")


def test_input_cutout_hides_a_square_from_the_encoder_and_not_from_the_loss():
    """--input_cutout: the encoder of pretraining sees gray 0.5 in a square, a new one every step; the
    reconstruction loss compares the reconstruction with the whole image."""
    images = np.random.RandomState(0).rand(16, 784).astype(np.float32)
    seen = {}
    for fraction in 0.0, 0.5:
        g = pretrain.build_graph(PretrainConfig(input_cutout=fraction, train_dir="unused"), total_steps=10)
        conv1 = next(op for op in g.graph.get_operations()
                     if op.type == "Conv2D" and op.name.split("/")[-2] == "conv1")
        with g.graph.as_default(), tf.compat.v1.Session() as sess:
            sess.run(g.init)
            feed = {g.model.images: images}
            encoder_input, reconstruction, loss = sess.run([conv1.inputs[0], g.model.reconstruction, g.model.loss],
                                                           feed)
            sess.run(tf.compat.v1.assign(g.global_step, 1))
            seen[fraction] = encoder_input.reshape(16, 784), sess.run(conv1.inputs[0], feed).reshape(16, 784)
        eps = 1e-7
        clipped = np.clip(reconstruction, eps, 1 - eps)
        by_hand = -np.mean(images * np.log(clipped) + (1 - images) * np.log(1 - clipped))
        np.testing.assert_allclose(loss, by_hand, rtol=1e-4)  # against the whole, clean images (mean per pixel)
    np.testing.assert_array_equal(seen[0.0][0], images)
    np.testing.assert_array_equal(seen[0.0][0], seen[0.0][1])
    cut, next_step = seen[0.5]
    hidden = cut != images
    assert (cut[hidden] == 0.5).all() and hidden.any(axis=1).all()  # every image lost a gray square
    assert 0.05 < hidden.mean() < 0.3 and not np.array_equal(cut, next_step)  # about a quarter; new each step


def normalized_patches(images, side, patch):
    """By hand: each patch x patch square of each [N, side*side] gray image to mean 0, variance 1 (MAE's target)."""
    x = images.reshape(-1, side // patch, patch, side // patch, patch).astype(np.float64)
    mean = x.mean(axis=(2, 4), keepdims=True)
    std = np.sqrt(x.var(axis=(2, 4), keepdims=True) + 1e-6)
    return ((x - mean) / std).reshape(len(images), -1)


def test_input_mask_hides_whole_patches_from_the_encoder_and_the_loss_counts_only_them():
    """--input_mask (a masked autoencoder) with --loss=patch_mse: exactly round(ratio x 49) of the 49 4x4 patches
    of each 28x28 image reach the encoder as gray 0.5, new ones every step; the loss is the squared error of the
    decoder's logits against the per-patch normalized image on those patches alone."""
    images = np.random.RandomState(0).rand(16, 784).astype(np.float32)
    g = pretrain.build_graph(PretrainConfig(input_mask=0.6, loss="patch_mse", train_dir="unused"), total_steps=10)
    conv1 = next(op for op in g.graph.get_operations() if op.type == "Conv2D" and op.name.split("/")[-2] == "conv1")
    with g.graph.as_default(), tf.compat.v1.Session() as sess:
        sess.run(g.init)
        feed = {g.model.images: images}
        encoder_input, logits, loss = sess.run([conv1.inputs[0], g.model.logits, g.model.loss], feed)
        sess.run(tf.compat.v1.assign(g.global_step, 1))
        next_input = sess.run(conv1.inputs[0], feed)
    encoder_input = encoder_input.reshape(16, 7, 4, 7, 4)
    hidden = (encoder_input == 0.5).all(axis=(2, 4))  # [16, 7, 7]: a patch is hidden whole or not at all
    assert (hidden.sum(axis=(1, 2)) == round(0.6 * 49)).all()
    shown = ~np.broadcast_to(hidden[:, :, None, :, None], encoder_input.shape)
    np.testing.assert_array_equal(encoder_input[shown], images.reshape(16, 7, 4, 7, 4)[shown])
    assert not np.array_equal(next_input.reshape(16, 7, 4, 7, 4) == 0.5, encoder_input == 0.5)  # new every step
    per_pixel = (logits.reshape(16, 7, 4, 7, 4) - normalized_patches(images, 28, 4).reshape(16, 7, 4, 7, 4)) ** 2
    np.testing.assert_allclose(loss, per_pixel[~shown].mean(), rtol=1e-4)


def test_patch_mse_ignores_each_patch_brightness_and_contrast_and_its_reconstruction_puts_them_back():
    """patch_mse's target is the same for an image and the image with every patch brightened and rescaled: only
    the details inside a patch count. Logits equal to the target reconstruct the image exactly."""
    rng = np.random.RandomState(1)
    images = rng.rand(4, 64).astype(np.float32) * 0.5
    offset = np.kron(rng.rand(4, 2, 2), np.ones((4, 4))).reshape(4, 64).astype(np.float32) * 0.4
    scale = np.kron(rng.rand(4, 2, 2) + 0.5, np.ones((4, 4))).reshape(4, 64).astype(np.float32)
    target = normalized_patches(images, 8, 4).astype(np.float32)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        x, logits = tf.compat.v1.placeholder(tf.float32, [None, 64]), tf.constant(target)
        loss = models.reconstruction_loss(x, logits, None, "patch_mse", (8, 8, 1), patch=4)
        shown = models.patch_reconstruction(x, logits, (8, 8, 1), patch=4)
        assert sess.run(loss, {x: images}) < 1e-8
        assert sess.run(loss, {x: images * scale + offset}) < 1e-6
        np.testing.assert_allclose(sess.run(shown, {x: images}), images, atol=1e-5)
