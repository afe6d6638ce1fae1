"""scripts/benchmark.py in its --quick CI mode: it runs every case and writes a well-formed report."""

import json
import os
import subprocess
import sys

from cae import benchmark

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
    table = result.stdout.splitlines()
    assert table[0].startswith("| case | images/s |") and len(table) >= 2 + len(names)
    assert f"wrote {output}" in result.stdout


def test_bad_flag_is_one_line_without_traceback(tmp_path, mnist_dir):
    output = tmp_path / "benchmark.json"
    result = run_benchmark("--repeats=0", f"--output={output}", data_dir=mnist_dir)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "error: --repeats=0: expected an integer >= 1"
    assert "Traceback" not in result.stderr and not output.exists()
