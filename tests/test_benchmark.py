"""scripts/benchmark.py in its --quick CI mode: it runs every case and writes a well-formed report."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from cae.measure import benchmark, kernel_profile

from conftest import REPO


def run_benchmark(*args, data_dir):
    return subprocess.run([sys.executable, os.path.join(REPO, "scripts", "benchmark.py"), *args],
                          capture_output=True, text=True, env=dict(os.environ, CAE_DATA_DIR=data_dir), timeout=900)


def test_quick_benchmark_writes_valid_json(tmp_path, mnist_dir):
    output = tmp_path / "reports" / "benchmark.json"
    result = run_benchmark("--quick", f"--output={output}", data_dir=mnist_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())
    names = [name for name, _, _ in benchmark.CASES]
    assert sorted(report["results"]) == sorted(names)
    assert report["config"]["quick"] and report["config"]["repeats"] == 1
    for name, _, keras_name in benchmark.CASES:
        r = report["results"][name]
        assert len(r["runs"]) == 1 and r["images_per_s"] > 0 and r["images_per_cpu_s"] > 0, (name, r)
        if keras_name:
            assert r["vs_keras_images_per_s"] == r["images_per_s"] / report["results"][keras_name]["images_per_s"]
    assert report["benchmark_peak_rss_mb"] > 100 and "pretrain_peak_rss_mb" not in report
    # Every toolkit case is traced, no Keras case is; the convolutions drop out of the cached-features step.
    assert sorted(report["profiles"]) == sorted(name for name, _, keras_name in benchmark.CASES if keras_name)
    for name, p in report["profiles"].items():
        assert p["total_us"] == pytest.approx(sum(p["kinds_us"].values())) and p["kinds_us"]["matmul"] > 0, name
        arithmetic = p["kinds_us"].get("convolution", 0) + p["kinds_us"]["matmul"]
        assert p["arithmetic_ceiling_images_per_s"] == pytest.approx(128 * os.cpu_count() * 1e6 / arithmetic)
    assert "convolution" not in report["profiles"]["head training on cached features"]["kinds_us"]
    assert report["profiles"]["autoencoder training (tf.data)"]["kinds_us"]["convolution"] > 0
    table = result.stdout.splitlines()
    assert table[0].startswith("| case | images/s |") and len(table) >= 2 + len(names)
    assert any(line.startswith("| case | kernel ms/step |") for line in table)
    assert f"wrote {output}" in result.stdout


def test_bad_flag_is_one_line_without_traceback(tmp_path, mnist_dir):
    output = tmp_path / "benchmark.json"
    result = run_benchmark("--repeats=0", f"--output={output}", data_dir=mnist_dir)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "error: --repeats=0: expected an integer >= 1"
    assert "Traceback" not in result.stderr and not output.exists()


def test_op_times_name_the_kernels_that_ran():
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [64, 32])
        y = tf.reduce_sum(tf.matmul(x, tf.ones([32, 16])), name="total")
    with tf.compat.v1.Session(graph=graph) as sess:
        times = kernel_profile.op_times(sess, y, steps=3, feed=lambda: {x: np.ones([64, 32], np.float32)})
    ops = {node: op_type for node, op_type in times}
    assert ops["total"] == "Sum" and any("MatMul" in op_type for op_type in ops.values())
    assert all(micros >= 0 for micros in times.values())
    summary = kernel_profile.summary(times, batch_size=64, cpus=2)
    assert summary["kinds_us"]["matmul"] > 0 and summary["top_ops"][0]["us"] == max(times.values())
    assert [kernel_profile.kind(op) for op in ("_MklNativeFusedConv2D", "Conv2DBackpropFilter", "_MklMatMul",
                                               "ResourceApplyAdam", "IteratorGetNext", "Relu")] == [
        "convolution", "convolution", "matmul", "optimizer", "input pipeline", "other"]
