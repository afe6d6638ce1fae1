"""What a checkpoint holds, and what a model graph would take from it."""

import math

import tensorflow as tf

from cae import models, restore, train_dir
from cae.config import filters_of

v1 = tf.compat.v1

GRAPHS = ("classifier", "autoencoder")


def stored_variables(checkpoint):
    """{name: (dtype name, shape list)} of every variable in the checkpoint."""
    reader = restore.checkpoint_reader(checkpoint)
    dtypes = reader.get_variable_to_dtype_map()
    return {name: (dtypes[name].name, list(shape)) for name, shape in reader.get_variable_to_shape_map().items()}


def stored_image_shape(shapes, filters):
    """The image shape a checkpoint's model was built for (channels from conv1, the side from the flattened code
    fc1 or z_matrix holds), else MNIST's."""
    flat = shapes.get("fc1/kernel", [None])[0] or shapes.get("z_matrix/kernel", [None, None])[1]
    if "conv1/kernel" not in shapes or not flat:
        return models.MNIST_SHAPE
    side = models.stride(filters) * math.isqrt(flat // filters[-1])
    return side, side, shapes["conv1/kernel"][2]


def model_variables(against, latent_size=20, filters=models.ENCODER_FILTERS, image_shape=models.MNIST_SHAPE,
                    num_classes=models.MNIST_CLASSES, batch_norm=False):
    """{name: (dtype name, shape list)} of the model's own variables, in creation order, from a fresh graph."""
    with tf.Graph().as_default():
        images = models.image_input(image_shape)
        if against == "classifier":
            models.classifier(images, num_classes, filters=filters, image_shape=image_shape, batch_norm=batch_norm)
        else:
            models.autoencoder(images, latent_size, filters=filters, image_shape=image_shape, batch_norm=batch_norm)
        return {v.op.name: (v.dtype.base_dtype.name, v.shape.as_list()) for v in models.model_variables()}


def _describe(dtype_and_shape):
    dtype, shape = dtype_and_shape
    return f"{dtype:<8} {shape}"


def list_lines(stored):
    """One line per stored variable, sorted by name, then the totals."""
    width = max((len(name) for name in stored), default=0)
    lines = [f"{name:<{width}}  {_describe(stored[name])}" for name in sorted(stored)]
    values = sum(math.prod(shape) for _, shape in stored.values())
    return lines + [f"{len(stored)} variables, {values} values"]


def compare_lines(stored, wanted, against):
    """How a graph's variables meet the checkpoint: ``restore`` (same dtype and shape), ``missing``,
    ``differs`` (both sides shown); then ``unused`` checkpoint variables (optimizer slots, other layers)."""
    width = max(len(name) for name in list(stored) + list(wanted))
    lines, counts = [], dict.fromkeys(("restore", "missing", "differs", "unused"), 0)

    def add(status, name, text):
        counts[status] += 1
        lines.append(f"{status:<8} {name:<{width}}  {text}")

    for name, spec in wanted.items():
        if name not in stored:
            add("missing", name, f"{_describe(spec)} (not in the checkpoint)")
        elif stored[name] != spec:
            add("differs", name, f"checkpoint {_describe(stored[name])}, {against} {_describe(spec)}")
        else:
            add("restore", name, _describe(spec))
    for name in sorted(set(stored) - set(wanted)):
        add("unused", name, f"{_describe(stored[name])} (not in the {against} graph)")
    summary = ", ".join(f"{count} {status}" for status, count in counts.items())
    return lines + [f"against {against}: {summary}"]


def inspect(checkpoint_path, against=None, latent_size=20, encoder_filters="16,32"):
    """Report lines for a checkpoint (prefix or directory), compared with a graph when ``against`` is given (of
    the encoder ``encoder_filters``; at the checkpoint's image size where its encoder has those widths)."""
    checkpoint = restore.resolve_checkpoint(checkpoint_path)
    stored = stored_variables(checkpoint)
    lines = [f"checkpoint {checkpoint}"]
    tested = train_dir.tested_checkpoint(checkpoint_path, "checkpoint_path")
    if tested != checkpoint:  # --patience: its run tested best/, which export and predict take
        lines.append(f"(the weights its run tested, which export and predict take: {tested})")
    lines += list_lines(stored)
    if against:
        shapes = {name: shape for name, (_, shape) in stored.items()}
        filters = filters_of(encoder_filters)
        own = models.encoder_filters_of(shapes) == filters
        # the checkpoint's image size and classes where its encoder is the one asked for
        image_shape = stored_image_shape(shapes, filters) if own else models.MNIST_SHAPE
        num_classes = shapes["logits/kernel"][1] if own and "logits/kernel" in shapes else models.MNIST_CLASSES
        lines += compare_lines(stored, model_variables(against, latent_size, filters, image_shape, num_classes,
                                                       models.has_batch_norm(shapes)), against)
    return lines
