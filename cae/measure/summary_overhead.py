"""What fetching the train/ summaries costs the autoencoder's hot loop, per --summary_every_steps value.

Runs the same training steps through summaries.training_step in one process, cadences interleaved over several
rounds (so a busy neighbour on a shared machine slows all of them alike), and prints the median images/s by wall
clock and by this process's CPU time. Example:

    python scripts/summary_overhead.py --every=1,20,0 --steps=200 --rounds=3

``0`` means never (the summary op is never fetched).
"""
import statistics
import tempfile
import time

import tensorflow as tf

from cae import data, session, summaries
from cae.config import PretrainConfig
from cae.errors import UserError
from cae.pretrain import build_graph

v1 = tf.compat.v1


def cadences(every):
    """--every as a list of step counts (0: never)."""
    try:
        values = [int(v) for v in every.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 0:
        raise UserError(f"--every={every}: expected comma-separated integers >= 0 (0: never)")
    return values


def run(cfg):
    """{cadence: [(images/s by wall clock, images per CPU-second) of each round]} for a SummaryOverheadConfig."""
    everies = cadences(cfg.every)
    images = data.load(download_missing=False).train.images
    model_cfg = PretrainConfig(batch_size=cfg.batch_size, projector_images=0)
    g = build_graph(model_cfg, total_steps=cfg.rounds * len(everies) * (cfg.steps + 1))
    results = {every: [] for every in everies}
    with tempfile.TemporaryDirectory() as logdir, g.graph.as_default(), \
            v1.Session(graph=g.graph, config=session.config_proto_for(model_cfg)) as sess:
        writer = v1.summary.FileWriter(logdir)
        sess.run(g.init)
        feed = lambda i: {g.model.images: images[i]}  # noqa: E731
        step = 0
        for _ in range(cfg.rounds):
            for every in everies:
                run_step = summaries.training_step(sess, g.train_op, g.loss, g.train_summary, feed, writer,
                                                   step, every or 10 ** 12)
                run_step(range(cfg.batch_size))  # warm up outside the timing
                wall, cpu = time.perf_counter(), time.process_time()
                for s in range(cfg.steps):
                    start = (s * cfg.batch_size) % (len(images) - cfg.batch_size)
                    run_step(range(start, start + cfg.batch_size))
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                step += cfg.steps + 1
                results[every].append((cfg.steps * cfg.batch_size / wall, cfg.steps * cfg.batch_size / cpu))
        writer.close()
    return results


def table(results):
    """One line per cadence: median images/s by wall clock and per CPU-second."""
    return [f"--summary_every_steps={every or 'never':>5}: {statistics.median(r[0] for r in runs):7.0f} images/s "
            f"(wall), {statistics.median(r[1] for r in runs):7.0f} images per CPU-second, median of {len(runs)}"
            for every, runs in results.items()]
