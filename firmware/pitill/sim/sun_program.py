"""The simulator's sandbox closed-loop program: its NTAG 424 DNA keys and its virtual cards.

A real program keeps its master key on its host only; these keys are public constants, for the
simulator and tests. `pitill sim` writes the meta read key to DATA_DIR/sun-meta.key for the
terminal; the sandbox acquirer host holds both keys and verifies every SUN tap (card/sun.py).
"""

from __future__ import annotations

import hashlib

from pitill.card.sun import SANDBOX_MASTER_KEY, SANDBOX_META_KEY

__all__ = ["SANDBOX_MASTER_KEY", "SANDBOX_META_KEY", "virtual_uid"]


def virtual_uid(name: str) -> bytes:
    """A stable 7-byte NXP UID (first byte 04h) for the virtual card called `name`."""
    return b"\x04" + hashlib.sha256(f"pitill virtual card {name}".encode()).digest()[:6]
