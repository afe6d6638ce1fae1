"""Where a step's time goes, the TF1 way: ``Session.run`` with ``RunOptions(trace_level=FULL_TRACE)`` fills a
``RunMetadata`` whose ``step_stats`` hold the time of every kernel that ran, named as it ran after Grappler's
rewrites (``_MklNativeFusedConv2D`` for a fused conv + bias + relu on oneDNN, for instance).
"""

import collections
import re

import tensorflow as tf

v1 = tf.compat.v1

# Kernel kinds, by the op type that ran. Convolutions and matrix products are the model's arithmetic: any
# framework running the same model on the same kernels pays for them.
KINDS = (("convolution", re.compile(r"Conv2D")),
         ("matmul", re.compile(r"MatMul")),
         ("optimizer", re.compile(r"Apply")),
         ("input pipeline", re.compile(r"Iterator")))
ARITHMETIC = ("convolution", "matmul")


def kind(op_type):
    return next((name for name, pattern in KINDS if pattern.search(op_type)), "other")


def op_times(sess, fetches, steps, feed=lambda: None):
    """Kernel time per step, {(node name, op type): microseconds}, averaged over ``steps`` traced runs of
    ``fetches`` (``feed()`` gives each run's feed_dict). Times of kernels that ran in parallel add up, so the total
    can exceed the step's wall time."""
    options = v1.RunOptions(trace_level=v1.RunOptions.FULL_TRACE)
    total = collections.Counter()
    for _ in range(steps):
        metadata = v1.RunMetadata()
        sess.run(fetches, feed(), options=options, run_metadata=metadata)
        for device in metadata.step_stats.dev_stats:
            for node in device.node_stats:
                # timeline_label reads "<node> = <OpType>(<inputs>)"; _SOURCE and the like have no " = ".
                op_type = node.timeline_label.partition(" = ")[2].partition("(")[0] or node.node_name
                total[node.node_name, op_type] += node.all_end_rel_micros
    return {key: micros / steps for key, micros in total.items()}


def summary(times, batch_size, cpus, top=8):
    """Per-kind totals, the slowest ops, and the arithmetic ceiling: the images/s this step could not exceed even
    if everything but its convolutions and matrix products took no time and they kept all ``cpus`` busy."""
    kinds = collections.Counter()
    for (_, op_type), micros in times.items():
        kinds[kind(op_type)] += micros
    arithmetic = sum(kinds[name] for name in ARITHMETIC)
    return {"total_us": sum(kinds.values()),
            "kinds_us": dict(kinds.most_common()),
            "top_ops": [{"node": node, "op": op_type, "us": micros} for (node, op_type), micros in
                        sorted(times.items(), key=lambda item: -item[1])[:top]],
            "arithmetic_ceiling_images_per_s": batch_size * cpus * 1e6 / arithmetic if arithmetic else None}
