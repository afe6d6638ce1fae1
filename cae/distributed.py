"""Several machines on TensorFlow's own distributed runtime: parameter servers hold the variables, workers train
one model with synchronous gradient aggregation, as the Distributed TensorFlow guide's trainers did.

Placement: the graph is built under ``replica_device_setter``: every variable on a ps task (round robin), every
other op on this worker. Variable names do not change, so the chief's checkpoints are a one-process run's.

Synchronous aggregation, as tf.compat.v1.train.SyncReplicasOptimizer does it, but with one token queue per worker:
each worker (the chief too) puts the gradients of its part of the batch into one ConditionalAccumulator per
variable (on the variable's ps); the chief's step then takes the average of all workers' gradients, applies it with
the run's own optimizer (cae.optimize, so Adam, its slots and global_step are a one-process run's) and puts one
token into each other worker's queue; a worker's step ends by taking its token. SyncReplicasOptimizer's one shared
queue lets a fast worker take a slow one's token and give two gradients to one step, so a worker could not count
the global step itself; here every worker's loop is at the chief's global step after every step (a barrier), so
each takes its own part of the same batch, as one process would split it, and early epochs' ends agree.

The ps tasks and the other workers end when the chief has written metrics.json: it puts a token into their "done"
queues (a ps runs nothing but the dequeue of its own).
"""

import contextlib
from typing import NamedTuple

import tensorflow as tf

from cae import cluster
from cae.errors import UserError

v1 = tf.compat.v1


def cluster_spec(task):
    return v1.train.ClusterSpec({"ps": list(task.ps), "worker": list(task.workers)})


def placement(task):
    """The device scope a graph is built under: variables on the ps tasks, the rest on this worker; none for one
    process."""
    if task is None:
        return contextlib.nullcontext()
    return v1.device(v1.train.replica_device_setter(ps_tasks=len(task.ps), worker_device=task.name,
                                                    cluster=cluster_spec(task)))


def part(task):
    """A worker's (index, count) of every batch (pipeline.build's ``part``); None for one process."""
    return (task.index, len(task.workers)) if task is not None else None


def _queue(name, device):
    """A FIFO queue of int64 scalars on ``device``, shared by name between every task's session."""
    with v1.device(device):
        return tf.queue.FIFOQueue(-1, tf.int64, shapes=[[]], shared_name=name, name=name)


def _done_queue(job, index):
    return _queue(f"cluster_done_{job}_{index}", "/job:ps/task:0" if job == "worker" else cluster.task_name("ps",
                                                                                                          index))


class SyncReplicas:
    """The synchronous aggregation of one graph (see the module docstring): build it before the optimizer, pass
    ``gradients_of`` to it, then ``train_op(the optimizer's op)`` is this task's training step."""

    def __init__(self, task, global_step, share):
        self.task, self.global_step, self.count = task, global_step, len(task.workers)
        self.share = share  # this worker's fraction of the batch (pipeline.Input.worker_share)
        with v1.name_scope("sync_replicas"):
            self.tokens = [_queue(f"sync_token_{i}", global_step.device) for i in range(self.count)]
            self.done = {(job, i): _done_queue(job, i) for job, hosts in (("worker", task.workers), ("ps", task.ps))
                         for i in range(len(hosts)) if (job, i) != ("worker", 0)}
            others = range(1, self.count)
            # the chief's signal that the variables are initialized (or restored): each worker's first token
            self.start = tf.group(*[self.tokens[i].enqueue(global_step.read_value()) for i in others],
                                  name="start")
            self.wait = self.tokens[task.index].dequeue(name="wait") if task.job == "worker" else None
            self.finish = tf.group(*[q.enqueue(tf.constant(1, tf.int64)) for q in self.done.values()], name="finish")
            self.finished = self.done[("worker", task.index)].dequeue() if not task.is_chief else None
        self.applied = []

    def gradients_of(self, worker_gradients):
        """``variables -> gradients`` that gives this worker's gradients (``worker_gradients(variables)``, of the
        loss on its part of the batch) to the accumulators and returns their average over every worker: weighted
        by each worker's share of the batch, so it is the gradient of the whole batch's loss."""
        def aggregated(variables):
            step = self.global_step.read_value()
            averages = []
            with v1.name_scope("sync_replicas/"):
                for variable, gradient in zip(variables, worker_gradients(variables)):
                    if gradient is None:
                        averages.append(None)
                        continue
                    with v1.device(variable.device):
                        accumulator = v1.ConditionalAccumulator(gradient.dtype, variable.shape,
                                                                shared_name=f"{variable.op.name}/grad_accum")
                    scaled = tf.convert_to_tensor(gradient) * (self.share * self.count)
                    self.applied.append(accumulator.apply_grad(scaled, local_step=step))
                    averages.append(accumulator)
                with tf.control_dependencies(self.applied):  # the chief's own gradients go in first
                    return [a if a is None else a.take_grad(self.count) for a in averages]
        return aggregated

    def train_op(self, update):
        """The chief: its gradients in, the average applied by ``update``, a token to every other worker. Another
        worker: its gradients in, then its token (the chief's update of this step is done)."""
        if self.task.is_chief:
            with tf.control_dependencies([update]):
                step = self.global_step.read_value()
                return tf.group(*[self.tokens[i].enqueue(step) for i in range(1, self.count)], name="sync_step")
        with tf.control_dependencies(self.applied):
            return tf.group(self.tokens[self.task.index].dequeue(), name="sync_step")


