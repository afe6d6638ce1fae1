"""A user's work survives: SIGKILL at random points and the same command resumes to the very same weights;
SIGINT/SIGTERM save and exit 130; a NaN loss stops without touching the last good checkpoint; same seed, same
losses. All through the real scripts on a few hundred real MNIST images."""

import os
import random
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from conftest import REPO, run_cli, save_autoencoder_checkpoint, snapshot, stderr_lines


def start(script, args, log_path, data_dir):
    env = dict(os.environ, CAE_DATA_DIR=data_dir)
    with open(log_path, "w") as log:
        return subprocess.Popen([sys.executable, os.path.join(REPO, "scripts", script), *args],
                                stdout=subprocess.DEVNULL, stderr=log, env=env)


def log_offset(train_dir):
    """Where the next run's lines will start in the train_dir's log.txt (each run appends to it)."""
    path = os.path.join(train_dir, "log.txt")
    return os.path.getsize(path) if os.path.exists(path) else 0


def wait_for(process, log_path, pattern, count=1, timeout=300, train_dir=None, offset=0):
    """Wait until the process's stderr log (or, with ``train_dir``, its log.txt from ``offset`` on: checkpoint
    lines go there only) holds ``count`` lines matching pattern; fail if the process exits first."""
    watched = os.path.join(train_dir, "log.txt") if train_dir else log_path
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(watched):
            with open(watched) as f:
                f.seek(offset)
                if len(re.findall(pattern, f.read())) >= count:
                    return
        assert process.poll() is None, f"exited {process.returncode} early: {open(log_path).read()[-3000:]}"
        time.sleep(0.05)
    raise AssertionError(f"no {pattern!r} in {log_path} after {timeout}s")


def scalars(directory, tag):
    """(step, value) pairs of a tag as TensorBoard shows them: orphaned steps of killed runs purged."""
    accumulator = event_accumulator.EventAccumulator(str(directory), size_guidance={event_accumulator.SCALARS: 0})
    accumulator.Reload()
    return [(e.step, e.value) for e in accumulator.Scalars(tag)]


def read_all(checkpoint):
    """Every tensor of a checkpoint; fails on any unreadable or corrupt one."""
    reader = tf.train.load_checkpoint(checkpoint)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def assert_every_checkpoint_readable(train_dir):
    state = tf.train.get_checkpoint_state(str(train_dir))
    assert state.all_model_checkpoint_paths[-1] == state.model_checkpoint_path
    for path in state.all_model_checkpoint_paths:
        assert read_all(path)


def assert_same_tensors(got, want):
    assert sorted(got) == sorted(want)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def step_of(checkpoint):
    return int(checkpoint.rsplit("-", 1)[1])


# 320 images in batches of 32: 10 steps and one checkpoint per epoch. Each attempt below runs at most about 3
# epochs before its kill, so 12 epochs cannot finish early even on a fast machine.
PRETRAIN = ["--max_train_examples=320", "--batch_size=32", "--epochs=12", "--keep_checkpoints=3", "--seed=3",
            "--summary_every_steps=1"]
PRETRAIN_STEPS = 120


