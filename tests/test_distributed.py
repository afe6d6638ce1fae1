"""Several machines (issue #22 item 3): a 1-ps/2-worker job of local processes on free 127.0.0.1 ports trains one
model synchronously, only the chief writes, and its checkpoints are a one-process run's; a killed worker stops the
job with one line naming it and the same commands resume; a bad cluster is one error line and exit 2.

Every child process has a timeout and is killed in a finally, so a test fails rather than hangs."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from cae import cluster
from cae.config import ExportConfig, PretrainConfig, TransferConfig
from cae.errors import UserError
from cae.pretrain import pretrain
from cae.transfer import transfer

from conftest import REPO, run_cli, snapshot
from test_bad_input import assert_rejected
from test_clones import assert_same_weights, first, weights

TIMEOUT = 240  # seconds any one job may take before the test kills it and fails


def free_addresses(count):
    """``count`` distinct free 127.0.0.1 ports, as host:port (bound together, so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]
    finally:
        for s in sockets:
            s.close()


class Job:
    """A 1-ps/2-worker job of ``script`` as local processes; each task's stderr in <logs>/<task>.err."""

    def __init__(self, script, args, logs, data_dir, addresses=None, train_dirs=None, tf_config=False):
        self.script, self.args, self.logs, self.data_dir = script, args, logs, data_dir
        self.tf_config = tf_config  # each task's cluster from $TF_CONFIG instead of the flags
        self.addresses = addresses or free_addresses(3)
        self.train_dirs = train_dirs  # {task: its --train_dir}: a worker of another machine has its own
        self.processes = {}
        os.makedirs(logs, exist_ok=True)

    def flags(self, task):
        job, index = task.split(":")
        if self.tf_config:
            return [f"--train_dir={self.train_dirs[task]}"] if self.train_dirs else []
        return [f"--ps_hosts={self.addresses[0]}", f"--worker_hosts={self.addresses[1]},{self.addresses[2]}",
                f"--job_name={job}", f"--task_index={index}",
                *([f"--train_dir={self.train_dirs[task]}"] if self.train_dirs else [])]

    def start(self):
        env = dict(os.environ, CAE_DATA_DIR=self.data_dir)
        for task in ("ps:0", "worker:1", "worker:0"):  # any order works: each waits for the others
            if self.tf_config:
                job, index = task.split(":")
                env["TF_CONFIG"] = json.dumps({"cluster": {"ps": self.addresses[:1], "worker": self.addresses[1:]},
                                               "task": {"type": job, "index": int(index)}})
            with open(self.err(task), "w") as err:
                self.processes[task] = subprocess.Popen(
                    [sys.executable, os.path.join(REPO, "scripts", self.script), *self.args, *self.flags(task)],
                    stdout=subprocess.DEVNULL, stderr=err, env=env)
        return self

    def err(self, task):
        return os.path.join(self.logs, task.replace(":", "") + ".err")

    def lines(self, task):
        with open(self.err(task)) as f:
            return f.read().splitlines()

    def wait(self, timeout=TIMEOUT):
        """{task: exit status} once every task has ended; kills them all and fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        try:
            for task, process in self.processes.items():
                process.wait(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the job did not end in {timeout}s: "
                                 + "".join(f"\n{t}: {self.lines(t)[-5:]}" for t in self.processes))
        return {task: p.returncode for task, p in self.processes.items()}

    def kill(self):
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture
def jobs():
    started = []
    yield lambda *args, **kwargs: started.append(Job(*args, **kwargs).start()) or started[-1]
    for job in started:
        job.kill()


# 640 images in batches of 32: 20 steps, each worker 16 images of every batch. Constant Adam, as test_clones.
PRETRAIN = ["--max_train_examples=640", "--epochs=1", "--batch_size=32", "--lr_schedule=constant",
            "--projector_images=100", "--seed=3"]


def test_two_workers_pretrain_one_model_synchronously_and_only_the_chief_writes(tmp_path, mnist_dir, mnist, jobs):
    """The issue's target: the job ends (every task exit 0); the chief's checkpoint holds exactly a one-process
    run's variables, with every weight within 1e-5 of a one-process run of the same batches (the two halves'
    averaged gradients are the whole batch's up to float32's summation order); the other tasks wrote nothing to
    their own train_dirs; a one-process transfer_classify restores the convs bit-for-bit."""
    dirs = {task: str(tmp_path / task.replace(":", "")) for task in ("ps:0", "worker:0", "worker:1")}
    (tmp_path / "a_file").write_text("")
    dirs["worker:1"] = str(tmp_path / "a_file" / "run")  # one process would reject it: only the chief writes
    job = jobs("pretrain_cae.py", PRETRAIN, str(tmp_path / "logs"), mnist_dir, train_dirs=dirs)
    assert job.wait() == {"ps:0": 0, "worker:1": 0, "worker:0": 0}, {t: job.lines(t)[-5:] for t in dirs}
    assert not os.path.exists(dirs["worker:1"]) and not os.path.exists(dirs["ps:0"])
    chief = dirs["worker:0"]
    metrics = json.load(open(os.path.join(chief, "metrics.json")))
    assert metrics["steps"] == 20
    assert tf.train.latest_checkpoint(chief).endswith("model.ckpt-20")
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(chief))
    assert "trained to the last step; waiting for the chief to finish" in job.lines("worker:1")

    one = tmp_path / "one"
    cfg = PretrainConfig(train_dir=str(one), max_train_examples=640, epochs=1, batch_size=32,
                         lr_schedule="constant", projector_images=100, seed=3)
    pretrain(cfg, first(mnist, 640))  # the same 640 training images, and the same first 100 test images
    assert_same_weights(weights(one), weights(chief), rtol=1e-5)

    classifier = tmp_path / "classifier"
    transfer(TransferConfig(train_dir=str(classifier), checkpoint_path=chief, epochs=1, batch_size=64,
                            projector_images=0), first(mnist, 640))
    pretrained, restored = weights(chief), weights(classifier)
    for name in ("conv1/kernel", "conv1/bias", "conv2/kernel", "conv2/bias"):
        np.testing.assert_array_equal(restored[name], pretrained[name], err_msg=name)


def saved_steps(log_path, offset=0):
    if not os.path.exists(log_path):
        return []
    with open(log_path) as f:
        f.seek(offset)
        return [int(s) for s in re.findall(r"saved \S*model\.ckpt-(\d+)", f.read())]


# 1,280 labelled images in batches of 32, 3 epochs: 120 steps, a checkpoint every 10
TRANSFER = ["--num_labels=1280", "--epochs=3", "--batch_size=32", "--save_every_steps=10", "--projector_images=0",
            "--seed=5"]


def kill_after_first_checkpoint(job, log, task):
    """kill -9 ``task`` of ``job`` once the chief's ``log`` names a saved checkpoint (every task still running);
    the exit codes of every task."""
    deadline = time.monotonic() + TIMEOUT
    while not saved_steps(log) and time.monotonic() < deadline:
        assert all(p.poll() is None for p in job.processes.values()), {t: job.lines(t)[-5:] for t in job.processes}
        time.sleep(0.05)
    job.processes[task].send_signal(signal.SIGKILL)
    return job.wait()


def test_killed_worker_stops_the_job_with_one_line_and_the_same_commands_resume(tmp_path, mnist_dir, jobs):
    """transfer_classify as a job (from scratch): kill -9 worker 1 after the first checkpoint; the chief and the ps
    each end with one line naming /job:worker/task:1, exit 1; the same three commands resume from the last
    checkpoint and train to the end, and a one-process run resumes from that train_dir too."""
    train_dir = str(tmp_path / "run")
    args = [*TRANSFER, f"--train_dir={train_dir}"]
    # the other tasks as on machines of their own: labels.txt, events, checkpoints all come from the chief
    own = {"ps:0": str(tmp_path / "ps0"), "worker:1": str(tmp_path / "worker1"), "worker:0": train_dir}
    job = jobs("transfer_classify.py", args, str(tmp_path / "logs"), mnist_dir, train_dirs=own)
    log = os.path.join(train_dir, "log.txt")
    codes = kill_after_first_checkpoint(job, log, "worker:1")
    assert codes["worker:1"] == -signal.SIGKILL
    lost = f"error: /job:worker/task:1 ({job.addresses[2]}) stopped: the job cannot go on"
    for task in ("worker:0", "ps:0"):
        assert codes[task] == cluster.TASK_LOST_EXIT, job.lines(task)[-5:]
        assert job.lines(task)[-1].startswith(lost), job.lines(task)[-5:]
        assert "Traceback" not in "\n".join(job.lines(task))
    last = max(saved_steps(log))
    assert 10 <= last < 120

    offset = os.path.getsize(log)
    again = jobs("transfer_classify.py", args, str(tmp_path / "logs2"), mnist_dir, addresses=job.addresses,
                 train_dirs=own)
    assert again.wait() == {"ps:0": 0, "worker:1": 0, "worker:0": 0}, {t: again.lines(t)[-5:] for t in job.processes}
    assert not os.path.exists(own["ps:0"]) and not os.path.exists(own["worker:1"])
    assert {"labels.txt", "metrics.json", "checkpoint", "log.txt"} <= set(os.listdir(train_dir))
    with open(log) as f:
        f.seek(offset)
        assert f"resumed all variables from {train_dir}/model.ckpt-{last}" in f.read()
    assert json.load(open(os.path.join(train_dir, "metrics.json")))["steps"] == 120
    assert tf.train.latest_checkpoint(train_dir).endswith("model.ckpt-120")

    # ... and its checkpoints are a one-process run's: export takes them, and one process trains on from them
    from cae.export import export
    assert export(ExportConfig(checkpoint_path=train_dir, export_dir=str(tmp_path / "export" / "1"))).endswith(
        "model.ckpt-120")
    assert os.path.exists(tmp_path / "export" / "1" / "saved_model.pb")
    result = run_cli("transfer_classify.py", *[a.replace("--epochs=3", "--epochs=4") for a in args],
                     data_dir=mnist_dir, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resumed all variables from {train_dir}/model.ckpt-120" in result.stderr
    assert json.load(open(os.path.join(train_dir, "metrics.json")))["steps"] == 160


def test_killed_ps_stops_both_workers_with_one_line(tmp_path, mnist_dir, jobs):
    """A job whose tasks read the cluster from $TF_CONFIG; kill -9 the ps after the first checkpoint: each worker's
    last stderr line names /job:ps/task:0, exit 1, no traceback, and the train_dir's checkpoints stay readable."""
    train_dir = str(tmp_path / "run")
    job = jobs("pretrain_cae.py", [*PRETRAIN, "--epochs=6", "--save_every_steps=5", f"--train_dir={train_dir}"],
               str(tmp_path / "logs"), mnist_dir, tf_config=True)
    codes = kill_after_first_checkpoint(job, os.path.join(train_dir, "log.txt"), "ps:0")
    for task in ("worker:0", "worker:1"):
        assert codes[task] == cluster.TASK_LOST_EXIT, job.lines(task)[-5:]
        assert job.lines(task)[-1] == f"error: {cluster.lost_message('/job:ps/task:0', job.addresses[0])}"
        assert "Traceback" not in "\n".join(job.lines(task))
    assert tf.train.load_checkpoint(tf.train.latest_checkpoint(train_dir)).get_tensor("global_step") >= 5


