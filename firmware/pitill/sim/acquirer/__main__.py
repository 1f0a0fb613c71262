"""python -m pitill.sim.acquirer: the sandbox host alone (see cli.py)."""

import sys

from pitill.sim.acquirer.cli import main

sys.exit(main())
