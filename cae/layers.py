"""TF1 layers from tf.compat.v1.get_variable + tf.nn, named exactly as tf.layers named them.

Each function opens ``variable_scope(name)`` and creates ``<name>/kernel`` and ``<name>/bias`` with tf.layers'
default initializers (Glorot-uniform kernel, zero bias), so checkpoints interoperate with TF1 ``tf.layers`` code.
Keras 3 removed ``tf.compat.v1.layers``; these few lines replace it.
"""

import tensorflow as tf

v1 = tf.compat.v1


def _variables(kernel_shape, bias_size):
    kernel = v1.get_variable("kernel", kernel_shape, initializer=v1.glorot_uniform_initializer())
    bias = v1.get_variable("bias", [bias_size], initializer=v1.zeros_initializer())
    return kernel, bias


def conv2d(inputs, filters, kernel_size, strides, name, activation=None, batch_norm=False, training=False):
    """Like tf.layers.conv2d with padding='SAME': kernel [k, k, in, filters]; with ``batch_norm``, followed (before
    the activation) by batch_normalization in the layer's scope, as TF1 code wrote ``tf.layers.conv2d`` then
    ``tf.layers.batch_normalization`` inside ``variable_scope(name)``."""
    with v1.variable_scope(name):
        in_channels = inputs.shape[-1]
        kernel, bias = _variables([kernel_size, kernel_size, in_channels, filters], filters)
        outputs = tf.nn.bias_add(tf.nn.conv2d(inputs, kernel, [1, strides, strides, 1], "SAME"), bias)
        if batch_norm:
            outputs = batch_normalization(outputs, training)
        return activation(outputs) if activation else outputs


BN_MOMENTUM, BN_EPSILON = 0.99, 1e-3  # tf.layers.batch_normalization's defaults


def moving_average_rate(momentum, num_updates):
    """How far a moving average moves towards a new value: ``1 - min(momentum, (1 + n) / (10 + n))`` after ``n``
    updates, tf.train.ExponentialMovingAverage's warm-up. Without it the initial moving variance (1) outlives
    short runs: after 300 steps at 0.99 it still holds 0.99^300 = 5% of that 1, fifty times the variance of a
    first conv on gray scans, and the test-time classifier collapses to one class."""
    n = tf.cast(num_updates, tf.float32)
    return 1.0 - tf.minimum(momentum, (1.0 + n) / (10.0 + n))


def batch_normalization(inputs, training, name="batch_normalization"):
    """Like tf.layers.batch_normalization over the last axis: ``<scope>/batch_normalization/gamma``, ``beta``,
    ``moving_mean``, ``moving_variance`` (the last two non-trainable, in MODEL_VARIABLES so a Saver of the model's
    variables carries them). ``training`` (a Python bool or a bool tensor) normalizes by the batch's moments and
    adds the moving averages' updates to UPDATE_OPS, to run with the train op, at a rate that warms up with the
    graph's global step (``moving_average_rate``; a training graph creates its global step before the model);
    otherwise by the moving averages, which then stay as they are."""
    with v1.variable_scope(name):
        channels = inputs.shape[-1]
        stats = [v1.GraphKeys.GLOBAL_VARIABLES, v1.GraphKeys.MODEL_VARIABLES]
        gamma = v1.get_variable("gamma", [channels], initializer=v1.ones_initializer())
        beta = v1.get_variable("beta", [channels], initializer=v1.zeros_initializer())
        moving_mean = v1.get_variable("moving_mean", [channels], initializer=v1.zeros_initializer(),
                                      trainable=False, collections=stats)
        moving_variance = v1.get_variable("moving_variance", [channels], initializer=v1.ones_initializer(),
                                          trainable=False, collections=stats)
        if training is False:
            return tf.nn.batch_normalization(inputs, moving_mean, moving_variance, beta, gamma, BN_EPSILON)
        global_step = v1.train.get_global_step()
        if global_step is None:
            raise ValueError("batch normalization in training mode warms its moving averages up by the global step: "
                             "create it (tf.compat.v1.train.get_or_create_global_step()) before the model")
        updates_so_far = tf.identity(global_step.read_value(), name="updates_so_far")
        with tf.control_dependencies([updates_so_far]):  # read before this step's increment: a step's rate is fixed
            mean, variance = tf.nn.moments(inputs, list(range(len(inputs.shape) - 1)))
        training = tf.convert_to_tensor(training)
        use_mean = tf.where(training, mean, moving_mean)
        use_variance = tf.where(training, variance, moving_variance)
        # a step out of training mode moves nothing: rate 0 (x - 0 * d == x exactly)
        rate = moving_average_rate(BN_MOMENTUM, updates_so_far) * tf.cast(training, tf.float32)
        for moving, batch in ((moving_mean, mean), (moving_variance, variance)):
            v1.add_to_collection(v1.GraphKeys.UPDATE_OPS, v1.assign_sub(moving, rate * (moving - batch)))
        return tf.nn.batch_normalization(inputs, use_mean, use_variance, beta, gamma, BN_EPSILON)


def conv2d_transpose(inputs, filters, kernel_size, strides, name, activation=None):
    """Like tf.layers.conv2d_transpose with padding='SAME': kernel [k, k, filters, in], output size * strides."""
    with v1.variable_scope(name):
        in_channels = inputs.shape[-1]
        kernel, bias = _variables([kernel_size, kernel_size, filters, in_channels], filters)
        height, width = inputs.shape[1] * strides, inputs.shape[2] * strides
        output_shape = tf.stack([tf.shape(inputs)[0], height, width, filters])
        outputs = tf.nn.conv2d_transpose(inputs, kernel, output_shape, [1, strides, strides, 1], "SAME")
        outputs = tf.nn.bias_add(tf.reshape(outputs, [-1, height, width, filters]), bias)
        return activation(outputs) if activation else outputs


def dense(inputs, units, name, activation=None):
    """Like tf.layers.dense on a rank-2 input: kernel [in, units]."""
    with v1.variable_scope(name):
        kernel, bias = _variables([inputs.shape[-1], units], units)
        outputs = tf.nn.bias_add(tf.matmul(inputs, kernel), bias)
        return activation(outputs) if activation else outputs


def flatten(inputs):
    return tf.reshape(inputs, [-1, int(inputs.shape[1:].num_elements())])
