"""Several devices in one process: --num_clones towers of one model, as TF-Slim's model_deploy builds them.

Every training batch is split over ``num_clones`` towers ("clones"), clone i on /device:GPU:i (or /device:CPU:i
with --clone_on_cpu) under the name scope ``clone_i``. The variables are created once, by clone 0, and shared by
variable-scope reuse; they live on /device:CPU:0, the device every tower reads (model_deploy's variables_device),
and keep their one-device names (a name scope never renames a get_variable), so checkpoints are the same. Each
clone computes the gradients of its own loss on its own device; they are averaged, each weighted by its clone's
share of the batch (an even split: tf.add_n / N), and the optimizer applies them once, as with one device.
Batch normalization's moving-average updates come from clone 0 only, as in model_deploy.

With one clone nothing of this exists: the model is built as it always was, without a scope or a device.

The CPU devices are the Session's own (ConfigProto.device_count, see cae.session): a tf.compat.v1.Session given
its own ConfigProto does not see the logical devices of tf.config.set_logical_device_configuration.
"""

from typing import Callable, NamedTuple

import tensorflow as tf

from cae.errors import UserError

v1 = tf.compat.v1

VARIABLES_DEVICE = "/device:CPU:0"
# The ops that hold a variable's state: placed on VARIABLES_DEVICE, whichever clone's device they are built under.
VARIABLE_OPS = ("Variable", "VariableV2", "VarHandleOp")


class Clone(NamedTuple):
    outputs: object  # what the model function returned for this clone
    loss: tf.Tensor  # the scalar this clone minimizes
    share: object  # its fraction of the batch: a float32 scalar (1.0 with one clone)
    scope: str  # its name scope, "clone_i/"
    device: str


class Towers(NamedTuple):
    """The clones of a model, and what the optimizer needs of them."""
    clones: list
    total_loss: tf.Tensor  # the batch's loss: the clones' losses weighted by their shares
    update_ops: list  # clone 0's UPDATE_OPS
    gradients: Callable  # gradients(variables) -> their averaged gradients (None where no clone's loss needs one)


def clone_device(index, clone_on_cpu):
    return f"/device:{'CPU' if clone_on_cpu else 'GPU'}:{index}"


def check(num_clones, clone_on_cpu, batch_size, gpus=None):
    """UserError where --num_clones cannot run: more clones than GPUs (without --clone_on_cpu), or a batch that
    does not split evenly. ``gpus``: how many this machine has (default: TensorFlow's count)."""
    if num_clones == 1:
        return
    if not clone_on_cpu:
        gpus = len(tf.config.list_physical_devices("GPU")) if gpus is None else gpus
        if num_clones > gpus:
            raise UserError(f"--num_clones={num_clones}: expected at most {gpus}, the GPUs this machine has "
                            f"(--clone_on_cpu places the clones on CPU devices instead)")
    if batch_size % num_clones:
        raise UserError(f"--batch_size={batch_size} with --num_clones={num_clones}: expected a batch size divisible "
                        f"by the number of clones (each clone takes an equal part of every batch)")


def split(tensors, num_clones):
    """The batch ``tensors`` (each [N, ...], same N) cut into ``num_clones`` parts: (each clone's list of parts,
    each clone's share of the batch as a float32 scalar). The parts are as even as N allows (the first clones take
    one more where N does not divide: an epoch's last batch may be smaller); a clone left without an image (a
    batch smaller than num_clones) gets the batch's last one at share 0, as a convolution over no image fails."""
    count = tf.shape(tensors[0])[0]
    parts, shares, start = [], [], 0
    for index in range(num_clones):
        size = (count + num_clones - 1 - index) // num_clones
        rows = tf.minimum(tf.range(start, start + tf.maximum(size, 1)), count - 1)
        parts.append([tf.gather(t, rows, name=f"clone_{index}_part") for t in tensors])
        shares.append(tf.cast(size, tf.float32) / tf.cast(count, tf.float32))
        start = start + size
    return parts, shares


def _placer(device):
    """A device function: variables on VARIABLES_DEVICE, every other op on the clone's ``device``."""
    return lambda op: VARIABLES_DEVICE if op.type in VARIABLE_OPS else device


def deploy(num_clones, clone_on_cpu, model_fn, shards, shares=None):
    """Build ``model_fn(index, *inputs) -> (outputs, loss)`` once per clone on its part of the batch: ``shards``
    holds each clone's inputs (clone 0's first) and ``shares`` their fractions of the batch (see split). With one
    clone: ``model_fn(0, *shards[0])``, as it was before clones existed."""
    if num_clones == 1:
        outputs, loss = model_fn(0, *shards[0])
        return Towers([Clone(outputs, loss, 1.0, "", "")], loss, None, None)
    clones = []
    for index in range(num_clones):
        device = clone_device(index, clone_on_cpu)
        # reuse first, then the name scope: entering the root variable scope again would reset the name scope
        with v1.variable_scope(v1.get_variable_scope(), reuse=True if index else None), \
                v1.name_scope(f"clone_{index}") as scope, v1.device(_placer(device)):
            outputs, loss = model_fn(index, *shards[index])
            clones.append(Clone(outputs, loss, shares[index], scope, device))
    with v1.name_scope("clone_loss"):
        total_loss = tf.add_n([c.loss * c.share for c in clones], name="total_loss")
    update_ops = v1.get_collection(v1.GraphKeys.UPDATE_OPS, clones[0].scope)
    return Towers(clones, total_loss, update_ops, lambda variables: average_gradients(clones, variables))


def average_gradients(clones, variables):
    """Each clone's gradients of its share of the loss on its own device, summed where the variables live."""
    per_clone = []
    for clone in clones:
        with v1.name_scope(clone.scope), v1.device(clone.device):
            per_clone.append(tf.gradients(clone.loss * clone.share, variables))
    averaged = []
    with v1.name_scope("clone_gradients"), v1.device(VARIABLES_DEVICE):
        for variable, grads in zip(variables, zip(*per_clone)):
            grads = [g for g in grads if g is not None]
            averaged.append(tf.add_n(grads, name=variable.op.name.replace("/", "_")) if grads else None)
    return averaged


def session_cpu_devices(num_clones, clone_on_cpu):
    """How many CPU devices the Session needs (ConfigProto.device_count["CPU"])."""
    return num_clones if clone_on_cpu and num_clones > 1 else 1