def test_sigkill_at_random_points_then_resume_ends_bit_for_bit_like_an_uninterrupted_run(tmp_path, mnist_dir):
    reference = tmp_path / "reference"
    assert run_cli("pretrain_cae.py", *PRETRAIN, f"--train_dir={reference}", data_dir=mnist_dir).returncode == 0

    killed = tmp_path / "killed"
    args = [*PRETRAIN, f"--train_dir={killed}"]
    rng = random.Random(6)
    resumed_at = [0]
    for attempt in range(3):
        log = tmp_path / f"attempt{attempt}.log"
        offset = log_offset(killed)
        process = start("pretrain_cae.py", args, log, mnist_dir)
        # Once this attempt has saved 1 or 2 checkpoints, kill it after a random delay: in a step, an
        # evaluation, an event write or a checkpoint write.
        wait_for(process, log, r"saved .*model\.ckpt-\d+", count=rng.randint(1, 2), train_dir=killed, offset=offset)
        time.sleep(rng.uniform(0.0, 0.3))
        process.send_signal(signal.SIGKILL)
        assert process.wait() == -signal.SIGKILL
        if attempt:
            assert f"resuming from {killed}/model.ckpt-{resumed_at[-1]} at step {resumed_at[-1]}" in log.read_text()
        assert_every_checkpoint_readable(killed)
        resumed_at.append(step_of(tf.train.latest_checkpoint(str(killed))))
    assert resumed_at == sorted(set(resumed_at)) and resumed_at[-1] < PRETRAIN_STEPS, resumed_at  # never back

    final = run_cli("pretrain_cae.py", *args, data_dir=mnist_dir)
    assert final.returncode == 0, final.stderr[-3000:]
    assert f"resuming from {killed}/model.ckpt-{resumed_at[-1]} at step {resumed_at[-1]}" in final.stderr
    assert_every_checkpoint_readable(killed)
    # Weights, Adam's slots and beta powers, global_step: identical to the run that was never killed.
    latest = tf.train.latest_checkpoint(str(killed))
    assert step_of(latest) == PRETRAIN_STEPS
    assert_same_tensors(read_all(latest), read_all(tf.train.latest_checkpoint(str(reference))))
    # One loss per step on the TensorBoard axis, the same losses as the uninterrupted run.
    losses = scalars(killed, "train/loss")
    assert [step for step, _ in losses] == list(range(1, PRETRAIN_STEPS + 1))
    assert losses == scalars(reference, "train/loss")
    assert [step for step, _ in scalars(killed, "val/reconstruction_loss")] == list(range(10, PRETRAIN_STEPS + 1, 10))


# 640 labelled images in batches of 16 for 5 epochs: 200 steps, every layer trained, one-cycle learning rate.
def transfer_args(checkpoint):
    return [f"--checkpoint_path={checkpoint}", "--trainable_scopes=conv1,conv2,fc1,logits", "--num_labels=640",
            "--batch_size=16", "--epochs=5", "--learning_rate=1e-3", "--lr_schedule=one_cycle", "--seed=4",
            "--summary_every_steps=1"]


TRANSFER_STEPS = 200


