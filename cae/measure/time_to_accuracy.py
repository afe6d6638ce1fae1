"""Time to accuracy: how long a user waits for a good classifier, as whole processes on this machine.

Each row runs as the user runs it, in fresh processes with every default (TensorFlow's import, reading MNIST,
building the graph, training, the test and everything the run writes are in the time):

    workflow   scripts/pretrain_cae.py, then scripts/transfer_classify.py --checkpoint_path (README's command)
    scratch    scripts/transfer_classify.py

once per --precisions, and next to them Keras 3 (``keras_recipe``) with the same nets, epochs, batch sizes and
learning-rate schedules, read from the same config defaults. Every row runs --seeds times, seeds taking turns
(so a slow minute of a shared machine spreads over the rows); the table shows mean wall time, and mean and
minimum test accuracy.
"""

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from absl import logging

from cae.config import PRECISIONS
from cae.errors import UserError
from cae.measure import label_budget

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# --quick (CI): a few hundred images and one epoch each, only to show every row runs and is read back
QUICK_PRETRAIN = ("--max_train_examples=512", "--epochs=1", "--projector_images=0")
QUICK_TRANSFER = ("--num_labels=512", "--epochs=1", "--batch_size=64", "--projector_images=0")


def _script(name, *args):
    return [sys.executable, os.path.join(REPO, "scripts", name), *args]


def commands(row, precision, seed, work_dir, quick):
    """The processes of one row, run one after the other: [(argv, metrics.json it writes)]."""
    common = [f"--seed={seed}"] + ([f"--precision={precision}"] if precision != "float32" else [])
    pretrain = list(QUICK_PRETRAIN) if quick else []
    transfer = list(QUICK_TRANSFER) if quick else []
    cae_dir, classifier_dir = os.path.join(work_dir, "cae"), os.path.join(work_dir, "transfer")
    if row == "workflow":
        return [(_script("pretrain_cae.py", f"--train_dir={cae_dir}", *common, *pretrain), None),
                (_script("transfer_classify.py", f"--checkpoint_path={cae_dir}", f"--train_dir={classifier_dir}",
                         *common, *transfer), os.path.join(classifier_dir, "metrics.json"))]
    if row == "scratch":
        return [(_script("transfer_classify.py", f"--train_dir={classifier_dir}", *common, *transfer),
                 os.path.join(classifier_dir, "metrics.json"))]
    output = os.path.join(work_dir, "keras.json")
    keras_row = row.removeprefix("keras ")
    return [([sys.executable, "-m", "cae.measure.keras_recipe", f"--recipe={keras_row}", f"--seed={seed}",
              f"--output={output}"] + (["--quick"] if quick else []), output)]


def run_row(row, precision, seed, work_dir, quick):
    """Wall time of the row's processes together, and the test accuracy the last one wrote."""
    processes = commands(row, precision, seed, work_dir, quick)
    os.makedirs(work_dir)
    start = time.perf_counter()
    for argv, _ in processes:
        result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
        if result.returncode:
            raise UserError(f"{' '.join(argv[1:])} exited {result.returncode}: "
                            f"{(result.stderr.strip().splitlines() or [''])[-1]}")
    wall = time.perf_counter() - start
    with open(processes[-1][1]) as f:
        return wall, json.load(f)["test_accuracy"]


def rows(precisions, keras):
    return ([(row, precision) for precision in precisions for row in ("workflow", "scratch")]
            + ([("keras workflow", "float32"), ("keras scratch", "float32")] if keras else []))


def parse_precisions(text):
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names or set(names) - set(PRECISIONS):
        raise UserError(f"--precisions={text}: expected a comma-separated list of {', '.join(PRECISIONS)}")
    return names


def run(cfg):
    precisions = parse_precisions(cfg.precisions)
    if cfg.seeds < 1:
        raise UserError(f"--seeds={cfg.seeds}: expected at least 1")
    plan = rows(precisions, cfg.keras)
    runs = {key: [] for key in plan}
    with tempfile.TemporaryDirectory(prefix="cae-tta-") as scratch_dir:
        for seed in range(cfg.seeds):
            for row, precision in plan:
                work_dir = os.path.join(scratch_dir, f"{row.replace(' ', '_')}-{precision}-{seed}")
                wall, accuracy = run_row(row, precision, seed, work_dir, cfg.quick)
                runs[row, precision].append({"seed": seed, "wall_s": wall, "test_accuracy": accuracy})
                logging.info("%s (%s), seed %d: %.4f in %.1f s", row, precision, seed, accuracy, wall)
    report = {"machine": label_budget.machine(), "config": dataclasses.asdict(cfg), "rows": []}
    for (row, precision), results in runs.items():
        accuracies = [r["test_accuracy"] for r in results]
        report["rows"].append({
            "row": row, "precision": precision, "command": command_line(row, precision), "runs": results,
            "mean_wall_s": statistics.mean(r["wall_s"] for r in results),
            "mean_test_accuracy": statistics.mean(accuracies), "min_test_accuracy": min(accuracies)})
    os.makedirs(os.path.dirname(os.path.abspath(cfg.output)), exist_ok=True)
    with open(cfg.output, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    return report


def command_line(row, precision):
    """The row as a user types it (seed, train_dir and quick flags left out)."""
    flag = f" --precision={precision}" if precision != "float32" else ""
    return {
        "workflow": f"python scripts/pretrain_cae.py{flag} && python scripts/transfer_classify.py "
                    f"--checkpoint_path checkpoints/cae{flag}",
        "scratch": f"python scripts/transfer_classify.py{flag}",
        "keras workflow": "python -m cae.measure.keras_recipe --recipe=workflow",
        "keras scratch": "python -m cae.measure.keras_recipe --recipe=scratch",
    }[row]


def table(report):
    lines = ["| run | precision | wall time (mean) | test accuracy (mean, min) | command |",
             "|---|---|---:|---:|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['row']} | {r['precision']} | {r['mean_wall_s']:.1f} s | "
                     f"{100 * r['mean_test_accuracy']:.2f}%, {100 * r['min_test_accuracy']:.2f}% | "
                     f"`{r['command']}` |")
    return "\n".join(lines)
