"""Images/s of the toolkit's graph-mode steps against Keras 3 ``model.fit`` on the same model, data and batch size.

One case is one function ``case(cfg, split, sessions) -> (block, trace)``: it builds its model (entering any Session
into the ``sessions`` ExitStack) and returns ``block()``, which runs ``warmup_steps`` untimed steps then
``timed_steps`` timed ones and returns images/s by wall clock and per CPU-second, and, for the toolkit's own graphs,
``trace()``, which runs ``profile_steps`` traced steps and returns their kernel times (kernel_profile). Blocks of all
cases take turns, ``repeats`` rounds, all in this process; the table shows each case's median and its ratio to the
Keras case it is paired with. Images per CPU-second (all threads of this process) is the steadier number on a shared
machine. Peak RSS of a full-MNIST pretrain is measured in a child process (``scripts/pretrain_cae.py``), so the
benchmark's own models do not count towards it.

The traces say why a ratio is what it is: a case whose convolutions and matrix products alone, spread over every
core, take more than half of Keras's step time cannot run 2x as fast as Keras on the same kernels, whatever the
rest of the graph does (``arithmetic_ceiling_images_per_s`` in the report).
"""

import contextlib
import dataclasses
import functools
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

from cae import data, features, models, pipeline, session, summaries, train
from cae.config import IdxDataConfig, PretrainConfig, SessionConfig, TransferConfig
from cae.errors import UserError
from cae.measure import kernel_profile
from cae.pretrain import build_graph as build_autoencoder
from cae.transfer import FROZEN_HEAD_SCOPES, build_graph as build_classifier

v1 = tf.compat.v1
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def quick_config(cfg):
    """--quick: every case still runs, on 1,024 images, for a few steps."""
    return dataclasses.replace(cfg, warmup_steps=2, timed_steps=3, repeats=1, rss_pretrain_epochs=0,
                               profile_steps=min(cfg.profile_steps, 2))


def _stream_length(cfg):
    """Examples a case draws over all its blocks and its traced steps."""
    return (cfg.repeats * (cfg.warmup_steps + cfg.timed_steps) + cfg.profile_steps) * cfg.batch_size


