"""Every bad input of issue #6, through the real scripts: exit status 2, exactly one 'error:' line on stderr naming
the flag/file/variable and what was expected, no traceback, and the train_dir byte-identical (nothing added)."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from cae import data, train_dir as cae_train_dir
from cae.errors import UserError

from conftest import run_cli, save_autoencoder_checkpoint, snapshot, stderr_lines
from test_data import write_idx

v1 = tf.compat.v1


@pytest.fixture
def train_dir(tmp_path):
    """A train_dir holding a user's earlier work, but no checkpoint (one would make --checkpoint_path ignored)."""
    directory = tmp_path / "run"
    directory.mkdir()
    (directory / "notes.txt").write_text("lr sweep, run 3\n")
    (directory / "metrics.json").write_text('{"test_accuracy": 0.9712}\n')
    return directory


def assert_rejected(result, train_dir, before, *expected):
    lines = stderr_lines(result)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for text in expected:
        assert text in lines[0]
    assert snapshot(train_dir) == before


@pytest.mark.parametrize("script, flag, expected", [
    ("pretrain_cae.py", "--batch_size=0", "flag --batch_size=0: expected an integer >= 1"),
    ("pretrain_cae.py", "--learning_rate=0", "flag --learning_rate=0.0: expected a number > 0"),
    ("pretrain_cae.py", "--gpu_memory_fraction=0", "flag --gpu_memory_fraction=0.0: expected a fraction in (0, 1]"),
    ("pretrain_cae.py", "--gpu_memory_fraction=1.5", "flag --gpu_memory_fraction=1.5: expected a fraction in (0, 1]"),
    ("pretrain_cae.py", "--epochs=-1", "flag --epochs=-1: expected an integer >= 0"),
    ("pretrain_cae.py", "--input_mask=1", "flag --input_mask=1.0: expected a share of the patches >= 0 and < 1"),
    ("pretrain_cae.py", "--loss=ssim", "flag --loss=ssim: value should be one of <bce|mse|patch_mse>"),
    ("transfer_classify.py", "--learning_rate=-0.1", "flag --learning_rate=-0.1: expected a number > 0"),
    ("transfer_classify.py", "--strong_photometric=50", "--strong_photometric=50 needs --semi_supervised"),
    ("transfer_classify.py", "--restored_warmup=0.2", "--restored_warmup=0.2 needs --checkpoint_path"),
    ("transfer_classify.py", "--restored_warmup=1", "flag --restored_warmup=1.0: expected a fraction in [0, 1)"),
    ("transfer_classify.py", "--target_recall=0.95", "--target_recall=0.95: an operating point needs two classes, "
                                                     "the data has 10"),
    ("transfer_classify.py", "--target_recall=95", "flag --target_recall=95.0: expected a number in [0, 1]"),
])
def test_out_of_range_flag(train_dir, script, flag, expected):
    before = snapshot(train_dir)
    assert_rejected(run_cli(script, flag, f"--train_dir={train_dir}"), train_dir, before, expected)


def damaged_copy(prefix, destination, damage):
    """Copy a checkpoint's .index and .data files to destination/model.ckpt-0, then damage one of them."""
    os.makedirs(destination)
    copy = os.path.join(destination, "model.ckpt-0")
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(prefix + suffix, copy + suffix)
    damage(copy)
    return copy


def truncate(path, size):
    with open(path, "r+b") as f:
        f.truncate(size)


def scribble(path):
    size = os.path.getsize(path)
    with open(path, "wb") as f:
        f.write(np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8).tobytes())


