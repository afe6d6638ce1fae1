"""Peak memory of pretraining on image folders of different sizes: does it grow with the folder?

For each folder, runs ``scripts/pretrain_cae.py --image_dir=<folder>`` in a fresh process for ``--epochs`` at
``--image_size`` with any more ``--flags`` (twice with ``--twice``: the first run decodes the folder into the
cache, the second reads the cache), each into a new train_dir under --work_dir, and prints one line per run:
images, image size, seconds, images/s and the peak resident memory of the training process (``peak_rss_mb`` of
its metrics.json) and of its whole process tree (the decode workers too). Example (the README's figures):

    python -m cae.measure.folder_memory --image_dirs=/data/15k,/data/150k --work_dir=/tmp/mem --twice

The cache is the user's (``$XDG_CACHE_HOME``): point it elsewhere to measure a first decode.
"""

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import time

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "pretrain_cae.py")


def measure(image_dir, train_dir, flags):
    """(metrics.json of one pretraining run, seconds, peak MiB of its process tree) in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.time()
    done = subprocess.run([sys.executable, SCRIPT, f"--image_dir={image_dir}", f"--train_dir={train_dir}", *flags])
    if done.returncode:
        raise SystemExit(f"pretrain_cae.py --image_dir={image_dir} failed (exit {done.returncode}): "
                         f"see its error above")
    seconds = time.time() - start
    tree = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    with open(os.path.join(train_dir, "metrics.json")) as f:
        metrics = json.load(f)
    # RUSAGE_CHILDREN is the largest of every process waited for so far: only a new maximum is this run's own.
    return metrics, seconds, (tree / 1024 if tree > before else None)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image_dirs", required=True, help="comma-separated folders, smallest first")
    parser.add_argument("--work_dir", required=True, help="where the train_dirs go (must not exist)")
    parser.add_argument("--twice", action="store_true", help="run each folder twice (decode, then from the cache)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--flags", default="", help="more of pretrain_cae.py's flags, one string")
    args = parser.parse_args(argv)
    flags = [f"--epochs={args.epochs}", f"--image_size={args.image_size}", *shlex.split(args.flags)]
    if os.path.exists(args.work_dir):
        print(f"--work_dir={args.work_dir}: exists; name a new one", file=sys.stderr)
        return 2
    print("folder | run | training images | seconds | images/s | peak RSS training process (MiB) | "
          "peak RSS any process")
    for n, image_dir in enumerate(args.image_dirs.split(",")):
        for attempt in range(2 if args.twice else 1):
            metrics, seconds, tree = measure(image_dir, os.path.join(args.work_dir, f"{n}-{attempt}"), flags)
            images = round(metrics["epoch_time_s"] * metrics["images_per_s"])
            print(f"{image_dir} | {'decode' if attempt == 0 else 'cached'} | {images} | {seconds:.0f} | "
                  f"{metrics['images_per_s']:.0f} | {metrics['peak_rss_mb']:.0f} | "
                  f"{'not above the earlier' if tree is None else f'{tree:.0f}'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
