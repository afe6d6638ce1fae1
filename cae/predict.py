"""Classify image files with a transfer checkpoint or an exported SavedModel, by class name.

Each file is made into what the classifier was trained on (the model's input.json says which way, cae.model_info):

- a model trained on your own image folder gets every file decoded, centre-cropped and resized by the very code
  that made its training images (cae.data.decode.decode_image), in its size and channels;
- an MNIST-format model gets any PNG or JPEG (also GIF, BMP: what tf.io.decode_image reads), any size, gray or
  color, as a 28x28 gray image in [0, 1], light digit on a dark background, and, unless it is 28x28 already, made
  the way MNIST's own images were: the digit fitted into a 20x20 box, its centre of mass put at the centre of the
  28x28 field.
"""

import os

import numpy as np
import tensorflow as tf

from cae import data, export, model_info, models, restore, session, train_dir
from cae.data import IMAGE_SIZE, decode
from cae.errors import UserError

v1 = tf.compat.v1


def to_mnist(contents):
    """Encoded image bytes (a scalar string tensor) -> uint8 [28, 28], light digit on dark, as MNIST stores it.

    Color becomes gray (ITU-R 601 luma); transparent pixels count as white paper; the image is inverted when its
    border (the background) is mostly light; other sizes are made MNIST-style (``mnist_style``). The arithmetic
    stays on the 0-255 scale and ends on whole pixel values, so a 28x28 gray MNIST image comes back unchanged.
    """
    image = tf.io.decode_image(contents, channels=0, expand_animations=False)  # [H, W, 1 to 4] uint8
    x = tf.cast(image, tf.float32)
    channels = tf.shape(x)[2]
    gray = tf.cond(channels >= 3, lambda: tf.image.rgb_to_grayscale(x[:, :, :3]), lambda: x[:, :, :1])
    has_alpha = tf.equal(channels % 2, 0)  # gray+alpha or RGBA
    opacity = tf.cond(has_alpha, lambda: x[:, :, -1:] / 255.0, lambda: tf.ones_like(gray))
    gray = gray * opacity + 255.0 * (1.0 - opacity)
    gray = tf.cond(tf.reduce_mean(border_pixels(gray)) > 127.5, lambda: 255.0 - gray, lambda: gray)
    mnist_size = tf.reduce_all(tf.equal(tf.shape(gray)[:2], IMAGE_SIZE))
    gray = tf.cond(mnist_size, lambda: gray, lambda: mnist_style(gray))
    return tf.reshape(tf.saturate_cast(tf.round(gray), tf.uint8), [IMAGE_SIZE, IMAGE_SIZE])


def border_pixels(gray):
    """The outermost rows and columns of a [H, W, 1] image, flat: where the background shows."""
    return tf.concat([gray[0, :, 0], gray[-1, :, 0], gray[:, 0, 0], gray[:, -1, 0]], axis=0)


DIGIT_BOX = 20  # MNIST fitted each digit into 20x20 and centred its mass in the 28x28 field
INK_LEVEL = 0.1  # of the strongest pixel: weaker ones (paper grain, shadows) do not widen the digit's box


def mnist_style(gray):
    """[H, W, 1] light-on-dark on the 0-255 scale -> [28, 28, 1] as MNIST made its images: the background level
    (the border's median) taken off and the strongest pixel scaled to 255, the digit cropped to the box of its ink,
    scaled to fit 20x20 (aspect ratio kept), then placed so that its centre of mass falls on pixel (14, 14)."""
    border = border_pixels(gray)
    background = tf.sort(border)[tf.size(border) // 2]
    ink = tf.maximum(gray - background, 0.0)
    ink = ink * (255.0 / tf.maximum(tf.reduce_max(ink), 1e-6))
    rows = tf.where(tf.reduce_max(ink, axis=[1, 2]) > INK_LEVEL * 255)[:, 0]
    cols = tf.where(tf.reduce_max(ink, axis=[0, 2]) > INK_LEVEL * 255)[:, 0]
    blank = tf.equal(tf.size(rows), 0)
    box = tf.cond(blank, lambda: ink, lambda: ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])
    box = tf.image.resize_with_pad(box, DIGIT_BOX, DIGIT_BOX, method="area")
    mass = tf.maximum(tf.reduce_sum(box), 1e-6)
    positions = tf.range(DIGIT_BOX, dtype=tf.float32)
    centre_row = tf.reduce_sum(tf.reduce_sum(box, axis=[1, 2]) * positions) / mass
    centre_col = tf.reduce_sum(tf.reduce_sum(box, axis=[0, 2]) * positions) / mass
    margin = IMAGE_SIZE - DIGIT_BOX
    top = tf.clip_by_value(tf.cast(tf.round(IMAGE_SIZE / 2 - centre_row), tf.int32), 0, margin)
    left = tf.clip_by_value(tf.cast(tf.round(IMAGE_SIZE / 2 - centre_col), tf.int32), 0, margin)
    return tf.image.pad_to_bounding_box(box, top, left, IMAGE_SIZE, IMAGE_SIZE)


