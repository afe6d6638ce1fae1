import os

import pytest
import tensorflow as tf

from cae import data, models

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def mnist_dir():
    """Real MNIST: $CAE_DATA_DIR, else ../shared/datasets/mnist beside the repo. Missing data fails, never skips."""
    path = os.environ.get("CAE_DATA_DIR") or os.path.join(REPO, "..", "shared", "datasets", "mnist")
    missing = [n for n in data.file_names() if not os.path.exists(os.path.join(path, n))]
    assert not missing, f"real MNIST needed in {path}: missing {missing} (set CAE_DATA_DIR)"
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
