"""Checkpoint inspection, on a checkpoint whose every variable the test chose."""

import pytest
import tensorflow as tf

from cae.errors import UserError
from cae.inspect_checkpoint import inspect

v1 = tf.compat.v1


@pytest.fixture
def odd_checkpoint(tmp_path):
    """conv1/kernel with 8 filters instead of 16, conv2 as the classifier has it, fc1/bias in float64, a step."""
    with tf.Graph().as_default() as graph:
        v1.get_variable("conv1/kernel", [5, 5, 1, 8])
        v1.get_variable("conv2/kernel", [5, 5, 16, 32])
        v1.get_variable("conv2/bias", [32])
        v1.get_variable("fc1/bias", [200], dtype=tf.float64)
        v1.train.get_or_create_global_step()
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            return v1.train.Saver().save(sess, str(tmp_path / "model.ckpt"), global_step=7)


def test_lists_names_dtypes_shapes_and_sizes(odd_checkpoint, tmp_path):
    assert inspect(str(tmp_path)) == [  # the directory resolves to its latest checkpoint
        f"checkpoint {odd_checkpoint}",
        "conv1/kernel  float32  [5, 5, 1, 8]",
        "conv2/bias    float32  [32]",
        "conv2/kernel  float32  [5, 5, 16, 32]",
        "fc1/bias      float64  [200]",
        "global_step   int64    []",
        f"5 variables, {200 + 12800 + 32 + 200 + 1} values",
    ]


def test_against_classifier_sorts_restore_missing_differs_unused(odd_checkpoint):
    lines = inspect(odd_checkpoint, against="classifier")
    assert lines[lines.index("5 variables, 13233 values") + 1:] == [
        "differs  conv1/kernel   checkpoint float32  [5, 5, 1, 8], classifier float32  [5, 5, 1, 16]",
        "missing  conv1/bias     float32  [16] (not in the checkpoint)",
        "restore  conv2/kernel   float32  [5, 5, 16, 32]",
        "restore  conv2/bias     float32  [32]",
        "missing  fc1/kernel     float32  [1568, 200] (not in the checkpoint)",
        "differs  fc1/bias       checkpoint float64  [200], classifier float32  [200]",
        "missing  logits/kernel  float32  [200, 10] (not in the checkpoint)",
        "missing  logits/bias    float32  [10] (not in the checkpoint)",
        "unused   global_step    int64    [] (not in the classifier graph)",
        "against classifier: 2 restore, 4 missing, 2 differs, 1 unused",
    ]


def test_against_autoencoder_uses_the_latent_size(cae_checkpoint):
    """The conftest autoencoder has latent_var of 20 units: a 7-unit graph differs exactly there."""
    assert inspect(cae_checkpoint, "autoencoder")[-1] == (
        "against autoencoder: 12 restore, 0 missing, 0 differs, 1 unused")
    lines = inspect(cae_checkpoint, "autoencoder", latent_size=7)
    assert [line.split()[1] for line in lines if line.startswith("differs")] == [
        "latent_var/kernel", "latent_var/bias", "z_matrix/kernel"]
    assert lines[-1] == "against autoencoder: 9 restore, 0 missing, 3 differs, 1 unused"


def test_unreadable_checkpoint_is_a_user_error(tmp_path):
    (tmp_path / "model.ckpt.index").write_text("garbage")
    with pytest.raises(UserError, match=f"^{tmp_path}/model.ckpt: cannot read checkpoint"):
        inspect(str(tmp_path / "model.ckpt"))
    with pytest.raises(UserError, match="--checkpoint_path=.*nothing: no such checkpoint"):
        inspect(str(tmp_path / "nothing"))
