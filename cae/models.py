"""Graph builders for the convolutional autoencoder and the classifier that reuses its encoder (TF-Slim's nets/).

Pure functions: each takes an input tensor, adds ops and variables to the default graph and returns a small frozen
bundle (a NamedTuple) of the tensors a caller may want, as slim's nets return ``logits, end_points``. The encoder is
one function, so both graphs name its variables identically (``conv1/kernel`` ...) and a Saver can carry them from
one graph to the other.

Images enter flattened, [N, height * width * channels] in [0, 1] (MNIST: [N, 784]); ``image_shape`` says how to
fold them. The convs do not depend on the image size, only conv1 on the channels, so an encoder trained on one
size restores into a classifier of another. ``filters`` gives the encoder's widths, one stride-2 conv each (the
tutorial's two: 16, 32); the decoder mirrors them.
"""

import math
import re
from typing import NamedTuple

import tensorflow as tf

from cae import layers
from cae.config import LOSSES
from cae.errors import UserError

v1 = tf.compat.v1

MNIST_SHAPE = (28, 28, 1)  # height, width, channels
MNIST_CLASSES = 10
ENCODER_FILTERS = (16, 32)  # the tutorial's encoder: conv1 16, conv2 32 filters
KERNEL_SIZE = 5
HIDDEN_UNITS = 200
HEAD_SCOPES = ("fc1", "logits")


def conv_scopes(filters=ENCODER_FILTERS):
    """conv1 ... convN: one stride-2 conv per width."""
    return tuple(f"conv{i}" for i in range(1, len(filters) + 1))


def deconv_scopes(filters=ENCODER_FILTERS):
    """dconv1 ... dconvN, in the order they run (dconv1 mirrors convN, dconvN gives back the image)."""
    return tuple(f"d{scope}" for scope in conv_scopes(filters))


def decoder_scopes(filters=ENCODER_FILTERS, latent_size=20):
    """What the autoencoder adds to the encoder (without a dense bottleneck, latent_size 0, only the deconvs)."""
    return (("latent_var", "z_matrix") if latent_size else ()) + deconv_scopes(filters)


def classifier_scopes(filters=ENCODER_FILTERS):
    return conv_scopes(filters) + HEAD_SCOPES


def stride(filters=ENCODER_FILTERS):
    """Each conv halves the image: height and width must be multiples of this."""
    return 2 ** len(filters)


# The tutorial's scopes (the MNIST workflow's), as tf.layers named them.
DECODER_SCOPES = decoder_scopes()
CLASSIFIER_VARIABLES = tuple(f"{layer}/{kind}" for layer in classifier_scopes() for kind in ("kernel", "bias"))


class Autoencoder(NamedTuple):
    images: tf.Tensor  # [N, H*W*C] input
    convs: tuple  # conv1 ... convN outputs; convN [N, H/2^N, W/2^N, filters[-1]]
    latent: tf.Tensor  # [N, latent_size]; without a dense bottleneck, the code's mean per channel [N, filters[-1]]
    deconvs: tuple  # dconv1 ... dconv(N-1) outputs (dconvN's is ``logits``)
    logits: tf.Tensor  # [N, H*W*C], before the sigmoid
    reconstruction: tf.Tensor  # [N, H*W*C] in [0, 1]
    loss: tf.Tensor  # scalar reconstruction loss
    encoder_input: tf.Tensor  # [N, H*W*C] what the encoder saw: ``images`` unless noised, cut out or masked

    @property
    def conv1(self):
        return self.convs[0]


class Classifier(NamedTuple):
    images: tf.Tensor  # [N, H*W*C] input
    convs: tuple  # conv1 ... convN outputs
    features: tf.Tensor  # convN flattened: what fc1 sees
    fc1: tf.Tensor
    logits: tf.Tensor  # [N, num_classes]
    probabilities: tf.Tensor
    predictions: tf.Tensor  # int64 [N]

    @property
    def conv1(self):
        return self.convs[0]


def activations(model, *more):
    """{scope: output} of the model's convs and ``more`` (name, tensor) pairs: the histograms of an epoch."""
    return {**{f"conv{i}": t for i, t in enumerate(model.convs, 1)}, **dict(more)}


def num_pixels(image_shape):
    height, width, channels = image_shape
    return height * width * channels


def image_input(image_shape=MNIST_SHAPE, name="IMAGE_IN"):
    """The feedable input: a batch of flattened images in [0, 1]."""
    return v1.placeholder(tf.float32, [None, num_pixels(image_shape)], name=name)


def training_mode(name="TRAINING"):
    """The switch of batch normalization: False (moving averages) unless the training step feeds True."""
    return v1.placeholder_with_default(False, [], name=name)


