"""SavedModel export: read back by saved_model_cli and by plain TF2 eager code, predicting as the checkpoint."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from cae import export
from cae.config import ExportConfig
from cae.errors import UserError

from conftest import checkpoint_predictions
from test_models import CLASSIFIER_SHAPES


@pytest.fixture(scope="module")
def saved_model(transfer_dir, tmp_path_factory):
    export_dir = str(tmp_path_factory.mktemp("export") / "1")
    checkpoint = export.export(ExportConfig(checkpoint_path=transfer_dir, export_dir=export_dir))
    assert checkpoint == tf.train.latest_checkpoint(transfer_dir)
    return export_dir


def test_eager_load_predicts_exactly_as_the_checkpoint(saved_model, transfer_dir, mnist):
    images = mnist.test.images[:500]
    want_classes, want_probabilities = checkpoint_predictions(transfer_dir, images)
    loaded = tf.saved_model.load(saved_model)  # TF2 eager, no Session
    assert sorted(loaded.signatures) == ["serving_default", "serving_uint8"]
    got = loaded.signatures["serving_default"](images=tf.constant(images.reshape(-1, 28, 28)))
    assert got["classes"].dtype == tf.int64 and got["probabilities"].shape == (500, 10)
    np.testing.assert_array_equal(got["classes"].numpy(), want_classes)
    np.testing.assert_array_equal(got["probabilities"].numpy(), want_probabilities)
    assert (want_classes == mnist.test.labels[:500]).mean() > 0.9  # a trained model, not a constant

    as_uint8 = np.round(images * 255).astype(np.uint8).reshape(-1, 28, 28)
    got_uint8 = loaded.signatures["serving_uint8"](images=tf.constant(as_uint8))
    np.testing.assert_array_equal(got_uint8["classes"].numpy(), want_classes)
    np.testing.assert_allclose(got_uint8["probabilities"].numpy(), want_probabilities, atol=1e-5)


def test_exports_only_the_classifier_variables(saved_model):
    stored = dict(tf.train.list_variables(os.path.join(saved_model, "variables", "variables")))
    assert stored == CLASSIFIER_SHAPES  # no global_step, Adam slots or beta powers


def test_saved_model_cli_shows_both_signatures(saved_model):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")  # TensorFlow's own, beside python
    result = subprocess.run([cli, "show", "--dir", saved_model, "--all"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    for name, dtype in (("serving_default", "DT_FLOAT"), ("serving_uint8", "DT_UINT8")):
        block = out[out.index(f"signature_def['{name}']:"):]
        block = block[:block.index("Method name is: tensorflow/serving/predict")]
        assert [line.strip() for line in block.splitlines() if "dtype" in line or "shape" in line] == [
            f"dtype: {dtype}", "shape: (-1, 28, 28)",
            "dtype: DT_INT64", "shape: (-1)",
            "dtype: DT_FLOAT", "shape: (-1, 10)"], block
        assert "inputs['images']" in block and "outputs['classes']" in block
        assert "outputs['probabilities']" in block


def test_refuses_a_non_empty_export_dir_and_leaves_it_alone(transfer_dir, tmp_path):
    export_dir = tmp_path / "1"
    export_dir.mkdir()
    (export_dir / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match=f"--export_dir={export_dir}: directory exists and is not empty"):
        export.export(ExportConfig(checkpoint_path=transfer_dir, export_dir=str(export_dir)))
    assert os.listdir(tmp_path) == ["1"] and os.listdir(export_dir) == ["notes.txt"]
    assert (export_dir / "notes.txt").read_text() == "mine"


def test_autoencoder_checkpoint_is_refused_and_nothing_is_left(cae_checkpoint, tmp_path):
    with pytest.raises(UserError, match="cannot restore: fc1/kernel missing; fc1/bias missing"):
        export.export(ExportConfig(checkpoint_path=cae_checkpoint, export_dir=str(tmp_path / "out" / "1")))
    assert os.listdir(tmp_path) == ["cae"]  # refused before anything is made: no export dir, no staging directory
