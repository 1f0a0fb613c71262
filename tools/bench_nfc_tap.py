"""Bench tap-to-screen with the emulated PN532: from a tag entering the field to the terminal
leaving SWIPE CARD (nfcpy's poll and read over a pty, SUN decryption, the journal's counter
lookup, the step and its screen), in the simulator with its sandbox host on loopback.

A tap waits for the reader's next poll, so the figure is about one poll interval at worst plus
the read: compare --poll-s 0.1 (the default [reader] nfc_poll_s) with a short one. The tag is put
down just after a poll (right after the previous one is lifted): the worst alignment.

    .venv/bin/python tools/bench_nfc_tap.py [--poll-s 0.1] [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pitill.config import Config
from pitill.core.state import Phase
from pitill.core.types import Key
from pitill.sim import nfc_taps
from pitill.sim.driver import Driver
from pitill.sim.pn532_emulator import UidTag
from pitill.sim.world import SimWorld

WAIT_S = 10.0
SETTLED = (Phase.APPROVED, Phase.DECLINED)
UID = bytes.fromhex("04A1B2C3D4E5F6")


async def _bench(rounds: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {"UID-only tag": [], "NTAG 424 DNA (SUN)": []}
    with tempfile.TemporaryDirectory() as tmp:
        world = SimWorld(Config(), Path(tmp))
        await world.start()
        try:
            driver = Driver(world)
            terminal, nfc = world.terminal, world.nfc
            assert terminal is not None and nfc is not None
            await driver.until(lambda: driver.phase is Phase.IDLE, WAIT_S)
            loop = asyncio.get_running_loop()
            for _ in range(rounds):
                for label in results:
                    await driver.type(Key("1"), Key.OK)
                    await driver.until(lambda: driver.phase is Phase.AWAIT_CARD, WAIT_S)
                    await loop.run_in_executor(None, nfc.emulator.lift)
                    left = asyncio.Event()

                    def listener(event: str, fields: dict[str, Any], left: Any = left) -> None:
                        if event == "state" and fields.get("was") == "AWAIT_CARD":
                            left.set()

                    terminal.event_log.listeners.append(listener)
                    tag = UidTag(UID) if label.startswith("UID") else nfc.card("alice")
                    start = time.monotonic()
                    nfc.emulator.tap(tag, polls=3)
                    await asyncio.wait_for(left.wait(), WAIT_S)
                    results[label].append(time.monotonic() - start)
                    terminal.event_log.listeners.remove(listener)
                    await driver.until(lambda: driver.phase in SETTLED, WAIT_S)
                    await driver.type(Key.OK)
                    await driver.until(lambda: driver.phase is Phase.IDLE, WAIT_S)
        finally:
            await world.stop()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--poll-s", type=float, default=0.1, help="the reader's poll interval")
    parser.add_argument("--rounds", type=int, default=20, help="taps of each kind")
    args = parser.parse_args(argv)
    nfc_taps.POLL_S = args.poll_s
    results = asyncio.run(_bench(args.rounds))
    print(f"tap -> screen, poll every {args.poll_s * 1000:.0f} ms, {args.rounds} taps each:")
    for label, values in results.items():
        ms = sorted(v * 1000 for v in values)
        print(
            f"  {label:20} median {statistics.median(ms):6.1f} ms, "
            f"max {ms[-1]:6.1f} ms, min {ms[0]:6.1f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
