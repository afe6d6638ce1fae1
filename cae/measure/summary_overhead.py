"""What fetching the train/ summaries costs the autoencoder's hot loop, per --summary_every_steps value.

Runs the same training steps through summaries.training_step in one process, cadences interleaved over several
rounds (so a busy neighbour on a shared machine slows all of them alike), and prints the median images/s by wall
clock and by this process's CPU time. Example:

    python scripts/summary_overhead.py --every=1,20,0 --steps=200 --rounds=3

``0`` means never (the summary op is never fetched).
"""
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # runs from a plain checkout too

import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from cae import data, session, summaries  # noqa: E402
from cae.pretrain import PretrainConfig, build_graph  # noqa: E402

v1 = tf.compat.v1
flags.DEFINE_list("every", ["1", "20", "0"], "Cadences to compare (0: never fetch the summary op).")
flags.DEFINE_integer("steps", 200, "Timed training steps per cadence and round.")
flags.DEFINE_integer("rounds", 3, "Rounds; each runs every cadence once.")
flags.DEFINE_integer("batch_size", 128, "Images per step.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    images = data.load(download_missing=False).train.images
    cfg = PretrainConfig(batch_size=FLAGS.batch_size, projector_images=0)
    graph, t = build_graph(cfg, total_steps=FLAGS.rounds * len(FLAGS.every) * (FLAGS.steps + 1))
    results = {every: [] for every in FLAGS.every}
    with tempfile.TemporaryDirectory() as logdir, graph.as_default(), \
            v1.Session(graph=graph, config=session.config_for(cfg)) as sess:
        writer = v1.summary.FileWriter(logdir)
        sess.run(t["init"])
        feed = lambda i: {t["images"]: images[i]}  # noqa: E731
        step = 0
        for _ in range(FLAGS.rounds):
            for every in FLAGS.every:
                every_steps = int(every) or 10 ** 12
                run_step = summaries.training_step(sess, t["train_op"], t["loss"], t["train_summary"], feed, writer,
                                                   step, every_steps)
                run_step(range(FLAGS.batch_size))  # warm up outside the timing
                wall, cpu = time.perf_counter(), time.process_time()
                for s in range(FLAGS.steps):
                    start = (s * FLAGS.batch_size) % (len(images) - FLAGS.batch_size)
                    run_step(range(start, start + FLAGS.batch_size))
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                step += FLAGS.steps + 1
                results[every].append((FLAGS.steps * FLAGS.batch_size / wall, FLAGS.steps * FLAGS.batch_size / cpu))
        writer.close()
    for every, runs in results.items():
        label = every if int(every) else "never"
        print(f"--summary_every_steps={label:>5}: {statistics.median(r[0] for r in runs):7.0f} images/s "
              f"(wall), {statistics.median(r[1] for r in runs):7.0f} images per CPU-second, "
              f"median of {len(runs)}")


if __name__ == "__main__":
    app.run(main)
