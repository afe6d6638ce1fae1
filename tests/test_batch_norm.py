"""--batch_norm, the TF1 way: variables named as tf.layers.batch_normalization named them, moving averages updated
through UPDATE_OPS with the train op only in layers that train, restored together with their layer, used (not
updated) by frozen layers, export and predict; a checkpoint of the other kind refused in one line."""

import numpy as np
import pytest
import tensorflow as tf

from cae import data, export, models, pretrain, restore, transfer
from cae.config import ExportConfig, PretrainConfig, TransferConfig
from cae.errors import UserError

from conftest import snapshot

v1 = tf.compat.v1
BN = [f"{conv}/batch_normalization/{name}" for conv in ("conv1", "conv2")
      for name in ("gamma", "beta", "moving_mean", "moving_variance")]
MOVING = [name for name in BN if "moving" in name]


def test_variables_are_named_as_tf_layers_named_them():
    with tf.Graph().as_default():
        v1.train.get_or_create_global_step()
        models.classifier(models.image_input(), batch_norm=True, training=models.training_mode())
        trainable = {v.op.name for v in v1.trainable_variables()}
        everything = {v.op.name: v.shape.as_list() for v in models.model_variables()}
        assert len(v1.get_collection(v1.GraphKeys.UPDATE_OPS)) == 4  # two moving averages per conv
    assert {name: everything[name] for name in BN} == {name: [16 if name.startswith("conv1") else 32]
                                                       for name in BN}
    assert set(MOVING).isdisjoint(trainable) and set(BN) - set(MOVING) <= trainable


def test_the_restore_report_says_which_moving_averages_move():
    with tf.Graph().as_default():
        v1.train.get_or_create_global_step()
        switch = models.training_mode()
        models.classifier(models.image_input(), batch_norm=True, training={"conv2": switch})
        trained = restore.select(v1.trainable_variables(), "conv2,fc1,logits")
        lines = restore.report_lines([], models.model_variables(), None, trained)
    said = {line.split()[1]: line.split("(initializer)")[1].strip() for line in lines}
    assert said["conv1/batch_normalization/moving_mean"] == "frozen"
    assert said["conv2/batch_normalization/moving_variance"] == "updated: moving average of the training batches"
    assert said["conv2/batch_normalization/gamma"] == "trained"


@pytest.fixture(scope="module")
def small(mnist):
    return mnist._replace(train=data.Split(mnist.train.images[:3000], mnist.train.labels[:3000]),
                          validation=data.Split(mnist.validation.images[:500], mnist.validation.labels[:500]),
                          test=data.Split(mnist.test.images[:1000], mnist.test.labels[:1000]))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, small):
    root = tmp_path_factory.mktemp("bn")
    # 188 steps: the moving averages warm up to momentum 0.99 (ExponentialMovingAverage's (1 + n) / (10 + n))
    pretrain.pretrain(PretrainConfig(train_dir=str(root / "cae"), batch_norm=True, epochs=2, batch_size=32,
                                     projector_images=0), small)
    frozen = transfer.transfer(TransferConfig(train_dir=str(root / "frozen"), checkpoint_path=str(root / "cae"),
                                              batch_norm=True, epochs=3, projector_images=0), small)
    tuned = transfer.transfer(TransferConfig(train_dir=str(root / "tuned"), checkpoint_path=str(root / "cae"),
                                             batch_norm=True, trainable_scopes="conv2,fc1,logits", epochs=3,
                                             projector_images=0), small)
    return root, frozen, tuned


def read(directory, names):
    reader = restore.checkpoint_reader(tf.train.latest_checkpoint(str(directory)))
    return {name: reader.get_tensor(name) for name in names}