# ---- bad input: one error line naming the flag or variable, exit 2, nothing written ----

def test_cluster_flags_parse():
    task = cluster.from_flags("h0:2222", "h1:2223,h2:2224", "worker", 1)
    assert task.workers == ("h1:2223", "h2:2224") and not task.is_chief and task.address == "h2:2224"
    assert task.peers() == [("/job:ps/task:0", "h0:2222"), ("/job:worker/task:0", "h1:2223")]
    assert cluster.from_flags("h0:2222", "h1:2223", "worker", 0).is_chief
    assert [n for n, _ in cluster.from_flags("h0:1", "h1:2,h2:3", "ps", 0).peers()] == [
        "/job:worker/task:0", "/job:worker/task:1"]
    assert cluster.from_flags(None, None, None, 0) is None
    tf_config = {"cluster": {"ps": ["h0:2222"], "worker": ["h1:2223", "h2:2224"]}, "task": {"type": "ps", "index": 0}}
    cfg = PretrainConfig()
    assert cluster.task_of(cfg, {"TF_CONFIG": json.dumps(tf_config)}) == cluster.Task(
        ("h0:2222",), ("h1:2223", "h2:2224"), "ps", 0)
    assert cluster.task_of(cfg, {}) is None


@pytest.mark.parametrize("flags, expected", [
    (("h0", "h1:2223", "worker", 0), "--ps_hosts=h0: 'h0' is not host:port; expected comma-separated host:port"),
    (("h0:2222", "h1:99999", "worker", 0), "--worker_hosts=h1:99999: 'h1:99999' is not host:port"),
    (("h0:2222", "", "worker", 0), "--worker_hosts=: expected comma-separated host:port pairs"),
    (("h0:2222", "h1:1,h1:1", "worker", 0), "h1:1 is listed twice"),
    (("h0:2222", "h0:2222", "worker", 0), "--ps_hosts and --worker_hosts both list h0:2222"),
    (("h0:2222", "h1:1,h2:2", "worker", 2), "--task_index=2: expected 0 to 1, the worker tasks"),
    (("h0:2222", "h1:1", None, 0), "--job_name=: expected ps or worker"),
    ((None, None, None, 1), "--task_index=1: expected --ps_hosts, --worker_hosts and --job_name with it"),
])
def test_bad_cluster_flags(flags, expected):
    with pytest.raises(UserError, match=re.escape(expected)):
        cluster.from_flags(*flags)


