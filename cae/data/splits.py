"""Train/validation/test splitting and the ``--num_labels`` limit.

IDX files (MNIST, Fashion-MNIST) come with a train and a test file: validation is the last ``validation_size``
training images, so the test set is never used for model selection.

An image folder is split by a hash of each file's path, as TensorFlow's image retraining example (retrain.py)
does: the sha1 of the path relative to the image folder (posix separators) picks a stable percentage in
[0, 100], so adding images to the folder never moves an old image to another split, and a run is reproducible
without storing a list. Within each split the images are ordered by the same hash: a fixed order that mixes the
classes, so ``--num_labels=N`` (the first N) still holds several classes.

Folds (``--fold``) turn the percentages round the circle for cross-validation: fold F moves every image's
percentage back by F * testing_percentage (modulo 100), so fold F tests the images in [v + F*t, v + (F+1)*t) and
validates on [F*t, F*t + v) (v, t: the validation and testing percentages). Folds 0 ... 100 // t - 1 have
disjoint test sets; at t = 100 / K the K folds test every image exactly once. Fold 0 is the plain split.
"""

import hashlib

import numpy as np

from cae.data import SPLITS, Split
from cae.errors import UserError

# retrain.py's constant: the hash is taken modulo 2**27 and scaled to a percentage.
MAX_NUM_IMAGES_PER_CLASS = 2 ** 27 - 1


def hold_out_last(split, validation_size):
    """(train, validation): the last ``validation_size`` images become the validation split."""
    if not 0 <= validation_size < len(split.labels):
        raise UserError(f"validation size {validation_size} must be in [0, {len(split.labels)})")
    cut = len(split.labels) - validation_size
    return Split(split.images[:cut], split.labels[:cut]), Split(split.images[cut:], split.labels[cut:])


def limit(split, num_labels, limit_flag="num_labels"):
    """The first ``num_labels`` images of ``split`` (all of them when None); ``limit_flag`` names the flag."""
    if num_labels is None:
        return split
    check_limit(num_labels, len(split.labels), limit_flag)
    return Split(split.images[:num_labels], split.labels[:num_labels])


def per_class(split, count, class_names, order=None, flag="labels_per_class"):
    """The first ``count`` images of each class of ``split`` in ``order`` (default: the split's own), kept in that
    order; UserError naming ``flag`` and the class when one has fewer."""
    order = np.arange(len(split.labels)) if order is None else np.asarray(order)
    labels = split.labels[order]
    chosen = np.zeros(len(order), bool)
    for label, name in enumerate(class_names):
        where = np.flatnonzero(labels == label)
        if len(where) < count:
            raise UserError(f"--{flag}={count}: class {name!r} has only {len(where)} training images")
        chosen[where[:count]] = True
    rows = order[chosen]
    return Split(split.images[rows], split.labels[rows])


def check_limit(num_labels, available, limit_flag="num_labels"):
    if not 0 < num_labels <= available:
        raise UserError(f"--{limit_flag}={num_labels}: expected 1 to {available}")


def path_hash(relative_path):
    """sha1 hex digest of a path relative to the image folder, with '/' separators on every system."""
    return hashlib.sha1(relative_path.replace("\\", "/").encode("utf-8")).hexdigest()


def percentage(digest):
    """retrain.py's percentage in [0, 100] for a path's sha1 hex digest."""
    return (int(digest, 16) % (MAX_NUM_IMAGES_PER_CLASS + 1)) * (100.0 / MAX_NUM_IMAGES_PER_CLASS)


def folds(testing_percentage):
    """How many folds have disjoint test sets at ``testing_percentage``."""
    return 100 // testing_percentage


def split_of(relative_path, validation_percentage, testing_percentage, fold=0):
    """'validation', 'test' or 'train' for one image; depends on nothing but its path, the two percentages and the
    fold."""
    return _split_name(percentage(path_hash(relative_path)), validation_percentage, testing_percentage, fold)


def hash_split(relative_paths, validation_percentage, testing_percentage, fold=0):
    """{'train', 'validation', 'test'} -> int64 indices into ``relative_paths``, each in hash order."""
    digests = [path_hash(p) for p in relative_paths]
    order = sorted(range(len(relative_paths)), key=lambda i: (digests[i], relative_paths[i]))
    chosen = {name: [] for name in SPLITS}
    for i in order:
        chosen[_split_name(percentage(digests[i]), validation_percentage, testing_percentage, fold)].append(i)
    return {name: np.asarray(indices, dtype=np.int64) for name, indices in chosen.items()}


def _split_name(value, validation_percentage, testing_percentage, fold=0):
    if fold:  # (fold 0 keeps retrain.py's split exactly, 100.0 included)
        value = (value - fold * testing_percentage) % 100
    if value < validation_percentage:
        return "validation"
    if value < validation_percentage + testing_percentage:
        return "test"
    return "train"
