"""Run `python scripts/time_to_accuracy.py --helpfull` for the flags; --quick is the CI smoke run."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # runs from a plain checkout too

from cae.cli import time_to_accuracy_main  # noqa: E402

if __name__ == "__main__":
    time_to_accuracy_main()
