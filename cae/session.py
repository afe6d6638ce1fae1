"""The tf.compat.v1 Session configuration shared by every script."""

import tensorflow as tf

v1 = tf.compat.v1


def config_proto(gpu_memory_fraction=0.2, allow_growth=False, intra_op_threads=0, inter_op_threads=0):
    """ConfigProto whose GPUOptions cap this process at a fraction of each GPU's memory.

    The fraction matters on a shared GPU (TensorFlow otherwise takes nearly all of it); on a CPU-only machine it
    is carried but has no effect. Thread counts of 0 let TensorFlow pick one per core.
    """
    gpu_options = v1.GPUOptions(per_process_gpu_memory_fraction=gpu_memory_fraction, allow_growth=allow_growth)
    return v1.ConfigProto(gpu_options=gpu_options,
                          intra_op_parallelism_threads=intra_op_threads,
                          inter_op_parallelism_threads=inter_op_threads)


def config_proto_for(cfg):
    """The session config of any config.SessionConfig (pretrain, transfer, extract, benchmark)."""
    return config_proto(cfg.gpu_memory_fraction, cfg.allow_growth, cfg.intra_op_threads, cfg.inter_op_threads)
