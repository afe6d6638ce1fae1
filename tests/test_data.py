import gzip
import hashlib
import os

import numpy as np
import pytest

from cae import data
from cae.errors import UserError

from conftest import REPO


def write_idx(path, array, magic):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_tiny_mnist(directory, n_train=12, n_test=4, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28))
        labels = rng.integers(0, 10, size=n)
        images_name, labels_name = data.FILES[split]
        write_idx(os.path.join(directory, images_name + ".gz"), images, 2051)
        write_idx(os.path.join(directory, labels_name + ".gz"), labels, 2049)
        arrays[split] = (images, labels)
    return arrays


def test_loader_on_tiny_idx_files(tmp_path):
    arrays = write_tiny_mnist(tmp_path)
    ds = data.load(str(tmp_path), validation_size=2, download_missing=False)
    images, labels = arrays["train"]
    assert ds.train.images.shape == (10, 784) and ds.validation.images.shape == (2, 784)
    assert ds.train.images.dtype == np.float32
    np.testing.assert_array_equal(ds.train.images, images[:10].reshape(10, 784).astype(np.float32) / 255)
    np.testing.assert_array_equal(ds.validation.labels, labels[10:])
    np.testing.assert_array_equal(ds.test.labels, arrays["test"][1])
    assert 0.0 <= ds.train.images.min() and ds.train.images.max() <= 1.0


def test_num_labels_keeps_first_examples(tmp_path):
    arrays = write_tiny_mnist(tmp_path)
    ds = data.load(str(tmp_path), validation_size=2, num_labels=3, download_missing=False)
    np.testing.assert_array_equal(ds.train.labels, arrays["train"][1][:3])


def test_wrong_magic_names_file(tmp_path):
    write_tiny_mnist(tmp_path)
    path = os.path.join(tmp_path, "train-labels-idx1-ubyte.gz")
    write_idx(path, np.zeros(12), 2051)
    with pytest.raises(UserError, match="train-labels-idx1-ubyte.gz: IDX magic number 2051, expected 2049"):
        data.load(str(tmp_path), validation_size=2, download_missing=False)


def test_count_mismatch_is_reported(tmp_path):
    write_tiny_mnist(tmp_path)
    write_idx(os.path.join(tmp_path, "t10k-labels-idx1-ubyte.gz"), np.zeros(5), 2049)
    with pytest.raises(UserError, match="holds 4 images but .* holds 5 labels"):
        data.load(str(tmp_path), validation_size=2, download_missing=False)


def test_real_mnist(mnist):
    assert len(mnist.train.labels) + len(mnist.validation.labels) == 60000
    assert len(mnist.test.labels) == 10000
    assert list(mnist.train.labels[:5]) == [5, 0, 4, 1, 9]
    everything = np.concatenate([mnist.train.images, mnist.validation.images])
    assert abs(everything.mean() - 0.1307) < 1e-3 and abs(everything.std() - 0.3081) < 1e-3


def test_download_from_file_url_verifies_checksums(tmp_path, mnist_dir):
    """The download path, served from a file:// mirror; checksums are those of the real files."""
    target = tmp_path / "cache"
    fetched = data.download(str(target), mirrors=["file://" + os.path.abspath(mnist_dir) + "/"])
    assert sorted(fetched) == sorted(data.file_names())
    assert data.load(str(target), download_missing=False).test.labels.shape == (10000,)


