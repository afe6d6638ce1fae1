"""Run `python scripts/extract_features.py --helpfull` for the flags."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # runs from a plain checkout too

from cae.cli import extract_main  # noqa: E402

if __name__ == "__main__":
    extract_main()