DAMAGES = {  # name: (damage, text the error must contain besides the checkpoint path)
    "index missing": (lambda p: os.remove(p + ".index"), "no such checkpoint (expected"),
    "index truncated": (lambda p: truncate(p + ".index", 100), "cannot read checkpoint (not an sstable"),
    "index garbage": (lambda p: scribble(p + ".index"), "cannot read checkpoint (not an sstable"),
    "data missing": (lambda p: os.remove(p + ".data-00000-of-00001"), "cannot read conv1/kernel from its .data"),
    "data truncated": (lambda p: truncate(p + ".data-00000-of-00001", 100), "cannot read conv1/kernel from its .data"),
    "data garbage": (lambda p: scribble(p + ".data-00000-of-00001"), "cannot read conv1/kernel from its .data"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damaged_checkpoint(tmp_path, train_dir, mnist_dir, damage):
    source = save_autoencoder_checkpoint(tmp_path / "cae")
    damage_fn, expected = DAMAGES[damage]
    checkpoint = damaged_copy(source, str(tmp_path / "damaged"), damage_fn)
    before = snapshot(train_dir)
    result = run_cli("transfer_classify.py", f"--checkpoint_path={checkpoint}", f"--train_dir={train_dir}",
                     data_dir=mnist_dir)
    assert_rejected(result, train_dir, before, checkpoint, expected)


def test_checkpoint_path_that_does_not_exist(tmp_path, train_dir, mnist_dir):
    before = snapshot(train_dir)
    missing = str(tmp_path / "no" / "model.ckpt-430")
    result = run_cli("transfer_classify.py", f"--checkpoint_path={missing}", f"--train_dir={train_dir}",
                     data_dir=mnist_dir)
    assert_rejected(result, train_dir, before, f"--checkpoint_path={missing}: no such checkpoint")


def test_checkpoint_directory_without_checkpoint(tmp_path, train_dir, mnist_dir):
    (tmp_path / "empty").mkdir()
    before = snapshot(train_dir)
    result = run_cli("transfer_classify.py", f"--checkpoint_path={tmp_path / 'empty'}", f"--train_dir={train_dir}",
                     data_dir=mnist_dir)
    assert_rejected(result, train_dir, before, f"--checkpoint_path={tmp_path / 'empty'}: directory holds no checkpoint")


def save_variables(path, shapes):
    with tf.Graph().as_default() as graph:
        for name, shape in shapes.items():
            v1.get_variable(name, shape)
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            return v1.train.Saver().save(sess, str(path))


def test_checkpoint_without_the_restored_variables(tmp_path, train_dir, mnist_dir):
    checkpoint = save_variables(tmp_path / "decoder.ckpt", {"dconv1/kernel": [5, 5, 16, 32], "dconv1/bias": [16],
                                                            "dconv2/kernel": [5, 5, 1, 16], "dconv2/bias": [1]})
    before = snapshot(train_dir)
    result = run_cli("transfer_classify.py", f"--checkpoint_path={checkpoint}", f"--train_dir={train_dir}",
                     data_dir=mnist_dir)
    assert_rejected(result, train_dir, before, f"{checkpoint}: cannot restore: conv1/kernel missing; "
                    "conv1/bias missing; conv2/kernel missing; conv2/bias missing")


def test_checkpoint_with_a_different_shape(tmp_path, train_dir, mnist_dir):
    checkpoint = save_variables(tmp_path / "narrow.ckpt", {"conv1/kernel": [5, 5, 1, 8], "conv1/bias": [8],
                                                           "conv2/kernel": [5, 5, 8, 32], "conv2/bias": [32]})
    before = snapshot(train_dir)
    result = run_cli("transfer_classify.py", f"--checkpoint_path={checkpoint}", f"--train_dir={train_dir}",
                     data_dir=mnist_dir)
    assert_rejected(result, train_dir, before,
                    "conv1/kernel has shape [5, 5, 1, 8] in the checkpoint, [5, 5, 1, 16] in the model",
                    "conv1/bias has shape [8] in the checkpoint, [16] in the model")


@pytest.mark.parametrize("flag, expected", [
    ("--restore_scopes=conv3", "--restore_scopes: scope 'conv3' matches no variable of the model"),
    ("--trainable_scopes=fc1,fc2", "--trainable_scopes: scope 'fc2' matches no variable of the model"),
    ("--trainable_scopes=fc[1", "--trainable_scopes: 'fc[1' is not a valid regular expression"),
])
def test_scopes(tmp_path, train_dir, mnist_dir, flag, expected):
    checkpoint = save_autoencoder_checkpoint(tmp_path / "cae")
    before = snapshot(train_dir)
    result = run_cli("transfer_classify.py", f"--checkpoint_path={checkpoint}", flag, f"--train_dir={train_dir}",
                     data_dir=mnist_dir)
    assert_rejected(result, train_dir, before, expected)


def data_dir_with(tmp_path, mnist_dir, replace):
    """A data directory linking the real MNIST files, except ``replace``: {file name: bytes or None (absent)}."""
    directory = tmp_path / "data"
    directory.mkdir()
    for name in data.file_names():
        if name in replace:
            if replace[name] is not None:
                (directory / name).write_bytes(replace[name])
        else:
            os.symlink(os.path.join(os.path.abspath(mnist_dir), name), directory / name)
    return directory


def real(mnist_dir, name):
    with open(os.path.join(mnist_dir, name), "rb") as f:
        return f.read()


def idx_gz_bytes(tmp_path, array, magic):
    path = tmp_path / "scratch.gz"
    write_idx(path, array, magic)
    return path.read_bytes()


DATA_PROBLEMS = {  # name: (replace, text the error must contain)
    "file missing": (lambda tmp, mnist: {"t10k-labels-idx1-ubyte.gz": None},
                     "t10k-labels-idx1-ubyte.gz: file not found"),
    "gzip truncated": (lambda tmp, mnist: {"train-images-idx3-ubyte.gz":
                                           real(mnist, "train-images-idx3-ubyte.gz")[:100000]},
                       "train-images-idx3-ubyte.gz: not a complete gzip file"),
    "wrong magic": (lambda tmp, mnist: {"train-images-idx3-ubyte.gz": real(mnist, "train-labels-idx1-ubyte.gz")},
                    "train-images-idx3-ubyte.gz: IDX magic number 2049, expected 2051"),
    "count mismatch": (lambda tmp, mnist: {"t10k-labels-idx1-ubyte.gz": real(mnist, "train-labels-idx1-ubyte.gz")},
                       "t10k-images-idx3-ubyte.gz holds 10000 images but"),
    "image size": (lambda tmp, mnist: {"t10k-images-idx3-ubyte.gz":
                                       idx_gz_bytes(tmp, np.zeros((10000, 32, 32)), 2051)},
                   "t10k-images-idx3-ubyte.gz: images are 32x32, expected 28x28"),
}


@pytest.mark.parametrize("problem", sorted(DATA_PROBLEMS))
def test_bad_data(tmp_path, train_dir, mnist_dir, problem):
    replace, expected = DATA_PROBLEMS[problem]
    data_dir = data_dir_with(tmp_path, mnist_dir, replace(tmp_path, mnist_dir))
    before = snapshot(train_dir)
    result = run_cli("pretrain_cae.py", f"--data_dir={data_dir}", "--nodownload", f"--train_dir={train_dir}")
    assert_rejected(result, train_dir, before, expected)


def test_missing_data_directory(tmp_path, train_dir):
    before = snapshot(train_dir)
    missing = tmp_path / "nowhere"
    result = run_cli("pretrain_cae.py", f"--data_dir={missing}", "--nodownload", f"--train_dir={train_dir}")
    assert_rejected(result, train_dir, before, f"{missing}/train-images-idx3-ubyte.gz: file not found")
    assert not missing.exists()


def test_train_dir_that_cannot_be_created(tmp_path, mnist_dir):
    """Not writable: its parent is a file (a read-only directory would not stop root, who runs CI here)."""
    (tmp_path / "results.csv").write_text("a,b\n1,2\n")
    before = snapshot(tmp_path)
    result = run_cli("pretrain_cae.py", f"--train_dir={tmp_path / 'results.csv' / 'run'}", data_dir=mnist_dir)
    assert_rejected(result, tmp_path, before, f"--train_dir={tmp_path / 'results.csv' / 'run'}: cannot be created, "
                    f"{tmp_path / 'results.csv'} is not a directory")


def test_train_dir_in_use_by_another_run(train_dir, mnist_dir):
    """While one run holds the train_dir, a second one stops before writing anything; once the first lets go,
    the same command runs (the lock dies with its holder, nothing stale is left)."""
    before = snapshot(train_dir)
    command = ("pretrain_cae.py", f"--train_dir={train_dir}", "--epochs=1", "--max_train_examples=256",
               "--projector_images=0")
    with cae_train_dir.claim(str(train_dir)):
        result = run_cli(*command, data_dir=mnist_dir)
        with pytest.raises(UserError, match="another run is writing to it"):
            with cae_train_dir.claim(str(train_dir)):
                pass
    assert_rejected(result, train_dir, before, f"--train_dir={train_dir}: another run is writing to it")
    result = run_cli(*command, data_dir=mnist_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (train_dir / "checkpoint").exists() and (train_dir / "notes.txt").read_bytes() == before["notes.txt"]