def check(task, cfg):
    """UserError for the settings a cluster cannot run (before anything is written)."""
    if task is None:
        return
    cluster.check_resolvable(task)
    where = f"--worker_hosts with {len(task.workers)} workers"
    if cfg.num_clones > 1:
        raise UserError(f"--num_clones={cfg.num_clones} with {where}: clones and workers do not split one batch "
                        f"together yet; drop one of them")
    for name in ("patience", "stop_at_accuracy", "semi_supervised", "cache_features"):
        if getattr(cfg, name, None):
            raise UserError(f"--{name} with {where}: a cluster trains every epoch on every worker, whole batches "
                            f"from the pipeline; drop --{name}")


class Joined(NamedTuple):
    target: str  # the Session target: "" for one process, grpc://... for this task's server
    config: object  # the ConfigProto, with the device filters of this task
    watch: cluster.Watch  # None for one process


def _server(task, config):
    try:
        return v1.train.Server(cluster_spec(task), job_name=task.job, task_index=task.index, config=config)
    except (tf.errors.OpError, ValueError) as e:
        flag = "ps_hosts" if task.job == "ps" else "worker_hosts"
        raise UserError(f"--{flag}: cannot serve {task.name} at {task.address} on this machine "
                        f"({' '.join(str(e).split())[:200]}); expected a free port of this host") from None


@contextlib.contextmanager
def joined(task, config):
    """For one process: ("", config, None). For a task: its server started, every peer answering (UserError after
    --cluster_wait_s), the Watch on; a TensorFlow error while a peer is down becomes that peer's TaskLost."""
    if task is None:
        yield Joined("", config, None)
        return
    # a worker talks to the ps tasks and itself only: another worker's death never blocks its session
    config.device_filters.extend(["/job:ps", task.name])
    server = _server(task, config)
    cluster.wait_for_peers(task)
    watch = cluster.Watch(task).start()
    try:
        yield Joined(server.target, config, watch)
    except tf.errors.OpError as e:
        lost = watch.lost()
        if lost:
            raise lost from None
        raise e
    finally:
        watch.stop()


def serve(task, config=None):
    """A ps task: serve the variables until the chief says the job is done (or a peer stops: TaskLost)."""
    config = config or v1.ConfigProto()
    with joined(task, config) as join:
        graph = tf.Graph()
        with graph.as_default():
            done = _done_queue("ps", task.index).dequeue()
        with v1.Session(join.target, graph=graph, config=join.config) as sess:
            sess.run(done)
        join.watch.stop()
        # the workers' last calls (a worker's dequeue of its own "done" token) are served here: end after them
        cluster.wait_until_gone(task.workers)