def test_download_rejects_bad_checksum_and_leaves_nothing(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    write_tiny_mnist(mirror)
    target = tmp_path / "cache"
    with pytest.raises(UserError, match="expected ba891046"):
        data.download(str(target), mirrors=["file://" + str(mirror) + "/"])
    assert [n for n in os.listdir(target) if n.endswith(".part")] == []
    assert not (target / "train-images-idx3-ubyte.gz").exists()


def test_missing_files_without_network_name_directory_and_flag(tmp_path):
    with pytest.raises(UserError) as e:
        data.ensure_files(str(tmp_path), mirrors=["file:///nonexistent/"])
    message = str(e.value)
    assert str(tmp_path) in message and "train-images-idx3-ubyte.gz" in message
    assert "--data_dir" in message and "CAE_DATA_DIR" in message


def test_checksums_match_shared_sha256sums(mnist_dir):
    listed = dict(line.split()[::-1] for line in open(os.path.join(mnist_dir, "SHA256SUMS")) if line.strip())
    assert listed == data.MNIST_SHA256
    with gzip.open(os.path.join(mnist_dir, "t10k-labels-idx1-ubyte.gz")) as f:
        assert hashlib.sha256(f.read()).hexdigest() == data.MNIST_SHA256["t10k-labels-idx1-ubyte"]


def test_scaled_images_are_aligned_for_zero_copy_feeds(tmp_path, mnist):
    arrays = write_tiny_mnist(tmp_path, n_train=12)
    ds = data.load(str(tmp_path), validation_size=5, num_labels=3, download_missing=False)
    for images in (ds.train.images, ds.validation.images, ds.test.images, mnist.train.images,
                   mnist.validation.images):
        assert images.ctypes.data % 64 == 0 and images.dtype == np.float32 and images.shape[1] == 784
    np.testing.assert_array_equal(ds.validation.images,
                                  arrays["train"][0][7:].reshape(5, 784).astype(np.float32) / 255.0)


def test_real_fashion_mnist_from_the_debian_directory(fashion_mnist, monkeypatch):
    """$CAE_DATA_DIR names MNIST; it must not leak into Fashion-MNIST's resolution."""
    monkeypatch.setenv("CAE_DATA_DIR", "/nonexistent")
    assert data.resolve_data_dir(None, "fashion_mnist") == data.FASHION_MNIST_SYSTEM_DIR
    assert data.resolve_data_dir("/somewhere", "fashion_mnist") == "/somewhere"
    assert data.resolve_data_dir(None, "mnist") == "/nonexistent"
    assert len(fashion_mnist.train.labels) == 55000 and len(fashion_mnist.test.labels) == 10000
    assert list(fashion_mnist.train.labels[:5]) == [9, 0, 0, 3, 0]
    assert np.bincount(fashion_mnist.test.labels).tolist() == [1000] * 10


def test_fashion_mnist_checksums_are_the_debian_files():
    for name, want in data.FASHION_MNIST_SHA256.items():
        with gzip.open(os.path.join(data.FASHION_MNIST_SYSTEM_DIR, name + ".gz")) as f:
            assert hashlib.sha256(f.read()).hexdigest() == want, name


def test_mnist_is_found_beside_the_checkout_without_any_setting(tmp_path, monkeypatch):
    """README's first command sets nothing: MNIST comes from shared/datasets/mnist beside the checkout when that
    holds the four files, else from the cache (and a download)."""
    (tmp_path / "shared").mkdir()
    write_tiny_mnist(tmp_path / "shared", n_train=12)
    monkeypatch.setattr(data.idx, "DATASETS", dict(data.DATASETS, mnist=data.DATASETS["mnist"]._replace(
        system_dir=str(tmp_path / "shared"))))
    monkeypatch.delenv("CAE_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data.resolve_data_dir(None, "mnist") == str(tmp_path / "shared")
    monkeypatch.setenv("CAE_DATA_DIR", str(tmp_path / "mine"))  # the variable still wins
    assert data.resolve_data_dir(None, "mnist") == str(tmp_path / "mine")
    monkeypatch.delenv("CAE_DATA_DIR")
    os.remove(tmp_path / "shared" / "t10k-labels-idx1-ubyte.gz")  # an incomplete copy is not used
    assert data.resolve_data_dir(None, "mnist") == str(tmp_path / "cache" / "cae" / "mnist")
    assert os.path.normpath(data.SHARED_MNIST_DIR) == os.path.join(os.path.dirname(REPO), "shared", "datasets",
                                                                   "mnist")


def test_fashion_mnist_falls_back_to_its_own_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(data.idx, "DATASETS", dict(data.DATASETS, fashion_mnist=data.DATASETS["fashion_mnist"]._replace(
        system_dir=str(tmp_path / "not-installed"))))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data.resolve_data_dir(None, "fashion_mnist") == str(tmp_path / "cache" / "cae" / "fashion_mnist")


def test_unknown_dataset_names_the_flag():
    with pytest.raises(UserError, match="--dataset=cifar: expected one of mnist, fashion_mnist"):
        data.load(dataset="cifar")
