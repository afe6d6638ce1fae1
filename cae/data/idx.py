"""MNIST-format data (MNIST, Fashion-MNIST): find the four IDX gzip files, download them if absent, validate,
scale to [0, 1].

Directory resolution: the ``data_dir`` argument (``--data_dir``); then for MNIST ``$CAE_DATA_DIR``; then a local
copy if it holds the four files: for MNIST ``shared/datasets/mnist`` beside the checkout (where this project's
machines keep it), for Fashion-MNIST the Debian package's directory (``apt-get install dataset-fashion-mnist``);
then a per-user cache directory. Files missing there are downloaded from the public mirrors and kept only if the
sha256 of their decompressed bytes matches the published checksum.
"""

import collections
import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.request
import zlib

import numpy as np

from cae.data import DIGIT_NAMES, IMAGE_SIZE, NUM_CLASSES, NUM_PIXELS, Datasets, Split, splits, to_float
from cae.errors import UserError

VALIDATION_SIZE = 5000

_IMAGES_MAGIC = 2051
_LABELS_MAGIC = 2049

# (images file, labels file) per split, and the sha256 of each file's decompressed bytes.
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MNIST_MIRRORS = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
)
# Same file names and format; checksums of the official files (identical to Debian's dataset-fashion-mnist).
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
FASHION_MNIST_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
FASHION_MNIST_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"
# ../shared/datasets/mnist from the root of a checkout (an editable install); nothing there for an installed package.
# (this file is cae/data/idx.py: three levels below the checkout's parent)
SHARED_MNIST_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, os.pardir,
                                "shared", "datasets", "mnist")
FASHION_MNIST_CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                             "Bag", "Ankle boot")

# name -> the local copy to use before the cache if it holds the files, mirrors, checksums, title, class names.
Source = collections.namedtuple("Source", ["system_dir", "mirrors", "checksums", "title", "class_names"])
DATASETS = {
    "mnist": Source(os.path.normpath(SHARED_MNIST_DIR), MNIST_MIRRORS, MNIST_SHA256, "MNIST", DIGIT_NAMES),
    "fashion_mnist": Source(FASHION_MNIST_SYSTEM_DIR, FASHION_MNIST_MIRRORS, FASHION_MNIST_SHA256, "Fashion-MNIST",
                            FASHION_MNIST_CLASS_NAMES),
}

def file_names():
    """The four .gz file names, in a stable order."""
    return [name + ".gz" for pair in FILES.values() for name in pair]


def default_cache_dir(dataset="mnist"):
    cache_root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache_root, "cae", dataset)


def source(dataset):
    if dataset not in DATASETS:
        raise UserError(f"--dataset={dataset}: expected one of {', '.join(DATASETS)}")
    return DATASETS[dataset]


def resolve_data_dir(data_dir=None, dataset="mnist"):
    """--data_dir; then $CAE_DATA_DIR (MNIST only); then the dataset's local copy if it holds the four files; then
    the per-user cache directory."""
    system_dir = source(dataset).system_dir
    if data_dir:
        return data_dir
    if dataset == "mnist" and os.environ.get("CAE_DATA_DIR"):
        return os.environ["CAE_DATA_DIR"]
    if all(os.path.exists(os.path.join(system_dir, n)) for n in file_names()):
        return system_dir
    return default_cache_dir(dataset)


