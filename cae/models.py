"""Graph builders for the convolutional autoencoder and the classifier that reuses its encoder (TF-Slim's nets/).

Pure functions: each takes an input tensor, adds ops and variables to the default graph and returns a small frozen
bundle (a NamedTuple) of the tensors a caller may want, as slim's nets return ``logits, end_points``. The encoder is
one function, so both graphs name its variables identically (``conv1/kernel`` ...) and a Saver can carry them from
one graph to the other.

Images enter flattened, [N, height * width * channels] in [0, 1] (MNIST: [N, 784]); ``image_shape`` says how to
fold them. conv1/conv2 do not depend on the image size, only conv1 on the channels, so an encoder trained on one
size restores into a classifier of another.
"""

import math
from typing import NamedTuple

import tensorflow as tf

from cae import layers
from cae.config import LOSSES

v1 = tf.compat.v1

MNIST_SHAPE = (28, 28, 1)  # height, width, channels
MNIST_CLASSES = 10
ENCODER_STRIDE = 4  # conv1 and conv2 each halve the image: height and width must be multiples of this
CONV2_FILTERS = 32


# The classifier's variables, as tf.layers named them (restore and export check a checkpoint against them).
CLASSIFIER_VARIABLES = tuple(f"{layer}/{kind}" for layer in ("conv1", "conv2", "fc1", "logits")
                             for kind in ("kernel", "bias"))


class Autoencoder(NamedTuple):
    images: tf.Tensor  # [N, H*W*C] input
    conv1: tf.Tensor
    conv2: tf.Tensor  # [N, H/4, W/4, 32]
    latent: tf.Tensor  # [N, latent_size]
    dconv1: tf.Tensor
    logits: tf.Tensor  # [N, H*W*C], before the sigmoid
    reconstruction: tf.Tensor  # [N, H*W*C] in [0, 1]
    loss: tf.Tensor  # scalar reconstruction loss


class Classifier(NamedTuple):
    images: tf.Tensor  # [N, H*W*C] input
    conv1: tf.Tensor
    conv2: tf.Tensor
    features: tf.Tensor  # conv2 flattened: what fc1 sees
    fc1: tf.Tensor
    logits: tf.Tensor  # [N, num_classes]
    probabilities: tf.Tensor
    predictions: tf.Tensor  # int64 [N]


def num_pixels(image_shape):
    height, width, channels = image_shape
    return height * width * channels


def image_input(image_shape=MNIST_SHAPE, name="IMAGE_IN"):
    """The feedable input: a batch of flattened images in [0, 1]."""
    return v1.placeholder(tf.float32, [None, num_pixels(image_shape)], name=name)


def encoder(images, image_shape=MNIST_SHAPE):
    """conv1 (16 5x5 /2 relu) -> conv2 (32 5x5 /2 relu): [N, H*W*C] -> [N, H/4, W/4, 32]."""
    with v1.name_scope("ENCODER"):
        x = tf.reshape(images, [-1, *image_shape])
        conv1 = layers.conv2d(x, 16, 5, 2, "conv1", tf.nn.relu)
        conv2 = layers.conv2d(conv1, CONV2_FILTERS, 5, 2, "conv2", tf.nn.relu)
    return conv1, conv2


def autoencoder(images, latent_size=20, loss="bce", input_noise=0.0, image_shape=MNIST_SHAPE):
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
    conv1, conv2 = encoder(encoder_input, image_shape)
    latent, dconv1, logits, reconstruction = decoder(conv2, latent_size, image_shape)
    loss_tensor = reconstruction_loss(images, logits, reconstruction, loss)
    return Autoencoder(images, conv1, conv2, latent, dconv1, logits, reconstruction, loss_tensor)


DECODER_SCOPES = ("latent_var", "z_matrix", "dconv1", "dconv2")  # what the autoencoder adds to the encoder


def decoder(conv2, latent_size, image_shape=MNIST_SHAPE):
    """conv2 -> latent_var (linear) -> z_matrix (relu) -> dconv1 (16 relu) -> dconv2 (sigmoid): returns (latent,
    dconv1, logits, reconstruction), the last two [N, H*W*C]."""
    height, width, channels = image_shape
    code_shape = [height // ENCODER_STRIDE, width // ENCODER_STRIDE, CONV2_FILTERS]
    with v1.name_scope("LATENT"):
        latent = layers.dense(layers.flatten(conv2), latent_size, "latent_var")
    with v1.name_scope("DECODER"):
        z = layers.dense(latent, code_shape[0] * code_shape[1] * code_shape[2], "z_matrix")
        z = tf.nn.relu(tf.reshape(z, [-1, *code_shape]))
        dconv1 = layers.conv2d_transpose(z, 16, 5, 2, "dconv1", tf.nn.relu)
        logits = layers.conv2d_transpose(dconv1, channels, 5, 2, "dconv2")
        logits = tf.reshape(logits, [-1, num_pixels(image_shape)])
        reconstruction = tf.sigmoid(logits, name="reconstruction")
    return latent, dconv1, logits, reconstruction


def reconstruction_loss(images, logits, reconstruction, loss="bce"):
    """Mean per-pixel binary cross-entropy (computed stably from the logits) or squared error."""
    with v1.name_scope("LOSS"):
        if loss == "bce":
            per_pixel = tf.nn.sigmoid_cross_entropy_with_logits(labels=images, logits=logits)
        else:
            per_pixel = tf.square(reconstruction - images)
        return tf.reduce_mean(per_pixel, name="reconstruction_loss")


def classifier(images, num_classes=MNIST_CLASSES, hidden_units=200, image_shape=MNIST_SHAPE):
    """conv1 -> conv2 (the autoencoder's encoder) -> fc1 (200 relu) -> logits (num_classes)."""
    conv1, conv2 = encoder(images, image_shape)
    with v1.name_scope("CLASSIFIER"):
        features = layers.flatten(conv2)
        fc1 = layers.dense(features, hidden_units, "fc1", tf.nn.relu)
        logits = layers.dense(fc1, num_classes, "logits")
        probabilities = tf.nn.softmax(logits, name="probabilities")
        predictions = tf.argmax(logits, axis=1, name="predictions")
    return Classifier(images, conv1, conv2, features, fc1, logits, probabilities, predictions)


def classifier_geometry(shapes):
    """(image_shape, num_classes) of the classifier whose variable shapes (a checkpoint's) are ``shapes``:
    conv1/kernel [5, 5, C, 16], fc1/kernel [(S/4) * (S/4) * 32, 200] for S x S images, logits/kernel [200, K]."""
    channels, flat, num_classes = shapes["conv1/kernel"][2], shapes["fc1/kernel"][0], shapes["logits/kernel"][1]
    side = ENCODER_STRIDE * math.isqrt(flat // CONV2_FILTERS)
    return (side, side, channels), num_classes


def cross_entropy(logits, labels, class_weights=None, name="xent"):
    """Mean softmax cross-entropy against integer labels; with ``class_weights`` ([num_classes] numbers) each
    image's term is multiplied by its class's weight first (--class_weight=balanced)."""
    per_image = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    if class_weights is not None:
        per_image *= tf.gather(tf.constant(class_weights, tf.float32, name="class_weights"), labels)
    return tf.reduce_mean(per_image, name=name)


def classification_loss(logits, labels):
    """Mean softmax cross-entropy and accuracy against integer labels."""
    with v1.name_scope("LOSS"):
        loss = cross_entropy(logits, labels)
        correct = tf.equal(tf.argmax(logits, axis=1), labels)
        accuracy = tf.reduce_mean(tf.cast(correct, tf.float32), name="accuracy")
    return loss, accuracy
