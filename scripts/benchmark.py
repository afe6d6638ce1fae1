"""Run `python scripts/benchmark.py --helpfull` for the flags; `--quick` is the CI smoke run."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # runs from a plain checkout too

from cae.cli import benchmark_main  # noqa: E402

if __name__ == "__main__":
    benchmark_main()
