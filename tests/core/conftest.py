"""The core tests share a fake-clock terminal (till.py), imported by name from this directory."""

import sys
from pathlib import Path

# --import-mode=importlib puts no test directory on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
