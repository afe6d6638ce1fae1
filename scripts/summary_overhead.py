"""Run `python scripts/summary_overhead.py --helpfull` for the flags; e.g. --every=1,20,0 --steps=200 --rounds=3."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # runs from a plain checkout too

from cae.cli import summary_overhead_main  # noqa: E402

if __name__ == "__main__":
    summary_overhead_main()
