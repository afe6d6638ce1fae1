"""Rows that stay on disk, read a batch at a time: a folder's decoded uint8 pixels, or cached float32 features.

A ``RowFile`` is a file of fixed-size rows (one decoded image each, row-major HWC; or one image's features) and the
slots of the rows it stands for. Indexing it with a slice, an index array or a mask gives another RowFile over the
same file (a split, a --num_labels subset, a class's images: nothing is read); ``np.asarray`` on it reads its rows,
in order, as a uint8 array [N, H*W*C]. The training pipeline and evaluation read only the batch they need, so memory
is set by the batch, not by the folder: 150,000 images of 64x64x3 are 7.4 GB as float32 and 1.8 GB as uint8, and
neither is ever in memory here.


Rows are read with ``os.preadv``, not through a memory map: the pages of a map that were touched count in the
process's resident set until the kernel reclaims them, so an epoch over a mapped folder would look (and, to a
memory limit, be) as large as the folder; read pages stay in the kernel's page cache, which it frees under load.
"""

import os

import numpy as np


class _File:
    """One open file descriptor, shared by every view of the file and closed with the last of them (``fd``: one
    already open, such as an unlinked file's, which then goes with it)."""

    def __init__(self, path, fd=None):
        self.path = path
        self.fd = os.open(path, os.O_RDONLY) if fd is None else fd
        self.size = os.fstat(self.fd).st_size

    def __del__(self):
        fd = getattr(self, "fd", None)
        if fd is not None:
            os.close(fd)


class RowFile:
    """Rows ``slots`` of the file ``path`` whose rows hold ``image_shape`` (H, W, C) values of ``dtype`` each (see
    the module), read as flat rows (``flat``, as images are fed) or in that shape; ``fd``: the file is already
    open."""

    def __init__(self, path, image_shape, slots=None, dtype=np.uint8, fd=None, flat=True, _file=None):
        self._file = _file or _File(path, fd)
        self.image_shape = tuple(int(d) for d in image_shape)
        self.dtype = np.dtype(dtype)
        self.row_size = int(np.prod(self.image_shape))
        self.row_bytes = self.row_size * self.dtype.itemsize
        self.flat = flat
        self.num_slots = self._file.size // self.row_bytes
        if self._file.size != self.num_slots * self.row_bytes:
            raise ValueError(f"{path}: {self._file.size} bytes is not a whole number of {self.row_bytes}-byte rows")
        self.slots = np.arange(self.num_slots, dtype=np.int64) if slots is None else np.asarray(slots, np.int64)
        if len(self.slots) and not (0 <= self.slots.min() and self.slots.max() < self.num_slots):
            raise ValueError(f"{path}: a row beyond its {self.num_slots} rows")

    @property
    def path(self):
        return self._file.path

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def shape(self):
        return (len(self.slots),) + ((self.row_size,) if self.flat else self.image_shape)

    def __len__(self):
        return len(self.slots)

    def __getitem__(self, key):
        """A view over the chosen rows (a slice, an index array, a boolean mask); an int reads that one row."""
        if isinstance(key, tuple):  # rows first, then the rest as numpy indexes an array: images[:, 0]
            return np.asarray(self[key[0]])[(slice(None),) + key[1:]]
        if isinstance(key, (int, np.integer)):
            return self.read(self.slots[[key]])[0]
        return RowFile(self.path, self.image_shape, self.slots[key], self.dtype, flat=self.flat, _file=self._file)

    def __array__(self, dtype=None, copy=None):
        rows = self.read(self.slots)
        return rows if dtype is None else rows.astype(dtype)

    def read(self, slots):
        """[len(slots), H*W*C] of ``dtype``: the rows at file slots ``slots``, in that order."""
        out = np.empty((len(slots), self.row_size), self.dtype)
        fd, size = self._file.fd, self.row_bytes
        for row, slot in zip(out.view(np.uint8), slots.tolist()):
            if os.preadv(fd, [row], slot * size) != size:
                raise OSError(f"{self.path}: short read at row {slot}")
        return out.reshape((len(slots),) + self.shape[1:])

