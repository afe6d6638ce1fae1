import os
import subprocess
import sys

import pytest
import tensorflow as tf

from cae import data, models
from cae.config import TransferConfig
from cae.transfer import transfer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def mnist_dir():
    """Real MNIST: $CAE_DATA_DIR, else ../shared/datasets/mnist beside the repo (this project's machines and CI),
    else the per-user cache, downloading into it (a fresh machine with a network). Missing data fails, never skips."""
    shared = os.path.join(REPO, "..", "shared", "datasets", "mnist")
    path = os.environ.get("CAE_DATA_DIR") or (shared if os.path.isdir(shared) else data.default_cache_dir())
    data.ensure_files(path)
    return path


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    return data.load(mnist_dir, download_missing=False)


def save_autoencoder_checkpoint(directory, seed=1, latent_size=20):
    """An untrained autoencoder checkpoint (its values are random but known): returns its prefix."""
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(seed)
        models.autoencoder(models.image_input(), latent_size)
        tf.compat.v1.train.get_or_create_global_step()
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            return saver.save(sess, os.path.join(str(directory), "model.ckpt"), global_step=0)


@pytest.fixture
def cae_checkpoint(tmp_path):
    return save_autoencoder_checkpoint(tmp_path / "cae")


@pytest.fixture(scope="session")
def transfer_dir(tmp_path_factory, mnist):
    """A classifier trained from scratch for 200 steps on 12,800 real MNIST images (about 95% test accuracy):
    the train_dir holding its checkpoint. Shared by the export, predict and entry-point tests."""
    train_dir = str(tmp_path_factory.mktemp("transfer"))
    small = mnist._replace(train=mnist.train._replace(images=mnist.train.images[:12800],
                                                      labels=mnist.train.labels[:12800]))
    transfer(TransferConfig(train_dir=train_dir, epochs=1, batch_size=64, learning_rate=1e-3, lr_schedule="cosine"),
             small)
    return train_dir


def checkpoint_predictions(checkpoint_dir, images):
    """(classes, probabilities) of the checkpointed classifier on [N, 784] images, with a plain Saver: the
    reference the exported and file-based predictions are held to."""
    with tf.Graph().as_default() as graph:
        t = models.classifier(models.image_input())
        saver = tf.compat.v1.train.Saver(tf.compat.v1.trainable_variables())
        with tf.compat.v1.Session(graph=graph) as sess:
            saver.restore(sess, tf.train.latest_checkpoint(checkpoint_dir))
            return sess.run([t.predictions, t.probabilities], {t.images: images})


def run_cli(script, *args, data_dir=None, timeout=600):
    """Run scripts/<script> as a user would; returns the CompletedProcess whatever its exit code."""
    env = dict(os.environ, CAE_DATA_DIR=data_dir or os.environ.get("CAE_DATA_DIR", ""))
    return subprocess.run([sys.executable, os.path.join(REPO, "scripts", script), *args],
                          capture_output=True, text=True, env=env, timeout=timeout)


def stderr_lines(result):
    """Every line the command wrote to stderr: the entry points hold back TensorFlow's import-time notices."""
    return result.stderr.splitlines()


def snapshot(directory):
    """{relative path: bytes} of every file under directory (empty if it does not exist)."""
    files = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, directory)] = f.read()
    return files


@pytest.fixture(scope="session")
def fashion_mnist():
    """Real Fashion-MNIST from the Debian package dataset-fashion-mnist (.ci/run installs it); missing fails."""
    missing = [n for n in data.file_names()
               if not os.path.exists(os.path.join(data.FASHION_MNIST_SYSTEM_DIR, n))]
    assert not missing, (f"Fashion-MNIST needed in {data.FASHION_MNIST_SYSTEM_DIR}: missing {missing} "
                         f"(apt-get install -y dataset-fashion-mnist)")
    return data.load(dataset="fashion_mnist", download_missing=False)
