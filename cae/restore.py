"""Which variables to restore and which to train, chosen by whole-scope regex, as in TF-Slim.

``"conv1" in v.name`` also matches ``dconv1/kernel`` and ``conv1/kernel/Adam_1``; here a scope list becomes one
compiled regex anchored at the start of the variable name and ended by ``/``, and it is applied only to the
model's own variables, never to optimizer slots, ``global_step`` or Adam's ``beta*_power``.
"""

import os
import re

import tensorflow as tf
from absl import logging

from cae.errors import UserError

v1 = tf.compat.v1


def parse_scopes(text):
    """'conv1, conv2' -> ['conv1', 'conv2'] (empty entries dropped)."""
    return [s.strip() for s in text.split(",") if s.strip()] if isinstance(text, str) else list(text)


def scope_regex(scopes, flag="scopes"):
    """One regex that matches a variable name lying under any of the scopes, as whole path components."""
    scopes = parse_scopes(scopes)
    for scope in scopes:
        try:
            re.compile(scope)
        except re.error as e:
            raise UserError(f"--{flag}: {scope!r} is not a valid regular expression ({e})") from None
    return re.compile("^(?:" + "|".join(f"(?:{s})" for s in scopes) + ")/") if scopes else re.compile("(?!)")


def select(variables, scopes, flag="scopes"):
    """The variables whose name lies under one of the scopes; UserError if a scope matches nothing."""
    pattern = scope_regex(scopes, flag)
    chosen = [v for v in variables if pattern.match(v.op.name)]
    for scope in parse_scopes(scopes):
        if not any(re.match(f"^(?:{scope})/", v.op.name) for v in variables):
            names = ", ".join(v.op.name for v in variables)
            raise UserError(f"--{flag}: scope {scope!r} matches no variable of the model (it has: {names})")
    return chosen


def resolve_checkpoint(path, flag="checkpoint_path", warn=True):
    """A checkpoint prefix as given, or the latest checkpoint of a directory (``warn``: say so where a copied
    directory's state file points outside it; a run that resolves the same path again says it once)."""
    if os.path.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest is None:
            raise UserError(f"--{flag}={path}: directory holds no checkpoint (no 'checkpoint' state file "
                            f"naming a model.ckpt-N)")
        if warn and os.path.dirname(os.path.abspath(latest)) != os.path.abspath(path):
            # A directory copied from elsewhere keeps a state file with the original's absolute paths.
            logging.warning("--%s=%s: its 'checkpoint' file points at %s, outside the directory; restoring that "
                            "one (pass a checkpoint prefix to choose)", flag, path, latest)
        return latest
    if not os.path.exists(path + ".index"):
        raise UserError(f"--{flag}={path}: no such checkpoint (expected {path}.index and {path}.data-*, "
                        f"or a directory with a 'checkpoint' file)")
    return path


def _first_line(error):
    return (getattr(error, "message", None) or str(error)).strip().splitlines()[0]


def checkpoint_reader(checkpoint):
    """A CheckpointReader (names, shapes, dtypes, values); UserError naming the checkpoint if it is unreadable."""
    try:
        return tf.train.load_checkpoint(checkpoint)
    except (tf.errors.OpError, ValueError) as e:
        raise UserError(f"{checkpoint}: cannot read checkpoint ({_first_line(e)})") from None


def checkpoint_shapes(checkpoint):
    """{variable name: shape} as stored in a checkpoint."""
    return {name: tuple(shape) for name, shape in checkpoint_reader(checkpoint).get_variable_to_shape_map().items()}


def by_name(variables):
    """{name in a checkpoint: variable}: each variable under its own name, or a mapping as given."""
    return dict(variables) if isinstance(variables, dict) else {v.op.name: v for v in variables}


def check_compatible(checkpoint, variables):
    """Every variable must be in the checkpoint with the same shape, and its stored values readable.

    ``variables``: a list (each read under its own name) or {name in the checkpoint: variable}. Resource variables
    would otherwise load a tensor of the wrong shape without complaint. Reading each value (its crc32c is
    checked) finds a missing, truncated or overwritten .data file before anything is restored.
    """
    reader = checkpoint_reader(checkpoint)
    stored = {name: tuple(shape) for name, shape in reader.get_variable_to_shape_map().items()}
    problems = []
    for name, v in by_name(variables).items():
        shape = tuple(v.shape.as_list())
        if name not in stored:
            problems.append(f"{name} missing")
        elif stored[name] != shape:
            problems.append(f"{name} has shape {list(stored[name])} in the checkpoint, "
                            f"{list(shape)} in the model")
    if problems:
        raise UserError(f"{checkpoint}: cannot restore: {'; '.join(problems)}")
    for name in by_name(variables):
        try:
            reader.get_tensor(name)
        except (tf.errors.OpError, ValueError, RuntimeError, IndexError) as e:  # a short file: IndexError
            raise UserError(f"{checkpoint}: cannot read {name} from its .data file "
                            f"({_first_line(e)})") from None


def check_input_channels(checkpoint, variables, flag="color_mode"):
    """conv1's kernel [5, 5, C, 16] takes C-channel images: a gray checkpoint cannot restore into a model of colour
    images (or back). UserError naming both shapes and the flag that fixes it."""
    stored = checkpoint_shapes(checkpoint).get("conv1/kernel")
    kernel = next((v for v in variables if v.op.name == "conv1/kernel"), None)
    if stored is None or kernel is None or stored[2] == kernel.shape[2]:
        return
    fix = {1: "grayscale", 3: "rgb"}.get(stored[2])
    hint = (f"pass --{flag}={fix} to train on {fix} versions of the images" if fix else
            f"pretrain on images with {kernel.shape[2]} channels")
    raise UserError(f"{checkpoint}: cannot restore conv1/kernel: {list(stored)} in the checkpoint "
                    f"({stored[2]}-channel images), {kernel.shape.as_list()} in the model ({kernel.shape[2]}-channel "
                    f"images); {hint}")


def restore_saver(variables):
    """A Saver for exactly these variables, keyed by name so it reads them from any graph's checkpoint (a list:
    their own names; or {name in the checkpoint: variable})."""
    return v1.train.Saver(var_list=by_name(variables), name="restore_saver")


def report_lines(restored, model_variables, checkpoint, trained=None, restored_lr_multiplier=1.0,
                 restored_warmup_steps=0):
    """Lines for the restore report: each restored variable with its shape and source, then the rest; with
    ``trained``, each line also says whether the variable is frozen or trained, at which rate and from which
    step."""
    restored_names = {v.op.name for v in restored}
    trained_names = None if trained is None else {v.op.name for v in trained}

    def training(v):
        if trained_names is None:
            return ""
        if v.op.name not in trained_names:
            scope, _, name = v.op.name.rpartition("/")
            # batch norm's averages follow the batches of a trained layer (UPDATE_OPS), not the optimizer
            moving = name in ("moving_mean", "moving_variance") and f"{scope}/gamma" in trained_names
            return "  updated: moving average of the training batches" if moving else "  frozen"
        if v.op.name not in restored_names:
            return "  trained"
        rate = f" at learning_rate x {restored_lr_multiplier:g}" if restored_lr_multiplier != 1.0 else ""
        start = f" from step {restored_warmup_steps}" if restored_warmup_steps else ""
        return f"  trained{rate}{start}"
    lines = [f"restored  {v.op.name:<16} {str(v.shape.as_list()):<18} from {checkpoint}{training(v)}"
             for v in restored]
    lines += [f"initial   {v.op.name:<16} {str(v.shape.as_list()):<18} (initializer){training(v)}"
              for v in model_variables if v.op.name not in restored_names]
    return lines