@pytest.fixture(scope="module")
def transfer_reference(tmp_path_factory, mnist_dir):
    """An autoencoder checkpoint and one uninterrupted transfer run from it."""
    root = tmp_path_factory.mktemp("transfer")
    checkpoint = save_autoencoder_checkpoint(root / "cae")
    result = run_cli("transfer_classify.py", *transfer_args(checkpoint), f"--train_dir={root / 'reference'}",
                     data_dir=mnist_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return checkpoint, root / "reference"


def test_same_seed_same_losses_for_200_steps(tmp_path, mnist_dir, transfer_reference):
    checkpoint, reference = transfer_reference
    again = run_cli("transfer_classify.py", *transfer_args(checkpoint), f"--train_dir={tmp_path / 'again'}",
                    data_dir=mnist_dir)
    assert again.returncode == 0, again.stderr[-3000:]
    losses = scalars(tmp_path / "again", "train/loss")
    assert [step for step, _ in losses] == list(range(1, TRANSFER_STEPS + 1))
    assert losses == scalars(reference, "train/loss")  # exact float equality, step by step
    # The seed really drives the run: another seed gives other losses from the first step on.
    other = run_cli("transfer_classify.py", *transfer_args(checkpoint), "--seed=5", "--epochs=1",
                    f"--train_dir={tmp_path / 'other'}", data_dir=mnist_dir)
    assert other.returncode == 0, other.stderr[-3000:]
    other_losses = scalars(tmp_path / "other", "train/loss")
    assert all(a != b for (_, a), (_, b) in zip(other_losses[:10], losses[:10]))


def test_sigint_and_sigterm_save_and_exit_130_then_resume_ignores_checkpoint_path(tmp_path, mnist_dir,
                                                                                   transfer_reference):
    checkpoint, reference = transfer_reference
    run_dir = tmp_path / "run"
    args = [*transfer_args(checkpoint), f"--train_dir={run_dir}"]
    rng = random.Random(7)
    stopped_at = [0]
    for attempt, signum in enumerate([signal.SIGINT, signal.SIGTERM]):
        log = tmp_path / f"attempt{attempt}.log"
        offset = log_offset(run_dir)
        process = start("transfer_classify.py", args, log, mnist_dir)
        wait_for(process, log, r"saved .*model\.ckpt-\d+", train_dir=run_dir, offset=offset)
        time.sleep(rng.uniform(0.0, 0.1))  # mid-epoch, usually: the resume must continue that epoch's batch order
        process.send_signal(signum)
        assert process.wait() == 130
        text = log.read_text()
        if attempt:
            assert (f"resumed all variables from {run_dir}/model.ckpt-{stopped_at[-1]} "
                    f"(--checkpoint_path {checkpoint} ignored)") in text
        step = step_of(tf.train.latest_checkpoint(str(run_dir)))
        assert text.splitlines()[-1] == (f"interrupted: stopped by {signum.name} at step {step}, checkpoint saved; "
                                         f"run the same command again to resume")
        assert "Traceback" not in text
        assert step > stopped_at[-1]
        assert [s for s, _ in scalars(run_dir, "train/loss")] == list(range(1, step + 1))  # events were flushed
        stopped_at.append(step)

    final = run_cli("transfer_classify.py", *args, data_dir=mnist_dir)
    assert final.returncode == 0, final.stderr[-3000:]
    assert_every_checkpoint_readable(run_dir)
    assert_same_tensors(read_all(tf.train.latest_checkpoint(str(run_dir))),
                        read_all(tf.train.latest_checkpoint(str(reference))))
    assert scalars(run_dir, "train/loss") == scalars(reference, "train/loss")
    # The resumed one-cycle schedule is the uninterrupted one, step for step: up for 60 steps (30% of 200), then
    # down to 0. Entry i is the rate step i trained with, logged at global step i + 1.
    rates = scalars(reference, "train/learning_rate")
    assert scalars(run_dir, "train/learning_rate") == rates
    values = [value for _, value in rates]
    peak = values.index(max(values))
    assert peak == 60 and values[0] < max(values) / 20 and values[-1] < max(values) / 1000


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, mnist_dir):
    args = ["--max_train_examples=320", "--batch_size=32", "--summary_every_steps=1",
            f"--train_dir={tmp_path / 'run'}"]
    assert run_cli("pretrain_cae.py", *args, "--epochs=1", data_dir=mnist_dir).returncode == 0
    before = snapshot(tmp_path / "run")
    # Adam moves every weight by about the learning rate per step: 1e30 overflows float32 within a few steps.
    result = run_cli("pretrain_cae.py", *args, "--epochs=2", "--learning_rate=1e30", data_dir=mnist_dir)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in stderr_lines(result) if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0] == stderr_lines(result)[-1]
    match = re.fullmatch(r"error: training loss became (nan|inf) at step (\d+): stopped without saving, the last "
                         r"checkpoint of the train_dir is the last good one \(lower --learning_rate\?\)", errors[0])
    assert match and 10 < int(match.group(2)) <= 20, errors
    after = snapshot(tmp_path / "run")
    log = before.pop("log.txt")
    assert after["log.txt"].startswith(log)  # the run log is only appended to
    assert {name: after[name] for name in before} == before  # checkpoints, state file, events: untouched
    assert all(name.startswith("events.out.tfevents.") for name in set(after) - set(before) - {"log.txt"})
    assert tf.train.latest_checkpoint(str(tmp_path / "run")).endswith("model.ckpt-10")
