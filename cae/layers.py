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


def conv2d(inputs, filters, kernel_size, strides, name, activation=None):
    """Like tf.layers.conv2d with padding='SAME': kernel [k, k, in, filters]."""
    with v1.variable_scope(name):
        in_channels = inputs.shape[-1]
        kernel, bias = _variables([kernel_size, kernel_size, in_channels, filters], filters)
        outputs = tf.nn.bias_add(tf.nn.conv2d(inputs, kernel, [1, strides, strides, 1], "SAME"), bias)
        return activation(outputs) if activation else outputs


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
