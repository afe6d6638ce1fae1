"""scripts/time_to_accuracy.py: whole default runs as the user types them, timed, next to Keras 3 on the same
recipe (CI runs --quick: 512 images and one epoch per process)."""

import json
import os
import subprocess
import sys

import pytest

from cae.errors import UserError
from cae.measure import time_to_accuracy

from conftest import REPO


def run_script(*args, data_dir):
    return subprocess.run([sys.executable, os.path.join(REPO, "scripts", "time_to_accuracy.py"), *args],
                          capture_output=True, text=True, env=dict(os.environ, CAE_DATA_DIR=data_dir), timeout=600)


def test_workflow_row_is_readmes_command_pretrain_then_frozen_transfer(tmp_path):
    (pretrain, none), (transfer, metrics) = time_to_accuracy.commands("workflow", "mixed_bfloat16", 2, str(tmp_path),
                                                                       quick=False)
    assert pretrain[-4:] == [os.path.join(REPO, "scripts", "pretrain_cae.py"), f"--train_dir={tmp_path / 'cae'}",
                             "--seed=2", "--precision=mixed_bfloat16"]
    assert transfer[1:] == [os.path.join(REPO, "scripts", "transfer_classify.py"),
                            f"--checkpoint_path={tmp_path / 'cae'}", f"--train_dir={tmp_path / 'transfer'}",
                            "--seed=2", "--precision=mixed_bfloat16"]
    assert none is None and metrics == str(tmp_path / "transfer" / "metrics.json")
    [(scratch, _)] = time_to_accuracy.commands("scratch", "float32", 0, str(tmp_path), quick=False)
    assert not any(arg.startswith(("--checkpoint_path", "--precision")) for arg in scratch)


def test_quick_run_times_every_row_and_reads_back_its_accuracy(tmp_path, mnist_dir):
    # The Keras rows are left out here to keep the suite's time (each process pays TensorFlow's import); their
    # models are keras_baseline's, which tests/test_benchmark.py runs.
    output = tmp_path / "tta.json"
    result = run_script("--quick", "--seeds=1", "--precisions=float32", "--nokeras", f"--output={output}",
                        data_dir=mnist_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())
    assert [r["row"] for r in report["rows"]] == ["workflow", "scratch"]
    for row in report["rows"]:
        [run] = row["runs"]
        # one epoch on 512 images: 45-55% here, far above the 10% of guessing
        assert 0.3 < run["test_accuracy"] < 1 and run["wall_s"] > 1, row
        assert row["mean_test_accuracy"] == row["min_test_accuracy"] == run["test_accuracy"]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("| run | precision | wall time (mean) |") and len(lines) == 2 + 2 + 1
    assert "`python scripts/transfer_classify.py`" in lines[3]


def test_bad_precision_is_named():
    with pytest.raises(UserError, match=r"^--precisions=float32,float16: expected a comma-separated list of "
                                        r"float32, mixed_bfloat16$"):
        time_to_accuracy.parse_precisions("float32,float16")
    assert time_to_accuracy.parse_precisions(" mixed_bfloat16,float32") == ["mixed_bfloat16", "float32"]