def encoder(images, image_shape=MNIST_SHAPE, filters=ENCODER_FILTERS, batch_norm=False, training=False):
    """conv1 ... convN, each 5x5 stride 2 relu with the given widths (the tutorial's: 16, 32): [N, H*W*C] ->
    their outputs, the last [N, H/2^N, W/2^N, filters[-1]]. With ``batch_norm`` each conv is batch-normalized,
    in training mode where ``training`` (a bool or bool tensor, or a dict of them by scope: a frozen layer stays in
    inference mode) says so."""
    with v1.name_scope("ENCODER"):
        x = tf.reshape(images, [-1, *image_shape])
        outputs = []
        for scope, width in zip(conv_scopes(filters), filters):
            mode = training.get(scope, False) if isinstance(training, dict) else training
            x = layers.conv2d(x, width, KERNEL_SIZE, 2, scope, tf.nn.relu, batch_norm, mode)
            outputs.append(x)
    return tuple(outputs)


def autoencoder(images, latent_size=20, loss="bce", input_noise=0.0, image_shape=MNIST_SHAPE,
                filters=ENCODER_FILTERS, batch_norm=False, training=False, corrupt=None, hide=None):
    """The CAE of the reference TF1 tutorial: encoder -> latent_var -> z_matrix -> dconv1 ... dconvN (sigmoid).

    ``input_noise`` > 0 makes it a denoising autoencoder: the encoder sees the images plus Gaussian noise of that
    standard deviation (clipped to [0, 1]), the loss still compares with the clean images. ``corrupt`` (images ->
    images), when given, corrupts the encoder's input further (a cutout: an inpainting autoencoder). ``hide``
    (images -> [N, H*W*C], 1 where a pixel is hidden), when given, makes it a masked autoencoder: the hidden pixels
    reach the encoder as gray 0.5 and only they count in the loss.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    encoder_input = images
    if input_noise:
        with v1.name_scope("NOISE"):
            encoder_input = tf.clip_by_value(images + v1.random_normal(tf.shape(images), stddev=input_noise), 0., 1.)
    if corrupt is not None:
        encoder_input = corrupt(encoder_input)
    hidden = None
    if hide is not None:
        with v1.name_scope("MASK"):
            hidden = hide(images)
            encoder_input = encoder_input * (1.0 - hidden) + 0.5 * hidden
    convs = encoder(encoder_input, image_shape, filters, batch_norm, training)
    latent, deconvs, logits, reconstruction = decoder(convs[-1], latent_size, image_shape, filters)
    loss_tensor = reconstruction_loss(images, logits, reconstruction, loss, image_shape, stride(filters), hidden)
    if loss == "patch_mse":
        reconstruction = patch_reconstruction(images, logits, image_shape, stride(filters))
    return Autoencoder(images, convs, latent, deconvs, logits, reconstruction, loss_tensor, encoder_input)


def decoder(code, latent_size, image_shape=MNIST_SHAPE, filters=ENCODER_FILTERS):
    """convN's output -> latent_var (linear) -> z_matrix (relu) -> dconv1 ... dconv(N-1) (relu, the encoder's
    widths mirrored) -> dconvN (sigmoid, the image's channels): returns (latent, the relu deconvs' outputs, logits,
    reconstruction), the last two [N, H*W*C].

    ``latent_size`` 0 leaves out the dense bottleneck: the deconvs start from convN's map itself, so the code keeps
    where things are (a crack, a texture) instead of squeezing the image through a few numbers that hold its
    layout and brightness; ``latent`` is then the map's mean per channel, for the projector."""
    height, width, channels = image_shape
    code_shape = [height // stride(filters), width // stride(filters), filters[-1]]
    with v1.name_scope("LATENT"):
        if latent_size:
            latent = layers.dense(layers.flatten(code), latent_size, "latent_var")
        else:
            latent = tf.reduce_mean(code, axis=[1, 2], name="code_mean")
    with v1.name_scope("DECODER"):
        if latent_size:
            z = layers.dense(latent, code_shape[0] * code_shape[1] * code_shape[2], "z_matrix")
            x = tf.nn.relu(tf.reshape(z, [-1, *code_shape]))
        else:
            x = code
        widths = list(reversed(filters[:-1])) + [channels]
        deconvs = []
        for i, (scope, width_out) in enumerate(zip(deconv_scopes(filters), widths)):
            last = i == len(widths) - 1
            x = layers.conv2d_transpose(x, width_out, KERNEL_SIZE, 2, scope, None if last else tf.nn.relu)
            if not last:
                deconvs.append(x)
        logits = tf.reshape(x, [-1, num_pixels(image_shape)])
        reconstruction = tf.sigmoid(logits, name="reconstruction")
    return latent, tuple(deconvs), logits, reconstruction


def patch_statistics(images, image_shape, patch):
    """Mean and standard deviation of every ``patch`` x ``patch`` square of every image (over its pixels and
    channels), each broadcast back over its square: two [N, H*W*C] tensors."""
    height, width, channels = image_shape
    x = tf.reshape(images, [-1, height // patch, patch, width // patch, patch, channels])
    mean, variance = tf.nn.moments(x, axes=[2, 4, 5], keepdims=True)
    spread = tf.shape(x)
    mean = tf.reshape(tf.broadcast_to(mean, spread), [-1, num_pixels(image_shape)])
    std = tf.reshape(tf.broadcast_to(tf.sqrt(variance + 1e-6), spread), [-1, num_pixels(image_shape)])
    return mean, std


def reconstruction_loss(images, logits, reconstruction, loss="bce", image_shape=MNIST_SHAPE, patch=4, weights=None):
    """The scalar loss of the decoder's ``logits`` (``reconstruction`` their sigmoid) against ``images``.

    bce: mean per-pixel binary cross-entropy (computed stably from the logits); mse: squared error of the sigmoid.
    patch_mse (MAE's normalized pixels, He et al. 2022): the logits are compared with the image normalized to mean
    0 and variance 1 in every ``patch`` x ``patch`` square, so a patch's brightness costs nothing and its details
    (a crack, a texture) are the whole loss. ``weights`` ([N, H*W*C]) make it their weighted mean (a masked
    autoencoder's hidden pixels)."""
    with v1.name_scope("LOSS"):
        if loss == "patch_mse":
            mean, std = patch_statistics(images, image_shape, patch)
            per_pixel = tf.square(logits - (images - mean) / std)
        elif loss == "bce":
            per_pixel = tf.nn.sigmoid_cross_entropy_with_logits(labels=images, logits=logits)
        else:
            per_pixel = tf.square(reconstruction - images)
        if weights is None:
            return tf.reduce_mean(per_pixel, name="reconstruction_loss")
        total = tf.reduce_sum(per_pixel * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)
        return tf.identity(total, name="reconstruction_loss")


def patch_reconstruction(images, logits, image_shape=MNIST_SHAPE, patch=4):
    """What a patch_mse decoder's ``logits`` show: each patch's own mean and spread put back, in [0, 1]."""
    with v1.name_scope("RECONSTRUCTION"):
        mean, std = patch_statistics(images, image_shape, patch)
        return tf.clip_by_value(logits * std + mean, 0.0, 1.0, name="patch_reconstruction")


def classifier(images, num_classes=MNIST_CLASSES, hidden_units=HIDDEN_UNITS, image_shape=MNIST_SHAPE,
               filters=ENCODER_FILTERS, batch_norm=False, training=False):
    """conv1 ... convN (the autoencoder's encoder) -> fc1 (200 relu) -> logits (num_classes)."""
    convs = encoder(images, image_shape, filters, batch_norm, training)
    with v1.name_scope("CLASSIFIER"):
        features = layers.flatten(convs[-1])
        fc1 = layers.dense(features, hidden_units, "fc1", tf.nn.relu)
        logits = layers.dense(fc1, num_classes, "logits")
        probabilities = tf.nn.softmax(logits, name="probabilities")
        predictions = tf.argmax(logits, axis=1, name="predictions")
    return Classifier(images, convs, features, fc1, logits, probabilities, predictions)


CONV_KERNEL = re.compile(r"conv([1-9][0-9]*)/kernel")


def encoder_filters_of(shapes):
    """The widths of the encoder whose variable shapes (a checkpoint's) are ``shapes``: conv1/kernel, conv2/kernel,
    ... in order ([5, 5, in, width] each); () without conv1."""
    numbers = sorted(int(m.group(1)) for m in map(CONV_KERNEL.fullmatch, shapes) if m)
    widths = []
    for expected, number in enumerate(numbers, 1):
        if number != expected:
            break
        widths.append(int(shapes[f"conv{number}/kernel"][3]))
    return tuple(widths)


def has_batch_norm(shapes):
    """Whether the checkpoint whose variable shapes are ``shapes`` has batch-normalized convs."""
    return "conv1/batch_normalization/gamma" in shapes


def model_variables():
    """The model's own variables of the default graph: the trainable ones and batch normalization's moving
    averages (what a checkpoint of the model must hold; never optimizer slots or global_step)."""
    return v1.trainable_variables() + [v for v in v1.get_collection(v1.GraphKeys.MODEL_VARIABLES)
                                       if v not in v1.trainable_variables()]


def classifier_geometry(shapes):
    """(image_shape, num_classes, encoder filters) of the classifier whose variable shapes (a checkpoint's) are
    ``shapes``: conv1/kernel [5, 5, C, w1] ... convN/kernel [5, 5, ., wN], fc1/kernel [(S/2^N)^2 * wN, 200] for
    S x S images, logits/kernel [200, K]."""
    filters = encoder_filters_of(shapes)
    channels, flat, num_classes = shapes["conv1/kernel"][2], shapes["fc1/kernel"][0], shapes["logits/kernel"][1]
    side = stride(filters) * math.isqrt(flat // filters[-1])
    return (side, side, channels), num_classes, filters


def check_image_size(filters, image_shape, source):
    """The image side must halve exactly at every conv; ``source`` names where the filters come from."""
    side = stride(filters)
    if image_shape[0] % side or image_shape[1] % side:
        raise UserError(f"{source}: {len(filters)} stride-2 convs need an image side "
                        f"that is a multiple of {side}, the images are {image_shape[0]}x{image_shape[1]} (with "
                        f"--image_dir choose --image_size; or use fewer convs)")


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
