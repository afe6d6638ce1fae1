"""Prediction on image files: TensorFlow decodes them, the classifier sees what it saw in training."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from cae import export, predict
from cae.config import ExportConfig
from cae.errors import UserError

from conftest import REPO, checkpoint_predictions

NUM_FILES = 300


def as_uint8(images):
    return np.round(images * 255).astype(np.uint8).reshape(-1, 28, 28)


def write_image(path, pixels):
    """pixels: uint8 [H, W, C]; the format follows the file name."""
    encode = tf.io.encode_jpeg if path.endswith(".jpg") else tf.io.encode_png
    tf.io.write_file(path, encode(pixels))
    return path


@pytest.fixture(scope="module")
def png_files(mnist, tmp_path_factory):
    """The first NUM_FILES MNIST test images as 28x28 gray PNGs."""
    directory = tmp_path_factory.mktemp("png")
    return [write_image(str(directory / f"{i:04d}.png"), image[..., None])
            for i, image in enumerate(as_uint8(mnist.test.images[:NUM_FILES]))]


def run_predict(*args):
    result = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "predict.py"), *args],
                            capture_output=True, text=True, timeout=600)
    return result


def test_pngs_from_checkpoint_match_the_checkpoint_on_the_same_images(png_files, transfer_dir, mnist):
    result = run_predict(f"--model={transfer_dir}", "--json", *png_files)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(result.stdout)
    assert [r["file"] for r in results] == png_files
    want_classes, want_probabilities = checkpoint_predictions(transfer_dir, mnist.test.images[:NUM_FILES])
    got_classes = np.array([r["class"] for r in results])
    labels = mnist.test.labels[:NUM_FILES]
    assert (got_classes == labels).mean() == (want_classes == labels).mean() > 0.9
    np.testing.assert_array_equal(got_classes, want_classes)
    np.testing.assert_array_equal([r["probabilities"] for r in results], want_probabilities)
    assert [r["probability"] for r in results] == [r["probabilities"][r["class"]] for r in results]


def test_saved_model_gives_the_checkpoint_predictions_and_text_lines(png_files, transfer_dir, tmp_path):
    export_dir = str(tmp_path / "1")
    export.export(ExportConfig(checkpoint_path=transfer_dir, export_dir=export_dir))
    from_checkpoint = predict.classify(transfer_dir, png_files[:50])
    from_saved_model = predict.classify(export_dir, png_files[:50])
    assert from_saved_model == from_checkpoint
    result = run_predict(f"--model={export_dir}", *png_files[:3])
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == [predict.format_line(r) for r in from_checkpoint[:3]]
    assert result.stdout.splitlines()[0] == (f"{png_files[0]}: {from_checkpoint[0]['class']} "
                                             f"(probability {from_checkpoint[0]['probability']:.4f})")


def test_gray_28x28_light_on_dark_is_decoded_exactly(png_files, mnist):
    np.testing.assert_array_equal(predict.read_images(png_files[:20]),
                                  mnist.test.images[:20].reshape(-1, 28, 28))


def test_color_dark_on_light_larger_and_transparent_images_become_mnist(mnist, tmp_path):
    """Black ink on a transparent background comes back as the light-on-dark 28x28 original, pixel for pixel; a
    JPEG within its compression loss; dark-on-light RGB at twice the size, refitted into MNIST's 20x20 box, nearly
    so."""
    digit = as_uint8(mnist.test.images[:1])[0]
    big_dark_on_light = np.repeat(np.repeat(255 - digit, 2, axis=0), 2, axis=1)
    files = [
        write_image(str(tmp_path / "rgb.png"), np.stack([big_dark_on_light] * 3, axis=-1)),
        write_image(str(tmp_path / "ink.png"), np.stack([np.zeros_like(digit)] * 3 + [digit], axis=-1)),
        write_image(str(tmp_path / "gray.jpg"), digit[..., None]),
    ]
    rgb, ink, jpeg = predict.read_images(files)
    original = mnist.test.images[0].reshape(28, 28)
    np.testing.assert_array_equal(ink, original)
    assert np.abs(jpeg - original).mean() < 0.02
    assert np.abs(rgb - original).mean() < 0.02


def centre_of_mass(image):
    rows, cols = np.indices(image.shape)
    return (rows * image).sum() / image.sum(), (cols * image).sum() / image.sum()


def test_other_sizes_are_fitted_into_20x20_and_centred_by_mass_like_mnist(tmp_path):
    wide = np.zeros([60, 90, 1], np.uint8)
    wide[5:17, 10:42] = 255  # a light 12x32 bar in a corner of a dark background
    image = predict.read_images([write_image(str(tmp_path / "wide.png"), wide)])[0]
    rows, cols = np.flatnonzero(image.max(axis=1) > 0), np.flatnonzero(image.max(axis=0) > 0)
    assert len(cols) == predict.DIGIT_BOX and 7 <= len(rows) <= 9  # 12x32 fitted to 7.5x20: aspect kept
    assert np.allclose(centre_of_mass(image), 14, atol=0.5) and image.max() == 1.0


def photo(digit, rng, paper=210, ink=40, zoom=3, size=(120, 160)):
    """A light-background 'photo' of an MNIST digit: dark ink on gray paper with noise, zoomed, off centre."""
    canvas = rng.normal(paper, 4, size)
    strokes = np.kron(digit / 255, np.ones([zoom, zoom]))
    top, left = rng.integers(0, size[0] - strokes.shape[0]), rng.integers(0, size[1] - strokes.shape[1])
    canvas[top:top + strokes.shape[0], left:left + strokes.shape[1]] -= strokes * (paper - ink)
    return np.clip(np.round(canvas), 0, 255).astype(np.uint8)


def test_photos_of_digits_are_classified_as_well_as_the_digits(transfer_dir, mnist, tmp_path):
    """Dark digits at 3x on noisy gray paper, anywhere in a 120x160 frame: MNIST-style preprocessing gives them
    the classifier's accuracy on the MNIST originals, within 5 points (3 on 1,000 such photos; scaling the whole
    frame to 28x28 instead gave 12%, chance)."""
    rng = np.random.default_rng(0)
    digits = as_uint8(mnist.test.images[:200])
    files = [write_image(str(tmp_path / f"photo{i}.png"), np.stack([photo(d, rng)] * 3, axis=-1))
             for i, d in enumerate(digits)]
    images = predict.read_images(files)
    for image in images[:20]:
        assert np.allclose(centre_of_mass(image), 14, atol=0.5)
    labels = mnist.test.labels[:200]
    on_photos = np.mean([r["class"] for r in predict.classify(transfer_dir, files)] == labels)
    on_originals = np.mean(checkpoint_predictions(transfer_dir, mnist.test.images[:200])[0] == labels)
    assert on_photos >= on_originals - 0.05 and on_originals > 0.9, (on_photos, on_originals)


def test_a_bad_image_file_is_one_clear_line(png_files, transfer_dir, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    result = run_predict(f"--model={transfer_dir}", png_files[0], str(bad))
    assert result.returncode == 2 and result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {bad}: not a readable PNG or JPEG image (Unknown image file format. "
                      f"One of JPEG, JPEG XL, PNG, GIF, BMP, WebP required.)"]
    assert "Traceback" not in result.stderr


def test_truncated_or_missing_files_and_wrong_model_are_user_errors(png_files, tmp_path, cae_checkpoint):
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(open(png_files[0], "rb").read()[:100])
    with pytest.raises(UserError, match=f"^{truncated}: not a readable PNG or JPEG image \\(Invalid PNG data"):
        predict.read_images([png_files[0], str(truncated)])
    with pytest.raises(UserError, match="nothing.png: cannot read \\(No such file or directory\\)"):
        predict.read_images([str(tmp_path / "nothing.png")])
    with pytest.raises(UserError, match=f"--model={tmp_path}: directory holds no checkpoint .*; nor is it a "
                                        f"SavedModel directory"):
        predict.classify(str(tmp_path), png_files[:1])
    with pytest.raises(UserError, match="cannot restore: fc1/kernel missing"):
        predict.classify(cae_checkpoint, png_files[:1])
