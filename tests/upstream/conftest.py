"""Setup of the upstream tests. Every network test talks to a real AcquirerHost on 127.0.0.1.

--import-mode=importlib puts no test directory on sys.path; the plain helpers of this directory
(upstream_helpers.py) are imported by name once this directory is on it.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
