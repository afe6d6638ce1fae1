"""What a classifier's inputs and outputs mean, in two small files next to its checkpoints (and in a SavedModel's
assets/): ``labels.txt``, the class names one a line in logit order (as TF's retrain.py writes
``output_labels.txt``), and ``input.json``, the image shape and how images were made (``idx``: MNIST-format files;
``image_dir``: decoded from a folder, cae.data.folders). Export and predict read them so a model is used the way
it was trained; a run without them (an older one) is taken as MNIST-format with classes "0", "1", ...
A two-class run with --target_recall adds ``decision.json``, its operating point: which class is flagged from
what probability on (export builds it into the SavedModel's ``classes``).
"""

import json
import os
from typing import NamedTuple, Tuple

from cae.errors import UserError

LABELS_FILE = "labels.txt"
INPUT_FILE = "input.json"
DECISION_FILE = "decision.json"  # an operating point (--target_recall): which class is flagged from what probability
SOURCES = ("idx", "image_dir")


class Decision(NamedTuple):
    class_name: str  # the class flagged ...
    threshold: float  # ... where its probability is at least this (else the other class)
    target_recall: float  # the share of it the threshold found on the validation split


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


def write_decision(directory, decision):
    """decision.json for a Decision; None removes an earlier run's (its threshold belonged to other weights)."""
    path = os.path.join(directory, DECISION_FILE)
    if decision is None:
        if os.path.exists(path):
            os.remove(path)
        return
    _write_text(path, json.dumps({"class": decision.class_name, "threshold": decision.threshold,
                                  "target_recall": decision.target_recall}, indent=2) + "\n")


def read_decision(directory, class_names):
    """The Decision stored in ``directory`` for a classifier of ``class_names``, or None (the more probable class
    wins)."""
    path = os.path.join(directory, DECISION_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            stored = json.load(f)
        decision = Decision(str(stored["class"]), float(stored["threshold"]), float(stored["target_recall"]))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path}: unreadable ({e})") from None
    if len(class_names) != 2 or decision.class_name not in class_names or not 0 <= decision.threshold <= 1:
        raise UserError(f"{path}: flags {decision.class_name!r} from probability {decision.threshold:g}; expected "
                        f"one of the two classes {', '.join(class_names)} and a probability in [0, 1]")
    return decision


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
