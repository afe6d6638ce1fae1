"""``labels.txt``: a classifier's class names, one a line in logit order, next to its checkpoints (as TF's
retrain.py writes ``output_labels.txt``), so export, predict and a reader know what each logit means."""

import os

from cae.errors import UserError

FILE = "labels.txt"


def path(directory):
    return os.path.join(directory, FILE)


def read(directory):
    """The class names stored in ``directory``, or None if it has no labels.txt."""
    try:
        with open(path(directory), encoding="utf-8") as f:
            return tuple(line.rstrip("\n") for line in f)
    except FileNotFoundError:
        return None


def write(directory, class_names):
    """Write through a temporary file, so a crash never leaves half a list."""
    tmp = path(directory) + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(f"{name}\n" for name in class_names)
    os.replace(tmp, path(directory))


def check_resume(train_dir, class_names):
    """A train_dir that already holds a classifier of other classes is not resumed with these (the logits would
    silently change meaning): UserError before anything is written."""
    stored = read(train_dir)
    if stored is not None and tuple(stored) != tuple(class_names):
        raise UserError(f"--train_dir={train_dir}: its {FILE} lists the classes {', '.join(stored)}, the data "
                        f"has {', '.join(class_names)}; use a new --train_dir for other classes")
