"""The train op over the trained variables, with restored ones optionally at a smaller learning rate.

Fine-tuning keeps the pretrained layers near their restored values by training them at
``learning_rate * restored_lr_multiplier``. Adam is invariant to scaling a gradient, so scaling gradients would
change nothing: the restored variables get their own Adam optimizer (slots ``<var>/Adam_restored``) instead.
With a warm-up that rate is 0 for the first steps, so the new layers first learn on the restored features as they
are (a linear probe, then fine-tuning: random new layers' first gradients would otherwise reshape the restored ones).
"""

import tensorflow as tf

v1 = tf.compat.v1

RESTORED_OPTIMIZER_NAME = "Adam_restored"


def train_op(loss, trained, restored, learning_rate, restored_lr_multiplier, global_step, towers=None, replicas=None,
             restored_warmup_steps=0):
    """One op that takes one step on every trained variable and increments global_step once, and runs the
    graph's UPDATE_OPS (batch normalization's moving averages of the layers in training mode).

    ``towers`` (cae.clones.Towers) of more than one clone replace ``loss``'s gradients by the clones' average,
    and the UPDATE_OPS by clone 0's. ``replicas`` (cae.distributed.SyncReplicas) average those gradients over the
    workers of a cluster before the same optimizer applies them; the op is then this task's synchronous step (the
    chief's alone applies, and runs the UPDATE_OPS). The restored variables stand still (rate 0) while global_step
    is below ``restored_warmup_steps``.

    Returns (op, {variable name: its learning-rate tensor}).
    """
    towers = towers if towers is not None and len(towers.clones) > 1 else None
    gradients = towers.gradients if towers else None
    if replicas is not None:
        gradients = replicas.gradients_of(gradients or (lambda variables: tf.gradients(loss, variables)))
    op, rates = _train_op(loss, trained, restored, learning_rate, restored_lr_multiplier, global_step, gradients,
                          restored_warmup_steps)
    updates = towers.update_ops if towers else v1.get_collection(v1.GraphKeys.UPDATE_OPS)
    op = tf.group(op, *updates, name="train_and_update_moving_averages") if updates else op
    return (replicas.train_op(op) if replicas is not None else op), rates


def _train_op(loss, trained, restored, learning_rate, restored_lr_multiplier, global_step, gradients_of=None,
              restored_warmup_steps=0):
    restored_names = {v.op.name for v in restored}
    own_rate = restored_lr_multiplier != 1.0 or restored_warmup_steps > 0
    slow = [v for v in trained if v.op.name in restored_names] if own_rate else []
    fast = [v for v in trained if v.op.name not in {s.op.name for s in slow}]
    rates = {v.op.name: learning_rate for v in fast}
    if not slow and gradients_of is None:
        op = v1.train.AdamOptimizer(learning_rate).minimize(loss, var_list=fast, global_step=global_step)
        return op, rates
    if not slow:
        op = v1.train.AdamOptimizer(learning_rate).apply_gradients(list(zip(gradients_of(fast), fast)),
                                                                   global_step=global_step)
        return op, rates
    slow_rate = tf.multiply(learning_rate, restored_lr_multiplier)
    if restored_warmup_steps:
        slow_rate = tf.where(global_step < restored_warmup_steps, tf.zeros_like(slow_rate), slow_rate)
    slow_rate = tf.identity(slow_rate, name="restored_learning_rate")
    rates.update({v.op.name: slow_rate for v in slow})
    gradients = gradients_of(fast + slow) if gradients_of else tf.gradients(loss, fast + slow)
    apply_slow = v1.train.AdamOptimizer(slow_rate, name=RESTORED_OPTIMIZER_NAME).apply_gradients(
        list(zip(gradients[len(fast):], slow)))
    if not fast:
        with tf.control_dependencies([apply_slow]):
            return v1.assign_add(global_step, 1).op, rates
    apply_fast = v1.train.AdamOptimizer(learning_rate).apply_gradients(
        list(zip(gradients[:len(fast)], fast)), global_step=global_step)
    return tf.group(apply_fast, apply_slow, name="train_op"), rates
