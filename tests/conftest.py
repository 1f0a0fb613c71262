"""Shared by every test directory: puts tests/ on sys.path for the plain helper modules here."""

import sys
from pathlib import Path

# --import-mode=importlib puts no test directory on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
