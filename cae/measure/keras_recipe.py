"""The time-to-accuracy baseline: the toolkit's default recipe, written in Keras 3, as one process.

``--recipe=workflow`` pretrains keras_baseline's autoencoder, copies its conv1/conv2 weights into the classifier
with those layers frozen and trains the head; ``--recipe=scratch`` trains the whole classifier. Epochs, batch
sizes, learning rates and schedules are PretrainConfig's and TransferConfig's defaults, so both sides always run
the same recipe; both validate once per epoch. Writes ``{"test_accuracy": ...}`` to --output.

Run by cae.measure.time_to_accuracy: ``python -m cae.measure.keras_recipe --recipe=scratch --output=x.json``.
"""

import dataclasses
import json

from absl import app, flags

flags.DEFINE_enum("recipe", "workflow", ["workflow", "scratch"], "Pretrain + frozen head, or from scratch.")
flags.DEFINE_integer("seed", 0, "keras.utils.set_random_seed.")
flags.DEFINE_string("output", None, "JSON file for the test accuracy.", required=True)
flags.DEFINE_bool("quick", False, "512 training images, one epoch each (CI).")
FLAGS = flags.FLAGS


def fit(model, inputs, targets, validation, cfg):
    model.fit(inputs, targets, batch_size=cfg.batch_size, epochs=cfg.epochs, shuffle=True,
              validation_data=validation, verbose=0)


def optimizer(cfg, num_examples):
    from cae import train
    from cae.measure import keras_baseline
    return keras_baseline.adam(cfg.learning_rate, cfg.lr_schedule,
                               cfg.epochs * train.steps_per_epoch(num_examples, cfg.batch_size))


def main(argv):
    del argv
    import keras
    import numpy as np

    from cae import data
    from cae.config import PretrainConfig, TransferConfig
    from cae.measure import keras_baseline

    keras.utils.set_random_seed(FLAGS.seed)
    mnist = data.load(None, dataset="mnist")
    count = 512 if FLAGS.quick else len(mnist.train.images)
    images, labels = mnist.train.images[:count], mnist.train.labels[:count]
    validation = mnist.validation.images, mnist.validation.labels
    frozen = FLAGS.recipe == "workflow"
    # transfer_classify's defaults with and without --checkpoint_path
    pretrain_cfg, transfer_cfg = PretrainConfig(), TransferConfig(checkpoint_path="given" if frozen else None).settled()
    if FLAGS.quick:  # as time_to_accuracy's quick toolkit rows
        pretrain_cfg = dataclasses.replace(pretrain_cfg, epochs=1)
        transfer_cfg = dataclasses.replace(transfer_cfg, epochs=1, batch_size=64)
    classifier = keras_baseline.classifier(optimizer(transfer_cfg, count), frozen_convs=frozen)
    if frozen:
        autoencoder = keras_baseline.autoencoder(optimizer(pretrain_cfg, count),
                                                 pretrain_cfg.latent_size)
        fit(autoencoder, images, images, (validation[0], validation[0]), pretrain_cfg)
        for name in ("conv1", "conv2"):
            classifier.get_layer(name).set_weights(autoencoder.get_layer(name).get_weights())
    fit(classifier, images, labels, validation, transfer_cfg)
    predictions = np.argmax(classifier.predict(mnist.test.images, batch_size=1000, verbose=0), axis=1)
    with open(FLAGS.output, "w") as f:
        json.dump({"test_accuracy": float(np.mean(predictions == mnist.test.labels))}, f)


if __name__ == "__main__":
    app.run(main)