def _index_stream(num_examples, count, seed=0):
    """``count`` example indices: shuffled epochs back to back, as training sees them."""
    epochs = -(-count // num_examples)
    return np.concatenate([train.epoch_order(num_examples, e, seed) for e in range(epochs)])[:count]


def _now():
    """Wall clock, and CPU time of this process (all its threads)."""
    return time.perf_counter(), time.process_time()


def _rates(start, cfg):
    """Images/s by wall clock and per CPU-second of one timed block that began at ``start``."""
    wall, cpu = (b - a for a, b in zip(start, _now()))
    images = cfg.timed_steps * cfg.batch_size
    return {"images_per_s": images / wall, "images_per_cpu_s": images / cpu}


def _block(step, cfg):
    """A timed block: ``warmup_steps`` untimed calls of ``step()``, then ``timed_steps`` timed ones."""
    def block():
        for _ in range(cfg.warmup_steps):
            step()
        start = _now()
        for _ in range(cfg.timed_steps):
            step()
        return _rates(start, cfg)
    return block


def _tracer(sess, fetches, cfg, feed=lambda: None):
    """A case's ``trace()``: kernel times of ``profile_steps`` more runs of ``fetches``."""
    return lambda: kernel_profile.op_times(sess, fetches, cfg.profile_steps, feed)


def _session(graph, cfg, sessions):
    """A Session closed when ``sessions`` exits; never made the default, since Keras cases run eagerly beside it."""
    sess = v1.Session(graph=graph, config=session.config_proto_for(cfg))
    sessions.callback(sess.close)
    return sess


def _training_step(g, model_cfg, cfg, sessions, feed_for):
    """The toolkit's own step (summaries.training_step: train/ summaries every --summary_every_steps, into a
    throwaway event file) on a training_run.TrainGraph -> (session, ``step(indices)``)."""
    sess = _session(g.graph, cfg, sessions)
    sess.run(g.init)
    log_dir = sessions.enter_context(tempfile.TemporaryDirectory())
    with g.graph.as_default():
        writer = v1.summary.FileWriter(log_dir)
    sessions.callback(writer.close)
    return sess, summaries.training_step(sess, g.train_op, g.loss, g.train_summary, feed_for, writer, 0,
                                         model_cfg.summary_every_steps)


def _graph_training(g, model_cfg, cfg, split, sessions):
    """Blocks of the training loop fed by the tf.data pipeline over ``split``."""
    sess, train_step = _training_step(g, model_cfg, cfg, sessions, lambda indices: None)
    g.input.start(sess, split, [_index_stream(len(split.images), _stream_length(cfg))], cfg.batch_size)
    batch = np.arange(cfg.batch_size)  # only its length counts: the pipeline brings the images
    return _block(lambda: train_step(batch), cfg), _tracer(sess, [g.train_op, g.loss], cfg)


def _batch_indices(cfg, split):
    """The example indices of each batch, as a feed_dict loop or an inference client takes them."""
    return iter(_index_stream(len(split.images), _stream_length(cfg)).reshape(-1, cfg.batch_size))


def _autoencoder_config(cfg):
    return PretrainConfig(batch_size=cfg.batch_size)


def _classifier_config(cfg):
    """conv1/conv2 frozen (not in the optimizer's var_list), fc1/logits trained: transfer's default."""
    return TransferConfig(batch_size=cfg.batch_size, trainable_scopes=FROZEN_HEAD_SCOPES).settled()


def _total_steps(cfg):
    """The schedule's length (cosine decay by default): the steps the benchmark runs."""
    return _stream_length(cfg) // cfg.batch_size


def autoencoder_training(cfg, split, sessions):
    model_cfg = _autoencoder_config(cfg)
    g = build_autoencoder(model_cfg, _total_steps(cfg))
    return _graph_training(g, model_cfg, cfg, split, sessions)


def autoencoder_training_feed_dict(cfg, split, sessions):
    """The same loop as before tf.data: a numpy batch fed through ``IMAGE_IN`` every step."""
    model_cfg = _autoencoder_config(cfg)
    g = build_autoencoder(model_cfg, _total_steps(cfg))
    feed_for = functools.partial(pipeline.Feed(g.model.images).feed, split)
    sess, train_step = _training_step(g, model_cfg, cfg, sessions, feed_for)
    batches = _batch_indices(cfg, split)
    return (_block(lambda: train_step(next(batches)), cfg),
            _tracer(sess, [g.train_op, g.loss], cfg, lambda: feed_for(next(batches))))


def frozen_classifier_training(cfg, split, sessions):
    model_cfg = _classifier_config(cfg)
    g = build_classifier(model_cfg, _total_steps(cfg))
    return _graph_training(g, model_cfg, cfg, split, sessions)


def cached_head_training(cfg, split, sessions):
    """--cache_features: fc1/logits trained on conv2 outputs computed once (untimed), fed in place of their
    tensor, so the frozen convs drop out of every step."""
    model_cfg = dataclasses.replace(_classifier_config(cfg), cache_features=True)
    g = build_classifier(model_cfg, _total_steps(cfg))
    _, frozen_output = features.cache_point(g.model, g.restored, g.trained)
    frozen_feed, cached = pipeline.Feed(frozen_output, g.input.labels), {}
    sess, train_step = _training_step(g, model_cfg, cfg, sessions, lambda i: frozen_feed.feed(cached["train"], i))
    cached["train"] = split._replace(images=features.compute(sess, frozen_output, g.model.images, split.images))
    feed_for = functools.partial(frozen_feed.feed, cached["train"])
    batches = _batch_indices(cfg, split)
    return (_block(lambda: train_step(next(batches)), cfg),
            _tracer(sess, [g.train_op, g.loss], cfg, lambda: feed_for(next(batches))))


def classifier_inference(cfg, split, sessions):
    """Class probabilities for numpy batches fed through ``IMAGE_IN``, the inference/export path."""
    graph = tf.Graph()
    with graph.as_default():
        t = models.classifier(models.image_input())
        init = v1.global_variables_initializer()
    sess = _session(graph, cfg, sessions)
    sess.run(init)
    predict = sess.make_callable(t.probabilities, feed_list=[t.images])
    batches = _batch_indices(cfg, split)
    return (_block(lambda: predict(split.images[next(batches)]), cfg),
            _tracer(sess, t.probabilities, cfg, lambda: {t.images: split.images[next(batches)]}))


def _keras_clock(cfg, keras, result):
    """A callback timing batches ``warmup_steps`` to ``warmup_steps + timed_steps`` into ``result``, then stopping
    fit (which would otherwise finish its epoch)."""
    seen, start = [0], [_now()]  # start is reset when the warm-up ends

    def tick(batch, logs=None):
        seen[0] += 1
        if seen[0] == cfg.warmup_steps:
            start[0] = _now()
        elif seen[0] == cfg.warmup_steps + cfg.timed_steps:
            result.update(_rates(start[0], cfg))
            callback.model.stop_training = True

    callback = keras.callbacks.LambdaCallback(on_train_batch_end=tick, on_predict_batch_end=tick)
    return callback


def _keras_adam(model_cfg, cfg):
    from cae.measure import keras_baseline
    return keras_baseline.adam(model_cfg.learning_rate, model_cfg.lr_schedule, _total_steps(cfg))


def _keras_fit(model, cfg, split, targets):
    import keras
    epochs = -(-(cfg.warmup_steps + cfg.timed_steps) // train.steps_per_epoch(len(split.images), cfg.batch_size))

    def block():
        result = {}
        model.fit(split.images, targets, batch_size=cfg.batch_size, epochs=epochs, shuffle=True, verbose=0,
                  callbacks=[_keras_clock(cfg, keras, result)])
        return result
    return block


def keras_autoencoder_training(cfg, split, sessions):
    from cae.measure import keras_baseline
    optimizer = _keras_adam(_autoencoder_config(cfg), cfg)
    return _keras_fit(keras_baseline.autoencoder(optimizer), cfg, split, split.images), None


def keras_frozen_classifier_training(cfg, split, sessions):
    from cae.measure import keras_baseline
    optimizer = _keras_adam(_classifier_config(cfg), cfg)
    return _keras_fit(keras_baseline.classifier(optimizer, frozen_convs=True), cfg, split, split.labels), None


def keras_classifier_inference(cfg, split, sessions):
    import keras
    from cae.measure import keras_baseline
    model = keras_baseline.classifier(_keras_adam(_classifier_config(cfg), cfg))
    batches = _batch_indices(cfg, split)
    steps = cfg.warmup_steps + cfg.timed_steps

    def block():
        result = {}
        images = split.images[np.concatenate([next(batches) for _ in range(steps)])]
        model.predict(images, batch_size=cfg.batch_size, verbose=0, callbacks=[_keras_clock(cfg, keras, result)])
        return result
    return block, None


# (name, case, the Keras case it is compared with).
CASES = [
    ("autoencoder training (tf.data)", autoencoder_training, "keras autoencoder model.fit"),
    ("autoencoder training (feed_dict)", autoencoder_training_feed_dict, "keras autoencoder model.fit"),
    ("frozen-conv classifier training", frozen_classifier_training, "keras frozen-conv classifier model.fit"),
    ("head training on cached features", cached_head_training, "keras frozen-conv classifier model.fit"),
    ("classifier inference (IMAGE_IN feed)", classifier_inference, "keras classifier model.predict"),
    ("keras autoencoder model.fit", keras_autoencoder_training, None),
    ("keras frozen-conv classifier model.fit", keras_frozen_classifier_training, None),
    ("keras classifier model.predict", keras_classifier_inference, None),
]


def _group_flags(cfg, group):
    """``--name=value`` for cfg's settings of a shared group (IdxDataConfig, SessionConfig) that are set."""
    return [f"--{f.name}={getattr(cfg, f.name)}" for f in dataclasses.fields(group) if getattr(cfg, f.name) is not None]


def pretrain_peak_rss_mb(cfg):
    """Peak RSS of ``scripts/pretrain_cae.py`` on the full dataset in a child process (its ru_maxrss, in MiB),
    given the benchmark's data and session flags."""
    with tempfile.TemporaryDirectory() as train_dir:
        command = [sys.executable, os.path.join(REPO, "scripts", "pretrain_cae.py"),
                   f"--epochs={cfg.rss_pretrain_epochs}", f"--train_dir={train_dir}",
                   *_group_flags(cfg, IdxDataConfig), *_group_flags(cfg, SessionConfig)]
        start = time.time()
        child = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wall = time.time() - start
    if child.returncode:
        last = (child.stderr.strip().splitlines() or ["no message"])[-1]
        raise UserError(f"--rss_pretrain_epochs: the pretrain child {' '.join(command[1:3])} failed ({last})")
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, wall


def run(cfg):
    """Run every case; return the report dict (also written to cfg.output as JSON)."""
    if cfg.quick:
        cfg = quick_config(cfg)
    for flag in ("batch_size", "timed_steps", "repeats", "warmup_steps", "rss_pretrain_epochs", "profile_steps"):
        smallest = 0 if flag in ("warmup_steps", "rss_pretrain_epochs", "profile_steps") else 1
        if getattr(cfg, flag) < smallest:
            raise UserError(f"--{flag}={getattr(cfg, flag)}: expected an integer >= {smallest}")
    if cfg.intra_op_threads or cfg.inter_op_threads:  # Keras runs eagerly: its threads are set process-wide
        tf.config.threading.set_intra_op_parallelism_threads(cfg.intra_op_threads)
        tf.config.threading.set_inter_op_parallelism_threads(cfg.inter_op_threads)
    # The child goes first, while this process is small: a child's ru_maxrss also counts the resident pages of
    # the parent it was forked from.
    pretrain_rss = pretrain_peak_rss_mb(cfg) if cfg.rss_pretrain_epochs else None
    split = data.load(cfg.data_dir, download_missing=cfg.download, dataset=cfg.dataset).train
    if cfg.quick:
        split = data.Split(split.images[:1024], split.labels[:1024])
    # Round-robin: block r of every case runs before block r + 1 of any, so a busy neighbour on a shared
    # machine slows all cases alike rather than whichever happened to run then.
    with contextlib.ExitStack() as sessions:
        cases = {name: case(cfg, split, sessions) for name, case, _ in CASES}
        runs = {name: [] for name in cases}
        for _ in range(cfg.repeats):
            for name, (block, _) in cases.items():
                runs[name].append(block())
        traces = {name: trace() for name, (_, trace) in cases.items() if trace and cfg.profile_steps}
    results = {}
    for name in runs:
        results[name] = {key: statistics.median(run[key] for run in runs[name])
                         for key in ("images_per_s", "images_per_cpu_s")}
        results[name]["runs"] = runs[name]
    for name, _, baseline_name in CASES:
        if baseline_name:
            for key in ("images_per_s", "images_per_cpu_s"):
                results[name][f"vs_keras_{key}"] = results[name][key] / results[baseline_name][key]
    profiles = {name: kernel_profile.summary(times, cfg.batch_size, os.cpu_count()) for name, times in traces.items()}
    for name, _, baseline_name in CASES:
        ceiling = profiles.get(name, {}).get("arithmetic_ceiling_images_per_s")
        if baseline_name and ceiling:
            profiles[name]["ceiling_vs_keras_images_per_s"] = ceiling / results[baseline_name]["images_per_s"]
    report = {"config": dataclasses.asdict(cfg), "results": results, "profiles": profiles,
              "benchmark_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                          "tensorflow": tf.__version__, "python": platform.python_version()}}
    if pretrain_rss:
        report["pretrain_peak_rss_mb"], report["pretrain_wall_s"] = pretrain_rss
    import keras
    report["machine"]["keras"] = keras.__version__
    if os.path.dirname(cfg.output):
        os.makedirs(os.path.dirname(cfg.output), exist_ok=True)
    train.write_json(cfg.output, report)
    return report


def table(report):
    """The report as a markdown table: medians by wall clock and per CPU-second, and ratios to Keras 3."""
    lines = ["| case | images/s | images/CPU-s | wall-clock runs | vs Keras 3 (wall) | vs Keras 3 (CPU) |",
             "|---|---:|---:|---|---:|---:|"]
    for name, r in report["results"].items():
        runs = ", ".join(f"{run['images_per_s']:,.0f}" for run in r["runs"])
        ratios = [f"{r[k]:.2f}x" if k in r else "" for k in ("vs_keras_images_per_s", "vs_keras_images_per_cpu_s")]
        lines.append(f"| {name} | {r['images_per_s']:,.0f} | {r['images_per_cpu_s']:,.0f} | {runs} | "
                     f"{' | '.join(ratios)} |")
    return "\n".join(lines)


def profile_table(report):
    """Where each traced case's kernel time goes, per step, and its arithmetic ceiling against Keras 3."""
    kinds = [name for name, _ in kernel_profile.KINDS] + ["other"]
    lines = ["| case | kernel ms/step | " + " | ".join(kinds) + " | arithmetic ceiling (images/s) | vs Keras 3 |",
             "|---|---:|" + "---:|" * len(kinds) + "---:|---:|"]
    for name, p in report["profiles"].items():
        shares = [f"{p['kinds_us'].get(k, 0) / p['total_us']:.0%}" for k in kinds]
        ceiling = p["arithmetic_ceiling_images_per_s"]
        ratio = p.get("ceiling_vs_keras_images_per_s")
        lines.append(f"| {name} | {p['total_us'] / 1000:.2f} | {' | '.join(shares)} | "
                     f"{f'{ceiling:,.0f}' if ceiling else ''} | {f'{ratio:.2f}x' if ratio else ''} |")
    return "\n".join(lines)