def test_moving_averages_train_with_their_layer_and_stay_in_frozen_ones(runs):
    root, frozen, tuned = runs
    pretrained = read(root / "cae", BN)
    assert not np.allclose(pretrained["conv1/batch_normalization/moving_mean"], 0)  # updated by pretraining
    assert not np.allclose(pretrained["conv2/batch_normalization/moving_variance"], 1)
    for name, value in read(root / "frozen", BN).items():  # restored bit for bit, then frozen: unchanged
        np.testing.assert_array_equal(value, pretrained[name], err_msg=name)
    after = read(root / "tuned", BN)
    for name in (n for n in BN if n.startswith("conv1")):  # conv1 frozen
        np.testing.assert_array_equal(after[name], pretrained[name], err_msg=name)
    for name in ("conv2/batch_normalization/moving_mean", "conv2/batch_normalization/moving_variance",
                 "conv2/batch_normalization/gamma"):  # conv2 trained: its averages follow its new batches
        assert not np.array_equal(after[name], pretrained[name]), name
    # 3,000 real digits, chance 0.1; the frozen head on 188 steps of batch-normalized convs measured 0.79
    assert min(frozen["test_accuracy"], tuned["test_accuracy"]) > 0.7


def batch_moments(checkpoint_dir, images):
    """Each conv's batch-normalization moments of ``images`` under the checkpoint's weights, in training mode."""
    with tf.Graph().as_default() as graph, v1.Session(graph=graph) as sess:
        sess.run(v1.train.get_or_create_global_step().initializer)
        models.encoder(models.image_input(), batch_norm=True, training=True)
        v1.train.Saver(models.model_variables()).restore(sess, tf.train.latest_checkpoint(str(checkpoint_dir)))
        names = {f"{conv}/batch_normalization/moving_{moment}": f"ENCODER/{conv}/batch_normalization/moments/{op}:0"
                 for conv in ("conv1", "conv2") for moment, op in (("mean", "Squeeze"), ("variance", "Squeeze_1"))}
        values = sess.run({name: graph.get_tensor_by_name(tensor) for name, tensor in names.items()},
                          {"IMAGE_IN:0": images})
    return values


def test_a_short_run_leaves_the_moving_averages_at_the_batches_moments(runs, small):
    """188 steps at a plain momentum of 0.99 would leave 0.99^188 = 15% of the initial variance 1 in each moving
    variance (many times conv1's own); the warm-up (ExponentialMovingAverage's) forgets the start."""
    root, _, _ = runs
    moments = batch_moments(root / "cae", small.train.images[:2000])
    for name, value in read(root / "cae", MOVING).items():
        scale = np.abs(moments[name]).mean()
        np.testing.assert_allclose(value, moments[name], atol=0.1 * scale, err_msg=name)


def test_export_normalizes_by_the_moving_averages(runs, small, tmp_path):
    root, frozen, _ = runs
    export_dir = str(tmp_path / "export" / "1")
    export.export(ExportConfig(checkpoint_path=str(root / "frozen"), export_dir=export_dir))
    with tf.Graph().as_default() as graph, v1.Session(graph=graph) as sess:
        meta = v1.saved_model.load(sess, ["serve"], export_dir)
        signature = meta.signature_def["serving_default"]
        classes = sess.run(signature.outputs["classes"].name,
                           {signature.inputs["images"].name: small.test.images.reshape(-1, 28, 28)})
    assert np.mean(classes == small.test.labels) == pytest.approx(frozen["test_accuracy"], abs=1e-6)


def test_a_checkpoint_of_the_other_kind_is_one_line(runs, small, tmp_path):
    root, _, _ = runs
    train_dir = tmp_path / "run"
    with pytest.raises(UserError, match=r"holds batch-normalized convs .*; pass --batch_norm"):
        transfer.transfer(TransferConfig(train_dir=str(train_dir), checkpoint_path=str(root / "cae")), small)
    plain = tmp_path / "plain"
    pretrain.pretrain(PretrainConfig(train_dir=str(plain), epochs=1, max_train_examples=128, projector_images=0),
                      small)
    with pytest.raises(UserError, match=r"holds convs without batch normalization .*; pass --nobatch_norm"):
        transfer.transfer(TransferConfig(train_dir=str(train_dir), checkpoint_path=str(plain), batch_norm=True),
                          small)
    assert snapshot(train_dir) == {}
