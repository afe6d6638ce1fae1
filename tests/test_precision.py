"""--precision=mixed_bfloat16: the session's ConfigProto carries oneDNN's bfloat16 rewrite, the arithmetic really
changes where the CPU has bfloat16 instructions, variables and checkpoints stay float32 (a float32 graph restores
them bit for bit), and a machine without bfloat16 falls back to float32 with one warning."""

import numpy as np
import pytest
import tensorflow as tf
from absl import logging
from tensorflow.core.protobuf import rewriter_config_pb2

from cae import pretrain, session, transfer
from cae.config import PretrainConfig, TransferConfig

ON = rewriter_config_pb2.RewriterConfig.ON


def small(mnist, count=640):
    return mnist._replace(train=mnist.train._replace(images=mnist.train.images[:count],
                                                     labels=mnist.train.labels[:count]))


def test_config_proto_turns_the_rewrite_on_only_for_mixed_bfloat16():
    assert session.config_proto().graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 != ON
    proto = session.config_proto(precision="mixed_bfloat16")
    assert proto.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 == ON
    assert proto.gpu_options.per_process_gpu_memory_fraction == pytest.approx(0.2)  # the rest is unchanged
    with pytest.raises(ValueError):
        session.config_proto(precision="float16")


def test_cpu_without_bfloat16_instructions_is_named(tmp_path, monkeypatch):
    from tensorflow.python.util import _pywrap_util_port
    monkeypatch.setattr(_pywrap_util_port, "IsMklEnabled", lambda: False)
    assert "without oneDNN" in session.bfloat16_unsupported()
    monkeypatch.setattr(_pywrap_util_port, "IsMklEnabled", lambda: True)  # what the CPU's flags decide
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n")
    assert "avx512_bf16 or amx_bf16" in session.bfloat16_unsupported(str(cpuinfo))
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f amx_bf16 amx_tile\n")
    assert session.bfloat16_unsupported(str(cpuinfo)) is None
    assert "cannot read" in session.bfloat16_unsupported(str(tmp_path / "missing"))


def test_falls_back_to_float32_with_one_warning(monkeypatch):
    monkeypatch.setattr(session, "bfloat16_unsupported", lambda: "this CPU has no bfloat16 instructions (test)")
    warnings = []
    monkeypatch.setattr(logging, "warning", lambda message, *args: warnings.append(message % args))
    proto = session.config_proto_for(TransferConfig(precision="mixed_bfloat16"))
    assert proto.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 != ON
    assert warnings == ["--precision=mixed_bfloat16: this CPU has no bfloat16 instructions (test); training in "
                        "float32 instead"]


def test_mixed_bfloat16_checkpoint_is_float32_and_restores_into_a_float32_classifier(tmp_path, mnist):
    data = small(mnist)
    runs = {}
    for precision in ("float32", "mixed_bfloat16"):
        cfg = PretrainConfig(train_dir=str(tmp_path / precision), epochs=1, batch_size=64, projector_images=0,
                             summary_every_steps=1, precision=precision)
        runs[precision] = pretrain.pretrain(cfg, data)["test_reconstruction_loss"]
    checkpoint = tf.train.latest_checkpoint(str(tmp_path / "mixed_bfloat16"))
    reader = tf.train.load_checkpoint(checkpoint)
    dtypes = reader.get_variable_to_dtype_map()
    assert dtypes["conv1/kernel"] == tf.float32 and set(dtypes.values()) <= {tf.float32, tf.int64}
    if session.bfloat16_unsupported() is None:
        # the rewrite took effect: bfloat16 rounding changes the losses, a little
        assert runs["mixed_bfloat16"] != runs["float32"]
        assert runs["mixed_bfloat16"] == pytest.approx(runs["float32"], rel=0.05)
    # a float32 classifier restores the convs bit for bit and trains on them
    cfg = TransferConfig(train_dir=str(tmp_path / "transfer"), checkpoint_path=checkpoint, epochs=1,
                         batch_size=64, projector_images=0)
    g = transfer.build_graph(cfg, total_steps=10)
    with tf.compat.v1.Session(graph=g.graph) as sess:
        transfer.initialize(sess, g, cfg)
        kernel = sess.run(next(v for v in g.restored if v.op.name == "conv1/kernel"))
    np.testing.assert_array_equal(kernel, reader.get_tensor("conv1/kernel"))
    assert kernel.dtype == np.float32

