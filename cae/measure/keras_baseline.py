"""The benchmark's baseline: the same autoencoder and classifier as cae.models, written the Keras 3 way.

Same layer sizes, strides, SAME padding, activations, Glorot-uniform kernels and zero biases, same losses computed
from logits, and Adam with TF1's epsilon (1e-8; Keras defaults to 1e-7) on the same learning-rate schedule. Keras
is imported here only, so the rest of the toolkit never pays for it.
"""

import keras

from cae import train
from cae.data import IMAGE_SIZE, NUM_CLASSES, NUM_PIXELS


def adam(learning_rate, schedule, total_steps):
    """The optimizer of cae.train.learning_rate + tf.compat.v1.train.AdamOptimizer, in Keras terms."""
    total_steps = max(1, total_steps)
    if schedule == "cosine":  # cosine_decay with alpha 0: the same formula
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, total_steps)
    elif schedule == "one_cycle":  # Keras' linear warm-up, then the same cosine
        warmup = train.one_cycle_warmup_steps(total_steps)
        learning_rate = keras.optimizers.schedules.CosineDecay(
            learning_rate * train.ONE_CYCLE_START_FRACTION, max(1, total_steps - warmup),
            warmup_target=learning_rate, warmup_steps=warmup)
    elif schedule != "constant":
        raise ValueError(f"unknown learning-rate schedule {schedule!r}")
    return keras.optimizers.Adam(learning_rate, epsilon=1e-8)


def _encoder(trainable):
    return [keras.layers.Reshape((IMAGE_SIZE, IMAGE_SIZE, 1)),
            keras.layers.Conv2D(16, 5, strides=2, padding="same", activation="relu", name="conv1",
                                trainable=trainable),
            keras.layers.Conv2D(32, 5, strides=2, padding="same", activation="relu", name="conv2",
                                trainable=trainable)]


def autoencoder(optimizer, latent_size=20):
    """conv1 -> conv2 -> latent_var -> z_matrix (relu) -> dconv1 -> dconv2, per-pixel BCE on the logits."""
    model = keras.Sequential([
        keras.Input((NUM_PIXELS,)),
        *_encoder(trainable=True),
        keras.layers.Flatten(),
        keras.layers.Dense(latent_size, name="latent_var"),
        keras.layers.Dense(7 * 7 * 32, activation="relu", name="z_matrix"),
        keras.layers.Reshape((7, 7, 32)),
        keras.layers.Conv2DTranspose(16, 5, strides=2, padding="same", activation="relu", name="dconv1"),
        keras.layers.Conv2DTranspose(1, 5, strides=2, padding="same", name="dconv2"),
        keras.layers.Reshape((NUM_PIXELS,)),
    ], name="autoencoder")
    model.compile(optimizer=optimizer, loss=keras.losses.BinaryCrossentropy(from_logits=True))
    return model


def classifier(optimizer, frozen_convs=True, hidden_units=200):
    """conv1 -> conv2 (``trainable=False`` when frozen) -> fc1 (relu) -> logits, sparse softmax cross-entropy."""
    model = keras.Sequential([
        keras.Input((NUM_PIXELS,)),
        *_encoder(trainable=not frozen_convs),
        keras.layers.Flatten(),
        keras.layers.Dense(hidden_units, activation="relu", name="fc1"),
        keras.layers.Dense(NUM_CLASSES, name="logits"),
    ], name="classifier")
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model