@pytest.mark.parametrize("text, expected", [
    ("{not json", "TF_CONFIG is not JSON"),
    ('{"cluster": {"ps": ["h:1"], "worker": ["h:2"], "evaluator": ["h:3"]}, "task": {"type": "worker"}}',
     "TF_CONFIG names the job 'evaluator': expected ps and worker only"),
    ('{"cluster": {"ps": ["h:1"], "worker": ["h:2"]}, "task": {"type": "chief", "index": 0}}',
     "TF_CONFIG names the job 'chief'"),
    ('{"cluster": {"ps": ["h:1"], "worker": ["h:2"]}, "task": {"type": "worker", "index": 3}}',
     "TF_CONFIG: task index 3: expected 0 to 0"),
    ('{"cluster": {"worker": ["h:2"]}, "task": {"type": "worker"}}', "no list of \"ps\" addresses"),
    ('[1, 2]', "TF_CONFIG has no \"cluster\" and \"task\" objects"),
])
def test_bad_tf_config(text, expected):
    with pytest.raises(UserError, match=re.escape(expected)):
        cluster.from_tf_config(text)


def test_a_silent_peer_is_named_after_the_wait():
    ps, worker = free_addresses(2)
    task = cluster.from_flags(ps, worker, "worker", 0, wait_s=0.5)
    with pytest.raises(UserError, match=re.escape(f"--ps_hosts: /job:ps/task:0 at {ps} did not answer within "
                                                  f"0.5 s (--cluster_wait_s)")):
        cluster.wait_for_peers(task)


