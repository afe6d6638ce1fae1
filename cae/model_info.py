"""What a classifier's inputs and outputs mean, in two small files next to its checkpoints (and in a SavedModel's
assets/): ``labels.txt``, the class names one a line in logit order (as TF's retrain.py writes
``output_labels.txt``), and ``input.json``, the image shape and how images were made (``idx``: MNIST-format files;
``image_dir``: decoded from a folder, cae.data.folders). Export and predict read them so a model is used the way
it was trained; a run without them (an older one) is taken as MNIST-format with classes "0", "1", ...
"""

import json
import os
from typing import NamedTuple, Tuple

from cae.errors import UserError

LABELS_FILE = "labels.txt"
INPUT_FILE = "input.json"
SOURCES = ("idx", "image_dir")


class InputSpec(NamedTuple):
    image_shape: Tuple[int, int, int]  # height, width, channels
    source: str  # "idx" or "image_dir"


def spec_of(datasets, image_dir=None):
    """The InputSpec of a run on ``datasets`` (a folder's when ``image_dir`` is given)."""
    return InputSpec(tuple(datasets.image_shape), "image_dir" if image_dir else "idx")


def _write_text(path, text):
    """Through a temporary file, so a crash never leaves half a file."""
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def write(directory, class_names, spec):
    _write_text(os.path.join(directory, LABELS_FILE), "".join(f"{name}\n" for name in class_names))
    _write_text(os.path.join(directory, INPUT_FILE), json.dumps(
        {"image_shape": list(spec.image_shape), "source": spec.source}, indent=2) + "\n")


def read_class_names(directory):
    """The class names stored in ``directory``, or None if it has no labels.txt."""
    try:
        with open(os.path.join(directory, LABELS_FILE), encoding="utf-8") as f:
            return tuple(line.rstrip("\n") for line in f)
    except FileNotFoundError:
        return None


def read(directory, image_shape, num_classes):
    """(class names, InputSpec) stored in ``directory`` for a classifier of ``image_shape`` images and
    ``num_classes`` classes (as its checkpoint says, models.classifier_geometry)."""
    names = read_class_names(directory) or tuple(str(i) for i in range(num_classes))
    if len(names) != num_classes:
        raise UserError(f"{os.path.join(directory, LABELS_FILE)}: {len(names)} class names for a classifier of "
                        f"{num_classes} classes")
    try:
        with open(os.path.join(directory, INPUT_FILE), encoding="utf-8") as f:
            stored = json.load(f)
        spec = InputSpec(tuple(stored["image_shape"]), stored["source"])
    except FileNotFoundError:
        spec = InputSpec(tuple(image_shape), "idx")
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{os.path.join(directory, INPUT_FILE)}: unreadable ({e})") from None
    if spec.image_shape != tuple(image_shape) or spec.source not in SOURCES:
        raise UserError(f"{os.path.join(directory, INPUT_FILE)}: says {list(spec.image_shape)} images from "
                        f"{spec.source}, the checkpoint's classifier takes {list(image_shape)}")
    return names, spec


def check_resume(train_dir, class_names):
    """A train_dir that already holds a classifier of other classes is not resumed with these (the logits would
    silently change meaning): UserError before anything is written."""
    stored = read_class_names(train_dir)
    if stored is not None and tuple(stored) != tuple(class_names):
        raise UserError(f"--train_dir={train_dir}: its {LABELS_FILE} lists the classes {', '.join(stored)}, the "
                        f"data has {', '.join(class_names)}; use a new --train_dir for other classes")