def read_images(paths):
    """float32 [N, 28, 28] in [0, 1] for the files, decoded by TensorFlow and scaled as cae.data scales MNIST;
    UserError naming the first file that is missing or not an image."""
    graph = tf.Graph()
    with graph.as_default():
        contents = v1.placeholder(tf.string, [], name="file_contents")
        image = to_mnist(contents)
    pixels = np.zeros([len(paths), IMAGE_SIZE, IMAGE_SIZE], np.uint8)
    with v1.Session(graph=graph, config=session.config_proto()) as sess:
        for i, path in enumerate(paths):
            try:
                with open(path, "rb") as f:
                    encoded = f.read()
            except OSError as e:
                raise UserError(f"{path}: cannot read ({e.strerror})") from None
            try:
                pixels[i] = sess.run(image, {contents: encoded})
            except tf.errors.InvalidArgumentError as e:
                raise UserError(f"{path}: not a readable PNG or JPEG image ({_reason(e)})") from None
    return data.to_float(pixels)


def _reason(op_error):
    """The kernel's own words: a graph-mode message wraps them in lines about the node and where it was built."""
    lines = [line for line in op_error.message.splitlines() if line.strip() and not line[0].isspace()]
    return lines[-1]


def read_folder_images(paths, image_shape):
    """float32 [N, H*W*C] in [0, 1] for the files, decoded, cropped and resized exactly as cae.data.decode made the
    training images; UserError naming the first file that is missing or not an image."""
    size, _, channels = image_shape
    color_mode = "grayscale" if channels == 1 else "rgb"
    pixels = np.zeros([len(paths), size, size, channels], np.uint8)
    for i, path in enumerate(paths):
        if not os.path.isfile(path):
            raise UserError(f"{path}: cannot read (No such file or directory)")
        try:
            pixels[i] = decode.decode_image(path, size, color_mode)
        except Exception as e:  # noqa: BLE001 - Pillow raises many kinds; each means "not a decodable image"
            raise UserError(f"{path}: not a decodable image ({decode.describe_error(e)})") from None
    return data.to_float(pixels.reshape(len(paths), -1))


def is_saved_model(path):
    return os.path.isfile(os.path.join(path, "saved_model.pb"))


def open_model(sess, model):
    """Load a SavedModel directory, or build the classifier and restore a checkpoint (a prefix, or a directory's
    tested one: train_dir.tested_checkpoint), into the session's graph. Returns the serving_default signature's
    (images placeholder, {name: output tensor}), the class names, the model_info.InputSpec and the
    model_info.Decision (None: the most probable class wins)."""
    if is_saved_model(model):
        meta_graph = v1.saved_model.load(sess, [v1.saved_model.tag_constants.SERVING], model)
        signature = meta_graph.signature_def[export.DEFAULT_SIGNATURE]
        images = sess.graph.get_tensor_by_name(signature.inputs["images"].name)
        outputs = {key: sess.graph.get_tensor_by_name(info.name) for key, info in signature.outputs.items()}
        shapes = restore.checkpoint_shapes(os.path.join(model, "variables", "variables"))
        image_shape, num_classes, _ = models.classifier_geometry(shapes)
        class_names, spec = model_info.read(os.path.join(model, "assets"), image_shape, num_classes)
        return images, outputs, class_names, spec, model_info.read_decision(os.path.join(model, "assets"),
                                                                            class_names)
    try:
        checkpoint = train_dir.tested_checkpoint(model, "model")
    except UserError as e:
        raise UserError(f"{e}; nor is it a SavedModel directory (no saved_model.pb)") from None
    class_names, spec, encoder, decision = export.classifier_info(checkpoint)
    signature = export.serving_signatures(spec.image_shape, len(class_names), *encoder,
                                          export.flag_of(decision, class_names))[export.DEFAULT_SIGNATURE]
    export.restore_classifier(sess, checkpoint)
    return signature["inputs"]["images"], signature["outputs"], class_names, spec, decision


def classify(model, paths):
    """One dict per file: file, class (the predicted class's index), class_name, probability (of that class),
    every class's probability (in the order of the class names) and, for a model with an operating point
    (--target_recall), its decision: the class flagged and from which probability on."""
    if not paths:
        raise UserError("no image files given: pass image paths after the flags")
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph, config=session.config_proto()) as sess:
        inputs, outputs, class_names, spec, decision = open_model(sess, model)
        if spec.source == "image_dir":
            images = read_folder_images(paths, spec.image_shape)
        else:
            images = read_images(paths)
        shape = export.input_shape(spec.image_shape)
        got = sess.run(outputs, {inputs: images.reshape([-1, *shape[1:]])})
    rule = {"decision": {"class": decision.class_name, "threshold": decision.threshold}} if decision else {}
    return [{"file": path, "class": int(index), "class_name": class_names[index], "probability": float(p[index]),
             "probabilities": p.tolist(), **rule}
            for path, index, p in zip(paths, got["classes"], got["probabilities"])]


def format_line(result):
    rule = result.get("decision")
    flagged = f"; {rule['class']} where its probability >= {rule['threshold']:.4f}" if rule else ""
    return f"{result['file']}: {result['class_name']} (probability {result['probability']:.4f}{flagged})"
