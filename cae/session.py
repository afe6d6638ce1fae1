"""The tf.compat.v1 Session configuration shared by every script."""

import tensorflow as tf
from absl import logging
from tensorflow.core.protobuf import rewriter_config_pb2

from cae import clones

v1 = tf.compat.v1

# CPU flags (Linux /proc/cpuinfo) of the instructions oneDNN runs bfloat16 matrix products with; without them it
# would emulate bfloat16, slower than float32.
BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def config_proto(gpu_memory_fraction=0.2, allow_growth=False, intra_op_threads=0, inter_op_threads=0,
                 precision="float32", cpu_devices=1):
    """ConfigProto whose GPUOptions cap this process at a fraction of each GPU's memory.

    The fraction matters on a shared GPU (TensorFlow otherwise takes nearly all of it); on a CPU-only machine it
    is carried but has no effect. Thread counts of 0 let TensorFlow pick one per core. ``mixed_bfloat16`` turns
    on Grappler's oneDNN bfloat16 rewrite: convolutions and matrix products of the CPU run in bfloat16 between
    inserted Casts, while every variable, its gradient's update and so every checkpoint stay float32.
    ``cpu_devices`` > 1 gives the session that many CPU devices (/device:CPU:0, 1, ...) for --clone_on_cpu.
    """
    gpu_options = v1.GPUOptions(per_process_gpu_memory_fraction=gpu_memory_fraction, allow_growth=allow_growth)
    proto = v1.ConfigProto(gpu_options=gpu_options,
                           intra_op_parallelism_threads=intra_op_threads,
                           inter_op_parallelism_threads=inter_op_threads)
    if precision == "mixed_bfloat16":
        proto.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 = rewriter_config_pb2.RewriterConfig.ON
    elif precision != "float32":
        raise ValueError(f"unknown precision {precision!r}")
    if cpu_devices > 1:
        proto.device_count["CPU"] = cpu_devices
    return proto


def bfloat16_unsupported(cpuinfo_path="/proc/cpuinfo"):
    """Why this machine cannot run --precision=mixed_bfloat16 fast, or None if it can."""
    from tensorflow.python.util import _pywrap_util_port  # the one place TensorFlow says whether oneDNN is on
    if not _pywrap_util_port.IsMklEnabled():
        return "this TensorFlow runs without oneDNN (TF_ENABLE_ONEDNN_OPTS=0, or not an x86 build)"
    try:
        with open(cpuinfo_path) as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return f"cannot read the CPU's flags from {cpuinfo_path}"
    if not set(flags) & set(BFLOAT16_CPU_FLAGS):
        return f"this CPU has no bfloat16 instructions ({' or '.join(BFLOAT16_CPU_FLAGS)} in {cpuinfo_path})"
    return None


def precision_to_run(precision, fallback="training in float32 instead"):
    """The --precision this machine runs: a mixed_bfloat16 it cannot run fast becomes float32, with one warning
    that ends in ``fallback``."""
    if precision == "mixed_bfloat16":
        reason = bfloat16_unsupported()
        if reason:
            logging.warning("--precision=mixed_bfloat16: %s; %s", reason, fallback)
            return "float32"
        logging.info("precision: mixed_bfloat16 (oneDNN rewrites convolutions and matrix products to bfloat16; "
                     "variables stay float32)")
    return precision


def config_proto_for(cfg):
    """The session config of any config.SessionConfig (pretrain, transfer, extract, benchmark), in the precision
    this machine runs (precision_to_run), with the CPU devices of a training run's --clone_on_cpu."""
    cpu_devices = clones.session_cpu_devices(getattr(cfg, "num_clones", 1), getattr(cfg, "clone_on_cpu", False))
    return config_proto(cfg.gpu_memory_fraction, cfg.allow_growth, cfg.intra_op_threads, cfg.inter_op_threads,
                        precision_to_run(cfg.precision), cpu_devices)
