"""Graph builders for the convolutional autoencoder and the classifier that reuses its encoder.

Pure functions: each takes input tensors, adds ops and variables to the default graph and returns a dict of the
tensors a caller may want. The encoder is one function, so both graphs name its variables identically
(``conv1/kernel`` ...) and a Saver can carry them from one graph to the other.
"""

import tensorflow as tf

from cae import layers
from cae.data import IMAGE_SIZE, NUM_CLASSES, NUM_PIXELS

v1 = tf.compat.v1

LOSSES = ("bce", "mse")


def image_input(name="IMAGE_IN"):
    """The feedable input: a batch of flattened 28x28 images in [0, 1]."""
    return v1.placeholder(tf.float32, [None, NUM_PIXELS], name=name)


def encoder(images):
    """conv1 (16 5x5 /2 relu) -> conv2 (32 5x5 /2 relu): [N, 784] -> [N, 7, 7, 32]."""
    with v1.name_scope("ENCODER"):
        x = tf.reshape(images, [-1, IMAGE_SIZE, IMAGE_SIZE, 1])
        conv1 = layers.conv2d(x, 16, 5, 2, "conv1", tf.nn.relu)
        conv2 = layers.conv2d(conv1, 32, 5, 2, "conv2", tf.nn.relu)
    return conv1, conv2


def autoencoder(images, latent_size=20, loss="bce", input_noise=0.0):
    """The CAE of the reference TF1 tutorial: encoder -> latent_var -> z_matrix -> dconv1 -> dconv2 (sigmoid).

    ``input_noise`` > 0 makes it a denoising autoencoder: the encoder sees the images plus Gaussian noise of that
    standard deviation (clipped to [0, 1]), the loss still compares with the clean images.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    encoder_input = images
    if input_noise:
        with v1.name_scope("NOISE"):
            encoder_input = tf.clip_by_value(images + v1.random_normal(tf.shape(images), stddev=input_noise), 0., 1.)
    conv1, conv2 = encoder(encoder_input)
    with v1.name_scope("LATENT"):
        latent = layers.dense(layers.flatten(conv2), latent_size, "latent_var")
    with v1.name_scope("DECODER"):
        z = layers.dense(latent, 7 * 7 * 32, "z_matrix")
        z = tf.nn.relu(tf.reshape(z, [-1, 7, 7, 32]))
        dconv1 = layers.conv2d_transpose(z, 16, 5, 2, "dconv1", tf.nn.relu)
        logits = layers.conv2d_transpose(dconv1, 1, 5, 2, "dconv2")
        logits = tf.reshape(logits, [-1, NUM_PIXELS])
        reconstruction = tf.sigmoid(logits, name="reconstruction")
    with v1.name_scope("LOSS"):
        if loss == "bce":  # per-pixel binary cross-entropy, computed stably from the logits
            per_pixel = tf.nn.sigmoid_cross_entropy_with_logits(labels=images, logits=logits)
        else:
            per_pixel = tf.square(reconstruction - images)
        loss_tensor = tf.reduce_mean(per_pixel, name="reconstruction_loss")
    return {"images": images, "conv1": conv1, "conv2": conv2, "latent": latent, "dconv1": dconv1,
            "logits": logits, "reconstruction": reconstruction, "loss": loss_tensor}


def classifier(images, hidden_units=200):
    """conv1 -> conv2 (the autoencoder's encoder) -> fc1 (200 relu) -> logits (10)."""
    conv1, conv2 = encoder(images)
    with v1.name_scope("CLASSIFIER"):
        features = layers.flatten(conv2)
        fc1 = layers.dense(features, hidden_units, "fc1", tf.nn.relu)
        logits = layers.dense(fc1, NUM_CLASSES, "logits")
        probabilities = tf.nn.softmax(logits, name="probabilities")
        predictions = tf.argmax(logits, axis=1, name="predictions")
    return {"images": images, "conv1": conv1, "conv2": conv2, "features": features, "fc1": fc1,
            "logits": logits, "probabilities": probabilities, "predictions": predictions}


def classification_loss(logits, labels):
    """Mean softmax cross-entropy and accuracy against integer labels."""
    with v1.name_scope("LOSS"):
        loss = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits), name="xent")
        correct = tf.equal(tf.argmax(logits, axis=1), labels)
        accuracy = tf.reduce_mean(tf.cast(correct, tf.float32), name="accuracy")
    return loss, accuracy