def read_idx_gz(path, expected_magic):
    """Parse one gzip-compressed IDX file into a uint8 array; raise UserError naming the file on bad content."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except (OSError, EOFError, zlib.error) as e:
        raise UserError(f"{path}: not a complete gzip file ({e})") from None
    if len(raw) < 8:
        raise UserError(f"{path}: {len(raw)} bytes is too short for an IDX header")
    magic = int.from_bytes(raw[0:4], "big")
    if magic != expected_magic:
        raise UserError(f"{path}: IDX magic number {magic}, expected {expected_magic}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    if len(raw) != header + int(np.prod(dims)):
        raise UserError(f"{path}: header promises {'x'.join(map(str, dims))} bytes of data, "
                        f"file holds {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def load_split(data_dir, split):
    """Read one split ('train' or 'test') and check that images and labels agree."""
    images_name, labels_name = FILES[split]
    images_path = os.path.join(data_dir, images_name + ".gz")
    labels_path = os.path.join(data_dir, labels_name + ".gz")
    images = read_idx_gz(images_path, _IMAGES_MAGIC)
    labels = read_idx_gz(labels_path, _LABELS_MAGIC)
    if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise UserError(f"{images_path}: images are {'x'.join(map(str, images.shape[1:]))}, "
                        f"expected {IMAGE_SIZE}x{IMAGE_SIZE}")
    if images.shape[0] != labels.shape[0]:
        raise UserError(f"{images_path} holds {images.shape[0]} images but {labels_path} "
                        f"holds {labels.shape[0]} labels")
    if labels.size and labels.max() >= NUM_CLASSES:
        raise UserError(f"{labels_path}: label {labels.max()} outside 0-{NUM_CLASSES - 1}")
    return Split(to_float(images.reshape(-1, NUM_PIXELS)), labels.astype(np.int64))


def _sha256_of_gunzipped(path):
    digest = hashlib.sha256()
    with gzip.open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(data_dir, mirrors=MNIST_MIRRORS, checksums=MNIST_SHA256, timeout=30):
    """Fetch each missing .gz file from the first mirror that serves it with the right checksum.

    A file is written under a temporary name and renamed into place only once its decompressed sha256 matches,
    so an interrupted or corrupt download never leaves a file that looks complete. Returns the names fetched.
    """
    os.makedirs(data_dir, exist_ok=True)
    fetched = []
    for name in file_names():
        target = os.path.join(data_dir, name)
        if os.path.exists(target):
            continue
        errors = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + name
            fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=name + ".", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                    shutil.copyfileobj(response, out)
                got = _sha256_of_gunzipped(tmp)
                want = checksums.get(name[:-len(".gz")])
                if want is not None and got != want:
                    raise ValueError(f"sha256 of decompressed bytes is {got}, expected {want}")
                os.replace(tmp, target)
                fetched.append(name)
                break
            except (OSError, ValueError, EOFError, zlib.error) as e:
                errors.append(f"{url}: {e}")
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)
        else:
            raise UserError(f"could not download {name} into {data_dir} ({'; '.join(errors)})")
    return fetched


def ensure_files(data_dir, mirrors=MNIST_MIRRORS, checksums=MNIST_SHA256, title="MNIST"):
    """Make sure the four files are in data_dir, downloading the missing ones; one clear error when that fails."""
    missing = [n for n in file_names() if not os.path.exists(os.path.join(data_dir, n))]
    if not missing:
        return
    try:
        download(data_dir, mirrors, checksums)
    except (UserError, OSError) as e:
        raise UserError(
            f"{title} files missing in {data_dir} ({', '.join(missing)}) and download failed: {e}. "
            f"Put {', '.join(file_names())} there, or point --data_dir or $CAE_DATA_DIR at a directory "
            f"that holds them") from None


def load(data_dir=None, validation_size=VALIDATION_SIZE, num_labels=None, download_missing=True,
         limit_flag="num_labels", dataset="mnist"):
    """Train/validation/test splits of MNIST-format data (``dataset``: 'mnist' or 'fashion_mnist').

    The validation split is the last ``validation_size`` training images, so the test set is never used for model
    selection. ``num_labels`` keeps only the first N remaining training images (few-label experiments, quick runs);
    ``limit_flag`` is the flag that set it, for the error message.
    """
    spec = source(dataset)
    data_dir = resolve_data_dir(data_dir, dataset)
    if download_missing:
        ensure_files(data_dir, spec.mirrors, spec.checksums, spec.title)
    train = load_split(data_dir, "train")
    test = load_split(data_dir, "test")
    train, validation = splits.hold_out_last(train, validation_size)
    train = splits.limit(train, num_labels, limit_flag)
    return Datasets(train, validation, test, (IMAGE_SIZE, IMAGE_SIZE, 1), spec.class_names)
