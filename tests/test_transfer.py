"""Selective restore and frozen training: the heart of the workflow, checked bit for bit."""

import os

import numpy as np
import pytest
import tensorflow as tf

from cae import models, session, transfer
from cae.errors import UserError
from cae.config import TransferConfig

v1 = tf.compat.v1
CONV_VARIABLES = ["conv1/kernel", "conv1/bias", "conv2/kernel", "conv2/bias"]
HEAD_VARIABLES = ["fc1/kernel", "fc1/bias", "logits/kernel", "logits/bias"]


def save_classifier_checkpoint(directory, seed):
    with tf.Graph().as_default() as graph:
        v1.set_random_seed(seed)
        models.classifier(models.image_input())
        saver = v1.train.Saver()
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            return saver.save(sess, os.path.join(str(directory), "model.ckpt"))


def values(sess, names):
    by_name = {v.op.name: v for v in v1.global_variables()}
    return dict(zip(names, sess.run([by_name[n] for n in names])))


def test_restores_exactly_the_conv_scopes_bit_for_bit(tmp_path):
    """The checkpoint holds every classifier variable; only conv1/conv2 may come from it."""
    checkpoint = save_classifier_checkpoint(tmp_path / "source", seed=5)
    reader = tf.train.load_checkpoint(checkpoint)
    cfg = TransferConfig(checkpoint_path=checkpoint, train_dir=str(tmp_path / "run"), seed=9)
    g = transfer.build_graph(cfg, total_steps=100)
    assert [v.op.name for v in g.restored] == CONV_VARIABLES
    with g.graph.as_default(), v1.Session(graph=g.graph) as sess:
        report = transfer.initialize(sess, g, cfg)
        got = values(sess, CONV_VARIABLES + HEAD_VARIABLES)
    for name in CONV_VARIABLES:
        np.testing.assert_array_equal(got[name], reader.get_tensor(name))
    for name in ["fc1/kernel", "logits/kernel"]:
        assert not np.array_equal(got[name], reader.get_tensor(name)), f"{name} was restored"
    assert sum(line.startswith("restored") for line in report) == 4
    assert any(line.startswith("initial   fc1/kernel") for line in report)


def test_restore_from_autoencoder_directory_skips_decoder(tmp_path, cae_checkpoint):
    cfg = TransferConfig(checkpoint_path=os.path.dirname(cae_checkpoint), train_dir=str(tmp_path / "run"))
    g = transfer.build_graph(cfg, total_steps=100)
    saved_names = set(g.restore_saver._var_list)
    assert saved_names == set(CONV_VARIABLES)
    reader = tf.train.load_checkpoint(cae_checkpoint)
    assert "dconv1/kernel" in reader.get_variable_to_shape_map()
    with g.graph.as_default(), v1.Session(graph=g.graph) as sess:
        transfer.initialize(sess, g, cfg)
        np.testing.assert_array_equal(values(sess, ["conv2/kernel"])["conv2/kernel"],
                                      reader.get_tensor("conv2/kernel"))


def test_frozen_convs_unchanged_after_100_steps_head_changes(tmp_path, cae_checkpoint, mnist):
    cfg = TransferConfig(checkpoint_path=cae_checkpoint, train_dir=str(tmp_path / "run"), learning_rate=1e-3)
    reader = tf.train.load_checkpoint(cae_checkpoint)
    g = transfer.build_graph(cfg, total_steps=100)
    with g.graph.as_default(), v1.Session(graph=g.graph) as sess:
        transfer.initialize(sess, g, cfg)
        head_before = values(sess, HEAD_VARIABLES)
        losses = []
        for step in range(100):
            batch = slice(step * 64, (step + 1) * 64)
            _, loss = sess.run([g.train_op, g.loss], {g.model.images: mnist.train.images[batch],
                                                            g.input.labels: mnist.train.labels[batch]})
            losses.append(loss)
        after = values(sess, CONV_VARIABLES + HEAD_VARIABLES)
        assert sess.run(g.global_step) == 100
    for name in CONV_VARIABLES:
        np.testing.assert_array_equal(after[name], reader.get_tensor(name))
    for name in HEAD_VARIABLES:
        assert not np.array_equal(after[name], head_before[name]), f"{name} did not train"
    assert np.mean(losses[-10:]) < np.mean(losses[:10])


def test_adam_slots_only_for_trained_variables(tmp_path, cae_checkpoint):
    cfg = TransferConfig(checkpoint_path=cae_checkpoint, train_dir=str(tmp_path / "run"))
    g = transfer.build_graph(cfg, total_steps=100)
    with g.graph.as_default():
        slots = sorted(v.op.name for v in v1.global_variables() if "/Adam" in v.op.name)
    assert slots == sorted(f"{n}/Adam{s}" for n in HEAD_VARIABLES for s in ("", "_1"))
    assert [v.op.name for v in g.trained] == HEAD_VARIABLES


def test_scratch_trains_every_layer_and_restores_nothing(tmp_path):
    g = transfer.build_graph(TransferConfig(train_dir=str(tmp_path)), total_steps=100)
    assert g.restored == [] and [v.op.name for v in g.trained] == CONV_VARIABLES + HEAD_VARIABLES


def test_shape_mismatch_names_variable_and_both_shapes(tmp_path):
    with tf.Graph().as_default() as graph:
        with v1.variable_scope("conv1"):
            v1.get_variable("kernel", [5, 5, 1, 8])
            v1.get_variable("bias", [8])
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            checkpoint = v1.train.Saver().save(sess, str(tmp_path / "bad.ckpt"))
    cfg = TransferConfig(checkpoint_path=checkpoint, train_dir=str(tmp_path / "run"))
    g = transfer.build_graph(cfg, total_steps=100)
    with g.graph.as_default(), v1.Session(graph=g.graph) as sess:
        with pytest.raises(UserError) as e:
            transfer.initialize(sess, g, cfg)
    message = str(e.value)
    assert "conv1/kernel has shape [5, 5, 1, 8] in the checkpoint, [5, 5, 1, 16] in the model" in message
    assert "conv2/kernel missing" in message


def test_session_config_carries_memory_fraction():
    cfg = TransferConfig(gpu_memory_fraction=0.37, allow_growth=True, intra_op_threads=2, inter_op_threads=1)
    proto = session.config_proto_for(cfg)
    assert proto.gpu_options.per_process_gpu_memory_fraction == pytest.approx(0.37)
    assert proto.gpu_options.allow_growth
    assert proto.intra_op_parallelism_threads == 2 and proto.inter_op_parallelism_threads == 1
    assert session.config_proto_for(TransferConfig()).gpu_options.per_process_gpu_memory_fraction == pytest.approx(0.2)
