"""The reliability suite's plain helpers (reliability_kit.py) are imported by name from here.

--import-mode=importlib puts no test directory on sys.path, so this directory is added once.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
