"""The shell tests share a kit (shell_kit.py): a Terminal on fakes, imported by name from here."""

import sys
from pathlib import Path

# --import-mode=importlib puts no test directory on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