@pytest.mark.parametrize("args, env, expected", [
    (["--ps_hosts=localhost", "--worker_hosts=localhost:2", "--job_name=worker"], None,
     "error: --ps_hosts=localhost: 'localhost' is not host:port"),
    (["--ps_hosts=127.0.0.1:1", "--worker_hosts=127.0.0.1:2", "--job_name=worker", "--task_index=1"], None,
     "error: --task_index=1: expected 0 to 0"),
    ([], "{oops", "error: TF_CONFIG is not JSON"),
    ([], '{"cluster": {"ps": ["h:1"], "worker": ["h:2"]}, "task": {"type": "evaluator", "index": 0}}',
     "error: TF_CONFIG names the job 'evaluator'"),
    (["--ps_hosts=no-such-host.invalid:2222", "--worker_hosts=127.0.0.1:2", "--job_name=worker"], None,
     "error: --ps_hosts: cannot resolve the host of no-such-host.invalid:2222"),
    (["--ps_hosts=PS", "--worker_hosts=WORKER", "--job_name=worker", "--cluster_wait_s=1"], None,
     "did not answer within 1 s (--cluster_wait_s)"),
])
def test_bad_cluster_through_the_script(tmp_path, mnist_dir, monkeypatch, args, env, expected):
    """Through pretrain_cae.py: one error line naming the flag or TF_CONFIG, exit 2, the train_dir untouched (the
    last case: a ps nobody runs, so nobody answers at its address)."""
    ps, worker = free_addresses(2)
    args = [a.replace("PS", ps).replace("WORKER", worker) for a in args]
    train_dir = tmp_path / "run"
    train_dir.mkdir()
    (train_dir / "notes.txt").write_text("earlier work\n")
    before = snapshot(train_dir)
    if env:
        monkeypatch.setenv("TF_CONFIG", env)
    result = run_cli("pretrain_cae.py", *args, f"--train_dir={train_dir}", "--max_train_examples=64",
                     data_dir=mnist_dir, timeout=120)
    assert_rejected(result, train_dir, before, expected)


@pytest.mark.parametrize("setting, expected", [
    ({"num_clones": 2, "clone_on_cpu": True}, "--num_clones=2 with --worker_hosts with 2 workers"),
    ({"patience": 2}, "--patience with --worker_hosts with 2 workers"),
    ({"semi_supervised": True}, "--semi_supervised with --worker_hosts"),
    ({"cache_features": True}, "--cache_features with --worker_hosts"),
])
def test_settings_a_cluster_cannot_run(setting, expected):
    from cae import distributed
    task = cluster.from_flags("127.0.0.1:1", "127.0.0.1:2,127.0.0.1:3", "worker", 0)
    with pytest.raises(UserError, match=re.escape(expected)):
        distributed.check(task, TransferConfig(**setting))
