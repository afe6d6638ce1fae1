"""Fine-tuning, partial freezing and cached features: the transfer scenarios, checked on the variables."""

import os

import numpy as np
import pytest
import tensorflow as tf

from cae import features, transfer
from cae.errors import UserError
from cae.config import TransferConfig

from conftest import checkpoint_predictions
from test_transfer import CONV_VARIABLES, HEAD_VARIABLES, values

v1 = tf.compat.v1


def one_batch(mnist, n=64, start=0):
    return mnist.train.images[start:start + n], mnist.train.labels[start:start + n]


def step_deltas(g, cfg, images, labels):
    """Largest absolute change of each model variable over one training step."""
    names = [v.op.name for v in g.model_variables]
    with v1.Session() as sess:
        report = transfer.initialize(sess, g, cfg)
        before = values(sess, names)
        sess.run(g.train_op, {g.model.images: images, g.input.labels: labels})
        after = values(sess, names)
        assert sess.run(g.global_step) == 1
    return {n: float(np.abs(after[n] - before[n]).max()) for n in names}, report


def test_fine_tune_moves_restored_kernels_at_the_smaller_rate(tmp_path, cae_checkpoint, mnist):
    """Adam's first step moves each weight by about the learning rate, so the rates can be read off the step."""
    cfg = TransferConfig(checkpoint_path=cae_checkpoint, train_dir=str(tmp_path), trainable_scopes="conv1,conv2,"
                         "fc1,logits", learning_rate=1e-3, lr_schedule="constant", restored_lr_multiplier=0.1)
    g = transfer.build_graph(cfg, total_steps=100)
    with g.graph.as_default():
        deltas, report = step_deltas(g, cfg, *one_batch(mnist))
    for name in ["conv1/kernel", "conv2/kernel"]:
        assert deltas[name] == pytest.approx(1e-4, rel=0.01), name
    for name in ["fc1/kernel", "logits/kernel"]:
        assert deltas[name] == pytest.approx(1e-3, rel=0.01), name
    assert any(line.startswith("restored  conv1/kernel") and line.endswith("trained at learning_rate x 0.1")
               for line in report)
    assert any(line.startswith("initial   fc1/kernel") and line.endswith("  trained") for line in report)
    with g.graph.as_default():
        slots = sorted(v.op.name for v in v1.global_variables() if "/Adam" in v.op.name)
    assert slots == sorted([f"{n}/Adam_restored{s}" for n in CONV_VARIABLES for s in ("", "_1")]
                           + [f"{n}/Adam{s}" for n in HEAD_VARIABLES for s in ("", "_1")])


def test_multiplier_one_is_plain_fine_tuning(tmp_path, cae_checkpoint, mnist):
    cfg = TransferConfig(checkpoint_path=cae_checkpoint, train_dir=str(tmp_path), trainable_scopes="conv1,conv2,"
                         "fc1,logits", learning_rate=1e-3, lr_schedule="constant")
    g = transfer.build_graph(cfg, total_steps=100)
    with g.graph.as_default():
        deltas, _ = step_deltas(g, cfg, *one_batch(mnist))
    assert deltas["conv1/kernel"] == pytest.approx(1e-3, rel=0.01)


def test_restored_warmup_holds_the_restored_layers_then_trains_them(tmp_path, cae_checkpoint, mnist):
    """--restored_warmup=0.3 of 10 steps: the restored convs stay bit for bit the checkpoint's for 3 steps while
    the new layers learn, then move at their own rate."""
    cfg = TransferConfig(checkpoint_path=cae_checkpoint, train_dir=str(tmp_path), trainable_scopes="conv1,conv2,"
                         "fc1,logits", learning_rate=1e-3, lr_schedule="constant", restored_lr_multiplier=0.1,
                         restored_warmup=0.3)
    reader = tf.train.load_checkpoint(cae_checkpoint)
    g = transfer.build_graph(cfg, total_steps=10)
    with g.graph.as_default(), v1.Session() as sess:
        report = transfer.initialize(sess, g, cfg, transfer.restored_warmup_steps(cfg, 10))
        head = values(sess, HEAD_VARIABLES)
        for step in range(4):
            if step == 3:
                held = values(sess, CONV_VARIABLES)
            images, labels = one_batch(mnist, start=64 * step)
            sess.run(g.train_op, {g.model.images: images, g.input.labels: labels})
        conv = values(sess, CONV_VARIABLES)
        moved = values(sess, HEAD_VARIABLES)
    for name in CONV_VARIABLES:
        np.testing.assert_array_equal(held[name], reader.get_tensor(name))
        # Adam's moments gathered during the warm-up: a step of at most about the (slow) rate, not exactly it
        assert 0 < np.abs(conv[name] - held[name]).max() <= 1.1e-4, name
    assert all(not np.array_equal(moved[n], head[n]) for n in HEAD_VARIABLES)
    assert any(line.startswith("restored  conv1/kernel") and line.endswith("at learning_rate x 0.1 from step 3")
               for line in report)


