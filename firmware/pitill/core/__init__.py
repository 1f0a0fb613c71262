"""The pure terminal: state, events, effects, screens and the transition table. No I/O here."""

# machine.py imports staffed.py and refund.py, whose handlers use machine's helpers: loading
# machine first, whichever core module is asked for, keeps that import cycle in the one order that
# works.
from pitill.core import machine as _machine  # noqa: F401
