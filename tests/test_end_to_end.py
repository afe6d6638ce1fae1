"""The whole workflow through the real scripts, on real MNIST, as a user runs it."""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from cae import transfer
from cae.config import TransferConfig

from conftest import REPO, save_autoencoder_checkpoint


def run_script(name, *args, data_dir):
    env = dict(os.environ, CAE_DATA_DIR=data_dir)
    result = subprocess.run([sys.executable, os.path.join(REPO, "scripts", name), *args],
                            capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_pretrain_then_transfer_on_real_mnist(tmp_path, mnist_dir):
    """One pretraining epoch, then two epochs of the frozen-conv head on cached features (its recipe otherwise:
    batch 512, one-cycle Adam peaking at 5e-3): about 97% here.

    Bar: 95%. It catches a broken pipeline (head not training, labels misaligned, images not scaled, restore
    corrupting the convs: those land far lower), not the value of pretraining: an untrained encoder under the same
    schedule reaches 96.2%, so that comparison needs longer runs (README results table).
    """
    cae_dir, transfer_dir = str(tmp_path / "cae"), str(tmp_path / "transfer")
    out = run_script("pretrain_cae.py", "--epochs=1", f"--train_dir={cae_dir}", data_dir=mnist_dir)
    assert "test reconstruction loss (bce):" in out.stdout
    assert tf.train.latest_checkpoint(cae_dir).endswith("model.ckpt-430")
    out = run_script("transfer_classify.py", "--epochs=2", f"--checkpoint_path={cae_dir}",
                     f"--train_dir={transfer_dir}", data_dir=mnist_dir)
    assert "test accuracy:" in out.stdout
    assert "restored  conv1/kernel" in out.stderr and "initial   fc1/kernel" in out.stderr
    metrics = json.load(open(os.path.join(transfer_dir, "metrics.json")))
    assert metrics["steps"] == 2 * 108  # 55,000 images in batches of 512
    assert metrics["test_accuracy"] > 0.95, metrics
    assert {"test_loss", "wall_time_s", "images_per_s", "cache_time_s"} <= set(metrics)  # cached by default
    assert 100 < metrics["peak_rss_mb"] < 24 * 1024  # TensorFlow alone takes a few hundred MiB; MiB, not KiB
    assert "caching the output of the frozen layers (conv2)" in out.stderr


def test_transfer_session_uses_the_memory_fraction(tmp_path, mnist, monkeypatch):
    """The Session that training really runs in gets the GPUOptions from the flags."""
    seen = []
    real_session = tf.compat.v1.Session

    def recording_session(*args, **kwargs):
        seen.append(kwargs["config"])
        return real_session(*args, **kwargs)

    checkpoint = save_autoencoder_checkpoint(tmp_path / "cae")
    monkeypatch.setattr(transfer.v1, "Session", recording_session)
    cfg = TransferConfig(checkpoint_path=checkpoint, train_dir=str(tmp_path / "run"), epochs=1,
                         gpu_memory_fraction=0.31)
    small = mnist._replace(train=mnist.train._replace(images=mnist.train.images[:256],
                                                      labels=mnist.train.labels[:256]))
    transfer.transfer(cfg, small)
    assert [c.gpu_options.per_process_gpu_memory_fraction for c in seen] == [pytest.approx(0.31)]