@pytest.mark.parametrize("restore_scopes, trainable_scopes, frozen", [
    ("conv1", "conv2,fc1,logits", ["conv1/kernel", "conv1/bias"]),  # restore conv1 only, train the rest
    ("conv1,conv2", "conv2,fc1,logits", ["conv1/kernel", "conv1/bias"]),  # freeze conv1, fine-tune conv2
])
def test_partial_freezing_leaves_exactly_the_frozen_scopes(tmp_path, cae_checkpoint, mnist, restore_scopes,
                                                           trainable_scopes, frozen):
    cfg = TransferConfig(checkpoint_path=cae_checkpoint, train_dir=str(tmp_path), restore_scopes=restore_scopes,
                         trainable_scopes=trainable_scopes, learning_rate=1e-3, restored_lr_multiplier=0.5)
    reader = tf.train.load_checkpoint(cae_checkpoint)
    g = transfer.build_graph(cfg, total_steps=100)
    names = CONV_VARIABLES + HEAD_VARIABLES
    with g.graph.as_default(), v1.Session() as sess:
        transfer.initialize(sess, g, cfg)
        before = values(sess, names)
        for step in range(5):
            images, labels = one_batch(mnist, start=64 * step)
            sess.run(g.train_op, {g.model.images: images, g.input.labels: labels})
        after = values(sess, names)
    changed = [n for n in names if not np.array_equal(before[n], after[n])]
    assert changed == [n for n in names if n not in frozen]
    for name in frozen:
        np.testing.assert_array_equal(after[name], reader.get_tensor(name))
    restored = [v.op.name for v in g.restored]
    for name in restored:
        np.testing.assert_array_equal(before[name], reader.get_tensor(name))
    assert "conv2/kernel" in restored or not np.array_equal(before["conv2/kernel"], reader.get_tensor("conv2/kernel"))


def test_cached_and_uncached_head_give_the_same_logits_and_step(tmp_path, cae_checkpoint, mnist):
    cfg = TransferConfig(checkpoint_path=cae_checkpoint, train_dir=str(tmp_path), learning_rate=1e-3)
    g = transfer.build_graph(cfg, total_steps=100)
    images, labels = one_batch(mnist, n=300)
    layer, output = features.cache_point(g.model, g.restored, g.trained)
    assert layer == "conv2" and output is g.model.features
    with g.graph.as_default(), v1.Session() as sess:
        transfer.initialize(sess, g, cfg)
        cached = features.compute(sess, g.model.features, g.model.images, images, batch_size=128)
        assert cached.shape == (300, 7 * 7 * 32)
        direct = sess.run(g.model.logits, {g.model.images: images})
        from_cache = sess.run(g.model.logits, {g.model.features: cached})
        np.testing.assert_allclose(from_cache, direct, rtol=1e-5, atol=1e-6)
        init = values(sess, HEAD_VARIABLES)
        sess.run(g.train_op, {g.model.images: images[:64], g.input.labels: labels[:64]})
        uncached_step = values(sess, HEAD_VARIABLES)
    with g.graph.as_default(), v1.Session() as sess:
        transfer.initialize(sess, g, cfg)
        np.testing.assert_array_equal(values(sess, ["fc1/kernel"])["fc1/kernel"], init["fc1/kernel"])
        sess.run(g.train_op, {g.model.features: cached[:64], g.input.labels: labels[:64]})
        cached_step = values(sess, HEAD_VARIABLES)
    for name in HEAD_VARIABLES:
        np.testing.assert_allclose(cached_step[name], uncached_step[name], rtol=1e-5, atol=1e-6)


