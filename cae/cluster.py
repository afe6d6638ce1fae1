"""Which task of a cluster this process is, from the Distributed TensorFlow guide's flags or $TF_CONFIG, and the
watch over the other tasks. No TensorFlow here: a bad cluster is one line before TensorFlow is imported or
anything is written.

    --ps_hosts=h:p,...  --worker_hosts=h:p,...  --job_name=ps|worker  --task_index=i
    TF_CONFIG='{"cluster": {"ps": [...], "worker": [...]}, "task": {"type": "worker", "index": 0}}'

The flags win where both are given. Worker 0 is the chief: it alone writes to the train_dir.

A killed task cannot tell anyone, and a blocked TensorFlow call may never return (the chief waits for a dead
worker's gradient forever), so every task watches the addresses of the others (``Watch``): a task whose port
refuses connections has stopped, and the job stops with one line naming it.
"""

import json
import os
import socket
import sys
import threading
import time
from typing import NamedTuple

from cae.errors import UserError

JOBS = ("ps", "worker")
EXAMPLE = {"ps_hosts": "127.0.0.1:2222", "worker_hosts": "127.0.0.1:2223,127.0.0.1:2224"}
TASK_LOST_EXIT = 1  # a task of the job stopped: not the user's input (2), not an interrupt (130)


class Task(NamedTuple):
    """One task of a cluster: the jobs' host:port lists and which of them this process is."""
    ps: tuple
    workers: tuple
    job: str
    index: int
    wait_s: float = 60.0  # how long to wait at start for every other task to answer

    @property
    def is_chief(self):
        return self.job == "worker" and self.index == 0

    @property
    def name(self):
        return task_name(self.job, self.index)

    @property
    def address(self):
        return self.hosts(self.job)[self.index]

    def hosts(self, job):
        return self.ps if job == "ps" else self.workers

    def peers(self):
        """(name, address) of every other task this one depends on: a worker needs every ps and the chief (the
        chief every worker: it waits for their gradients); a ps, every worker (to stop with them)."""
        ps = [(task_name("ps", i), a) for i, a in enumerate(self.ps)]
        workers = [(task_name("worker", i), a) for i, a in enumerate(self.workers)]
        if self.job == "ps":
            return workers
        return ps + (workers[1:] if self.is_chief else workers[:1])

def task_name(job, index):
    return f"/job:{job}/task:{index}"


class TaskLost(Exception):
    """Another task of the cluster stopped: the message names it and says how to resume."""


def lost_message(name, address):
    return (f"{name} ({address}) stopped: the job cannot go on; start every task again with the same commands "
            f"to resume from the last checkpoint")


def _hosts(value, flag):
    """'h:p,h:p' -> ('h:p', ...); UserError naming ``flag`` unless every entry is host:port with a port 1-65535."""
    expected = f"expected comma-separated host:port pairs (e.g. --{flag}={EXAMPLE[flag]})"
    entries = [part.strip() for part in (value or "").split(",")]
    if not value or not all(entries):
        raise UserError(f"--{flag}={value or ''}: {expected}")
    for entry in entries:
        host, _, port = entry.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise UserError(f"--{flag}={value}: {entry!r} is not host:port; {expected}")
    duplicated = sorted({e for e in entries if entries.count(e) > 1})
    if duplicated:
        raise UserError(f"--{flag}={value}: {duplicated[0]} is listed twice; expected one address per task")
    return tuple(entries)


def from_flags(ps_hosts, worker_hosts, job_name, task_index, wait_s=60.0):
    """The Task of the guide's flags, or None where no cluster flag is given (one process); UserError where they
    do not name one task of a cluster with at least one ps and one worker."""
    if not (ps_hosts or worker_hosts or job_name):
        if task_index:
            raise UserError(f"--task_index={task_index}: expected --ps_hosts, --worker_hosts and --job_name with it")
        return None
    ps, workers = _hosts(ps_hosts, "ps_hosts"), _hosts(worker_hosts, "worker_hosts")
    both = sorted(set(ps) & set(workers))
    if both:
        raise UserError(f"--ps_hosts and --worker_hosts both list {both[0]}: expected one address per task")
    if job_name not in JOBS:
        raise UserError(f"--job_name={job_name or ''}: expected ps or worker with --ps_hosts and --worker_hosts")
    hosts = ps if job_name == "ps" else workers
    if not 0 <= task_index < len(hosts):
        raise UserError(f"--task_index={task_index}: expected 0 to {len(hosts) - 1}, the {job_name} tasks that "
                        f"--{job_name if job_name == 'ps' else 'worker'}_hosts lists")
    return Task(ps, workers, job_name, task_index, wait_s)


