"""Image data behind one type: ``Datasets(train, validation, test, image_shape, class_names)`` of ``Split(images,
labels)``, images [N, H*W*C] (row-major HWC), labels int64 [N].

Images are what their source holds: float32 in [0, 1] (MNIST), or uint8 0-255 (an image folder: a
``cae.data.rows.RowFile`` that reads its rows from the decode cache's file a batch at a time, so a folder never
has to fit in memory). Indexing images with a slice or index array gives images (a RowFile gives a view, nothing
read); ``as_float`` turns a batch of them into what the models take, float32 in [0, 1], where it is fed.

Sources, one module each:

* ``cae.data.idx``: MNIST-format IDX files (MNIST, Fashion-MNIST): find, download, verify, read (``load``).
* ``cae.data.folders``: a folder of your own images, one subfolder per class (``load_image_dir``), decoded with
  Pillow by ``cae.data.decode`` (``cae.data.cache`` keeps the decoded pixels so a second run does not decode them
  again).
* ``cae.data.splits``: train/validation/test splitting and ``--num_labels`` limiting.

Nothing here imports TensorFlow: the command line imports this before TensorFlow, and the image decoding worker
processes import only this package.
"""

import collections
import math
from typing import NamedTuple, Tuple

import numpy as np

from cae.errors import UserError

# MNIST's geometry: the default of Datasets.image_shape and the input of the models built for 28x28 gray images.
IMAGE_SIZE = 28
NUM_PIXELS = IMAGE_SIZE * IMAGE_SIZE
NUM_CLASSES = 10
DIGIT_NAMES = tuple(str(d) for d in range(NUM_CLASSES))

SPLITS = ("train", "validation", "test")

Split = collections.namedtuple("Split", ["images", "labels"])  # [N, H*W*C] float32 in [0, 1] or uint8; int64 [N]


class Datasets(NamedTuple):
    """The three splits and what describes every image in them.

    Iterating or ``_asdict()`` also yields ``image_shape`` and ``class_names``: code that handles the splits goes
    through ``SPLITS``, ``splits()`` or ``map_splits()``.
    """
    train: Split
    validation: Split
    test: Split
    image_shape: Tuple[int, int, int] = (IMAGE_SIZE, IMAGE_SIZE, 1)  # (height, width, channels)
    class_names: Tuple[str, ...] = DIGIT_NAMES  # label i is class_names[i]

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def input_size(self):
        """Values per image row: height * width * channels (784 for MNIST)."""
        return math.prod(self.image_shape)

    def splits(self):
        """{'train': Split, 'validation': Split, 'test': Split}, in that order."""
        return {name: getattr(self, name) for name in SPLITS}

    def map_splits(self, fn):
        """The same Datasets with each split replaced by ``fn(name, split)``; image_shape and class_names kept."""
        return self._replace(**{name: fn(name, split) for name, split in self.splits().items()})


def to_float(pixels, alignment=64):
    """uint8 pixels -> float32 in [0, 1]: the scale every model here is trained and fed on.

    The result lies in a buffer aligned to ``alignment`` bytes: TensorFlow feeds an aligned array without copying
    it (Eigen's alignment, 64 bytes with AVX-512). An MNIST image row is 3,136 = 49 x 64 bytes, and any row of
    S x S x C float32 values with S a multiple of 4 is a multiple of 64 bytes, so slices of whole rows stay aligned.
    """
    size = pixels.size * np.dtype(np.float32).itemsize
    raw = np.empty(size + alignment, np.uint8)
    offset = -raw.ctypes.data % alignment
    scaled = raw[offset:offset + size].view(np.float32).reshape(pixels.shape)
    np.divide(pixels, np.float32(255), out=scaled, dtype=np.float32)  # = pixels.astype(np.float32) / 255.0
    return scaled


def as_float(images):
    """A batch of images (float32 in [0, 1], uint8, a RowFile: read here) as float32 in [0, 1]."""
    if images.dtype == np.uint8:
        return to_float(np.asarray(images))
    if images.dtype != np.float32:
        raise TypeError(f"images of {images.dtype}: expected uint8 pixels or float32 in [0, 1]")
    return np.asarray(images)  # a RowFile of float32 (cached features on disk) is read here


def concatenate(first, second):
    """Two sets of images as one array: uint8 where both are pixels (a RowFile is read), else float32."""
    if first.dtype == second.dtype == np.uint8:
        return np.concatenate([np.asarray(first), np.asarray(second)])
    return np.concatenate([as_float(first), as_float(second)])


# The sources need the types above, so they come after them.
from cae.data import cache, folders, idx, rows, splits  # noqa: E402
from cae.data.folders import IMAGE_EXTENSIONS, load_image_dir  # noqa: E402
from cae.data.idx import (  # noqa: E402
    DATASETS, FASHION_MNIST_CLASS_NAMES, FASHION_MNIST_MIRRORS, FASHION_MNIST_SHA256, FASHION_MNIST_SYSTEM_DIR,
    FILES, MNIST_MIRRORS, MNIST_SHA256, SHARED_MNIST_DIR, VALIDATION_SIZE, Source, default_cache_dir, download,
    ensure_files, file_names, load, load_split, read_idx_gz, resolve_data_dir, source)



def from_config(cfg, labelled=True, limit=None, limit_flag="num_labels"):
    """The Datasets a cae.config.DataConfig asks for: the folder ``cfg.image_dir`` (``labelled``: one subfolder per
    class; else every image below it), or the built-in ``cfg.dataset``. ``limit`` keeps the first N training
    images (--num_labels, --max_train_examples: ``limit_flag`` names it in errors)."""
    if not cfg.image_dir:
        return load(cfg.data_dir, num_labels=limit, download_missing=cfg.download, limit_flag=limit_flag,
                    dataset=cfg.dataset)
    if cfg.data_dir:
        raise UserError(f"--image_dir={cfg.image_dir} and --data_dir={cfg.data_dir}: give one of them (--data_dir "
                        f"holds the IDX files of --dataset, --image_dir your own images)")
    return load_image_dir(cfg.image_dir, cfg.image_size, cfg.color_mode, cfg.validation_percentage,
                          cfg.testing_percentage, num_labels=limit, labelled=labelled,
                          skip_bad_images=cfg.skip_bad_images, limit_flag=limit_flag, fold=cfg.fold)


__all__ = [
    "IMAGE_SIZE", "NUM_PIXELS", "NUM_CLASSES", "DIGIT_NAMES", "SPLITS", "Split", "Datasets", "to_float", "as_float",
    "concatenate", "cache", "folders", "idx", "rows", "splits", "IMAGE_EXTENSIONS", "load_image_dir",
    "DATASETS", "FASHION_MNIST_CLASS_NAMES", "FASHION_MNIST_MIRRORS", "FASHION_MNIST_SHA256",
    "FASHION_MNIST_SYSTEM_DIR", "FILES", "MNIST_MIRRORS", "MNIST_SHA256", "SHARED_MNIST_DIR", "VALIDATION_SIZE",
    "Source", "default_cache_dir", "download", "ensure_files", "file_names", "load", "load_split", "read_idx_gz",
    "resolve_data_dir", "source", "from_config",
]