def test_cached_training_matches_uncached_accuracy(tmp_path, cae_checkpoint, mnist):
    small = mnist._replace(train=mnist.train._replace(images=mnist.train.images[:512],
                                                      labels=mnist.train.labels[:512]),
                           test=mnist.test._replace(images=mnist.test.images[:2000],
                                                    labels=mnist.test.labels[:2000]))
    results = [transfer.transfer(TransferConfig(checkpoint_path=cae_checkpoint, train_dir=str(tmp_path / str(c)),
                                                epochs=2, batch_size=64, learning_rate=1e-3, cache_features=c), small)
               for c in (False, True)]
    assert results[0]["steps"] == results[1]["steps"] == 16
    assert results[1]["test_accuracy"] == pytest.approx(results[0]["test_accuracy"], abs=0.002)
    assert results[0]["test_accuracy"] > 0.5


@pytest.mark.parametrize("restore_scopes, trainable_scopes, expected", [
    ("conv1,conv2", "conv1,conv2,fc1,logits", "trains restored conv1, conv2"),
    ("conv1", "conv1,fc1,logits", "trains restored conv1"),
    (None, None, "conv1 is trained"),
])
def test_cache_features_refuses_trained_restored_layers(tmp_path, cae_checkpoint, restore_scopes,
                                                        trainable_scopes, expected):
    cfg = TransferConfig(checkpoint_path=cae_checkpoint if restore_scopes else None, train_dir=str(tmp_path),
                         restore_scopes=restore_scopes or "conv1,conv2", trainable_scopes=trainable_scopes,
                         cache_features=True)
    g = transfer.build_graph(cfg, total_steps=100)
    with pytest.raises(UserError, match="--cache_features") as e:
        features.cache_point(g.model, g.restored, g.trained)
    assert expected in str(e.value)


def test_partial_cache_point_is_the_frozen_prefix(tmp_path, cae_checkpoint):
    cfg = TransferConfig(checkpoint_path=cae_checkpoint, train_dir=str(tmp_path), restore_scopes="conv1",
                         trainable_scopes="conv2,fc1,logits")
    g = transfer.build_graph(cfg, total_steps=100)
    layer, output = features.cache_point(g.model, g.restored, g.trained)
    assert layer == "conv1" and output is g.model.conv1


def test_early_stopping_tests_the_best_validation_weights(tmp_path, cae_checkpoint, mnist):
    small = mnist._replace(train=mnist.train._replace(images=mnist.train.images[:64],
                                                      labels=mnist.train.labels[:64]),
                           validation=mnist.validation._replace(images=mnist.validation.images[:500],
                                                                labels=mnist.validation.labels[:500]))
    cfg = TransferConfig(checkpoint_path=cae_checkpoint, train_dir=str(tmp_path), epochs=200, batch_size=64,
                         learning_rate=1e-2, patience=2, cache_features=True)
    metrics = transfer.transfer(cfg, small)
    assert metrics["steps"] < 200  # stopped early
    assert metrics["steps"] == metrics["best_epoch"] + 2
    best = tf.train.latest_checkpoint(os.path.join(str(tmp_path), "best"))
    assert best.endswith(f"model.ckpt-{metrics['best_epoch']}")


def test_stop_at_accuracy_stops_saves_and_tests_those_weights(tmp_path, mnist):
    small = mnist._replace(train=mnist.train._replace(images=mnist.train.images[:1280],
                                                      labels=mnist.train.labels[:1280]),
                           validation=mnist.validation._replace(images=mnist.validation.images[:500],
                                                                labels=mnist.validation.labels[:500]),
                           test=mnist.test._replace(images=mnist.test.images[:1000], labels=mnist.test.labels[:1000]))
    common = dict(epochs=4, batch_size=64, projector_images=0)
    reached = transfer.transfer(TransferConfig(train_dir=str(tmp_path / "reached"), stop_at_accuracy=0.5, **common),
                                small)
    assert reached["stopped_at_accuracy_epoch"] == 1 and reached["steps"] == 20  # one epoch of 1280 / 64
    assert reached["best_validation_accuracy"] >= 0.5
    assert tf.train.latest_checkpoint(str(tmp_path / "reached")).endswith("model.ckpt-20")
    classes, _ = checkpoint_predictions(str(tmp_path / "reached"), small.test.images)  # the saved weights
    assert reached["test_accuracy"] == pytest.approx(np.mean(classes == small.test.labels), abs=1e-6)
    never = transfer.transfer(TransferConfig(train_dir=str(tmp_path / "never"), stop_at_accuracy=1.0, **common),
                              small)
    assert never["stopped_at_accuracy_epoch"] is None and never["steps"] == 80