def from_tf_config(text, wait_s=60.0):
    """The Task of a $TF_CONFIG (JSON: cluster {ps: [...], worker: [...]}, task {type, index}); UserError naming
    TF_CONFIG where it is not JSON of that shape."""
    example = ('expected JSON such as {"cluster": {"ps": ["127.0.0.1:2222"], "worker": ["127.0.0.1:2223"]}, '
               '"task": {"type": "worker", "index": 0}}')
    try:
        spec = json.loads(text)
    except ValueError as e:
        raise UserError(f"TF_CONFIG is not JSON ({e}): {example}") from None
    cluster, task = (spec.get("cluster"), spec.get("task")) if isinstance(spec, dict) else (None, None)
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise UserError(f"TF_CONFIG has no \"cluster\" and \"task\" objects: {example}")
    unknown = sorted(set(cluster) - set(JOBS)) + ([task.get("type")] if task.get("type") not in JOBS else [])
    if unknown:
        raise UserError(f"TF_CONFIG names the job {unknown[0]!r}: expected ps and worker only (worker 0 is the "
                        f"chief)")
    lists = {}
    for job in JOBS:
        hosts = cluster.get(job)
        if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
            raise UserError(f"TF_CONFIG's cluster has no list of \"{job}\" addresses: {example}")
        lists[job] = ",".join(hosts)
    index = task.get("index", 0)
    if not isinstance(index, int) or isinstance(index, bool):
        raise UserError(f"TF_CONFIG's task index {index!r}: expected an integer")
    try:
        return from_flags(lists["ps"], lists["worker"], task["type"], index, wait_s)
    except UserError as e:  # name the variable, not flags the user did not give
        raise UserError(f"TF_CONFIG: {e}".replace("--ps_hosts=", "ps ").replace("--worker_hosts=", "worker ")
                        .replace("--task_index=", "task index ")) from None


def task_of(cfg, environ=None):
    """This process's Task from a config's cluster flags, else from $TF_CONFIG; None for one process."""
    environ = os.environ if environ is None else environ
    if cfg.ps_hosts or cfg.worker_hosts or cfg.job_name or cfg.task_index:
        return from_flags(cfg.ps_hosts, cfg.worker_hosts, cfg.job_name, cfg.task_index, cfg.cluster_wait_s)
    if environ.get("TF_CONFIG"):
        return from_tf_config(environ["TF_CONFIG"], cfg.cluster_wait_s)
    return None


def check_resolvable(task):
    """UserError where an address's host does not resolve (a typo stops at once, not after the wait)."""
    for job in JOBS:
        for address in task.hosts(job):
            host = address.rpartition(":")[0].strip("[]")
            try:
                socket.getaddrinfo(host, None)
            except OSError:
                flag = "ps_hosts" if job == "ps" else "worker_hosts"
                raise UserError(f"--{flag}: cannot resolve the host of {address}; expected a host name or IP "
                                f"address this machine can reach") from None


def answers(address, timeout=1.0):
    """Whether something accepts TCP connections at host:port (a task's gRPC server does while it lives)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_peers(task, clock=time.monotonic, sleep=time.sleep):
    """Return once every task this one needs answers; UserError naming the first silent one after task.wait_s."""
    deadline = clock() + task.wait_s
    silent = [(n, a) for n, a in task.peers()]
    while True:
        silent = [(n, a) for n, a in silent if not answers(a)]
        if not silent:
            return
        if clock() >= deadline:
            name, address = silent[0]
            flag = "ps_hosts" if name.startswith("/job:ps") else "worker_hosts"
            raise UserError(f"--{flag}: {name} at {address} did not answer within {task.wait_s:g} s "
                            f"(--cluster_wait_s); expected every task of the cluster running")
        sleep(0.2)


def wait_until_gone(addresses, timeout=30.0):
    """Return once nothing answers at any of ``addresses`` (their tasks have ended), or after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while any(answers(a, timeout=0.5) for a in addresses) and time.monotonic() < deadline:
        time.sleep(0.2)


class Watch:
    """A daemon thread that probes the peers every ``interval`` s once started. A peer that stops answering
    (twice in a row) ends this process: one line on stderr and exit TASK_LOST_EXIT, unless ``stop()`` came first
    (the job's normal end). ``lost(timeout)`` is the same check from the main thread, after a TensorFlow error."""

    def __init__(self, task, interval=1.0, grace=3.0):
        self.task, self.interval, self.grace = task, interval, grace
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="cluster-watch", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stopped.set()

    def silent_peer(self):
        """(name, address) of a peer that does not answer twice in a row, or None."""
        for name, address in self.task.peers():
            if not answers(address) and not answers(address):
                return name, address
        return None

    def lost(self, timeout=5.0):
        """The TaskLost of a peer found silent within ``timeout`` s, or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            silent = self.silent_peer()
            if silent:
                return TaskLost(lost_message(*silent))
            time.sleep(0.2)
        return None

    def _watch(self):
        while not self._stopped.wait(self.interval):
            silent = self.silent_peer()
            # a peer that ends with the job ends a moment before this task does: give our end a grace period
            if silent and not self._stopped.wait(self.grace):
                sys.stdout.flush()
                print(f"error: {lost_message(*silent)}", file=sys.stderr, flush=True)
                os._exit(TASK_LOST_EXIT)
