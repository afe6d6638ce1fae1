"""The --train_dir, where a user's work lives: checked before anything is written, claimed by one run at a time,
then opened for event files.

A run validates its flags, data and checkpoints first and only then creates the directory and its events file,
so a bad input leaves an existing train_dir exactly as it was.
"""

import contextlib
import json
import os

import tensorflow as tf
from absl import logging

from cae import restore
from cae.errors import UserError

try:
    import fcntl
except ImportError:  # not on Windows: runs there are not locked
    fcntl = None

v1 = tf.compat.v1


BEST_DIR = "best"  # early stopping's best-validation weights: the ones its run tests (cae.transfer)
SPLIT_FILE = "split.json"  # how a folder's run split its images, so that a resume keeps the split
SPLIT_FLAGS = ("validation_percentage", "testing_percentage", "fold")


def split_of(cfg):
    """The split flags of a run on a folder (--image_dir), None for a built-in dataset (its test file is fixed)."""
    if not getattr(cfg, "image_dir", None):
        return None
    return {flag: getattr(cfg, flag) for flag in SPLIT_FLAGS}


def _flags(split):
    if not isinstance(split, dict):
        return "a built-in dataset's split"
    return " ".join(f"--{flag}={split[flag]}" for flag in SPLIT_FLAGS if flag in split)


def check_split(train_dir, split):
    """A train_dir whose run split its images otherwise is not resumed with ``split`` (split_of): its checkpoint
    has trained on images this split tests (another --fold, say), so its test figures would be false. UserError
    before anything is written; a train_dir without split.json (new, or older than it) passes."""
    path = os.path.join(train_dir, SPLIT_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            stored = json.load(f)
    except FileNotFoundError:
        return
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: unreadable ({e})") from None
    if stored != split:
        raise UserError(f"--train_dir={train_dir}: its run was split at {_flags(stored)}, this one asks "
                        f"{_flags(split)}; resumed, it would test on images it trained on: use a new --train_dir")


def check_writable(train_dir):
    """UserError unless train_dir is, or can be created as, a writable directory. Creates nothing."""
    if os.path.exists(train_dir) and not os.path.isdir(train_dir):
        raise UserError(f"--train_dir={train_dir}: exists and is not a directory")
    existing = os.path.abspath(train_dir)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UserError(f"--train_dir={train_dir}: cannot be created, {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"--train_dir={train_dir}: {existing} is not writable")


@contextlib.contextmanager
def claim(train_dir):
    """Create train_dir and hold an exclusive lock on it while the run writes there.

    A second run on the same train_dir stops with a UserError before it writes anything, instead of interleaving
    its checkpoints, events and metrics with ours. The lock is flock(2) on the directory itself: no lock file is
    left behind, and the kernel drops it when the process ends, even by SIGKILL, so a lock is never stale.
    """
    try:
        os.makedirs(train_dir, exist_ok=True)
    except OSError as e:
        raise UserError(f"--train_dir={train_dir}: cannot create it ({e.strerror})") from None
    if fcntl is None:  # Windows: no flock, and a directory cannot be opened there
        yield
        return
    descriptor = os.open(train_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"--train_dir={train_dir}: another run is writing to it; wait for that run to end "
                            f"or pick another --train_dir") from None
        except OSError as e:  # a filesystem without flock (some network mounts): run, but say so
            logging.warning("--train_dir=%s: cannot lock it (%s); make sure no other run writes to it",
                            train_dir, e.strerror)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def event_writer(train_dir, graph, first_step):
    """A FileWriter for the (claimed, so existing) train_dir; on resume, mark the restart for TensorBoard.

    Steps after the restored checkpoint that a killed run had already logged are run again; the SessionLog START
    event at ``first_step + 1`` tells TensorBoard to drop those orphans, so every tag keeps one value per step.
    """
    with graph.as_default():  # FileWriter refuses to start outside a graph context
        # The pid keeps a restart within the same second from reusing (truncating) the killed run's events file.
        writer = v1.summary.FileWriter(train_dir, graph, filename_suffix=f".{os.getpid()}")
    if first_step:
        writer.add_session_log(v1.SessionLog(status=v1.SessionLog.START), first_step + 1)
    return writer


def tested_checkpoint(path, flag):
    """The checkpoint a classifier's run tested, which its metrics.json describes: in a train_dir that kept the
    best validation's weights (``<train_dir>/best/``, with --patience) the latest there, else as
    restore.resolve_checkpoint resolves ``path`` (a prefix, or a directory's latest)."""
    best = os.path.join(path, BEST_DIR)
    if os.path.isdir(path) and tf.train.latest_checkpoint(best):
        checkpoint = restore.resolve_checkpoint(best, flag)
        logging.info("--%s=%s: the best validation's weights, %s, as its run tested them (pass a checkpoint "
                     "prefix for another)", flag, path, checkpoint)
        return checkpoint
    return restore.resolve_checkpoint(path, flag)
