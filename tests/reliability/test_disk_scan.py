"""Disk scan: after 1000 sales with distinct test PANs, no clear PAN is anywhere on disk.

Part one drives the journal directly: 1000 card sales, each with its own Luhn-valid PAN (half
offline and sealed, a quarter online approved, a quarter with a timed-out 0200 and a reversal),
then forwards most of the backlog and leaves the rest waiting. The data directory (database, WAL,
shm, seal key) is scanned while the journal is open and again after it is closed.

Part two runs the real terminal (`pitill sim --script` in a child, with its log at DEBUG into a
file through pitill's own logging) selling through an outage with fresh PANs, in both track
formats, and scans its data directory, log, events file, screens, stdout/stderr, and the
`journal list` and `report` exports.

A PAN counts as found when its digits appear in a row, or with one separator (space, dash, dot,
slash, colon, underscore) between any of them: "4500 0000 ..." is a leak too.
PITILL_TORTURE_SCALE multiplies the 1000.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from reliability_kit import (
    EXPIRY_YYMM,
    ScriptWriter,
    pan_for,
    scaled,
)

from fast_config import write_config
from pitill.card.model import Card
from pitill.core.txn import Txn
from pitill.core.types import TxnKind, TxnMode, TxnStatus
from pitill.journal.seal import KEY_FILE_NAME, Sealer
from pitill.journal.store import Journal
from pitill.sim.reader_emulator import TEST_CARDS
from pitill_cli import PITILL

SALES = scaled(1000)
FORWARD_SHARE = 0.7  # of the backlog, forwarded before the scan; the rest stays sealed
_DIGITS_WITH_SEPARATORS = re.compile(rb"[0-9](?:[ \-./:_]?[0-9]){11,40}")


def found_pans(blob: bytes, pans: set[bytes]) -> set[bytes]:
    """The PANs of `pans` whose digits appear in `blob`, plainly or with separators."""
    lengths = {len(pan) for pan in pans}
    found = set()
    for match in _DIGITS_WITH_SEPARATORS.finditer(blob):
        digits = re.sub(rb"[^0-9]", b"", match.group())
        for size in lengths:
            for start in range(len(digits) - size + 1):
                if digits[start : start + size] in pans:
                    found.add(digits[start : start + size])
    return found


def scan(paths: Iterable[Path], pans: set[bytes]) -> dict[str, set[bytes]]:
    """Every file under `paths` (files or directories) that holds one of the PANs."""
    leaks: dict[str, set[bytes]] = {}
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            hits = found_pans(file.read_bytes(), pans)
            if hits:
                leaks[str(file)] = hits
    return leaks


def test_the_scan_finds_a_pan_plain_and_with_separators() -> None:
    pan = pan_for(7, prefix="52").encode()
    grouped = b" ".join(pan[i : i + 4] for i in range(0, 16, 4))
    for text in (pan, grouped, pan.replace(b"0", b"0-", 3), b"x" + pan + b"=3012"):
        assert found_pans(b"prefix " + text + b" suffix", {pan}) == {pan}
    masked = (pan[:6] + b"******" + pan[-4:]).decode()
    assert found_pans(masked.encode(), {pan}) == set()


def card_sale(seq: int, pan: str, amount_minor: int) -> tuple[Txn, ...]:
    """The journal writes of one sale, as the terminal makes them (by seq: three kinds)."""
    card = Card(pan, EXPIRY_YYMM, service_code="101", cardholder_name="TEST/CARD")
    online = Txn(
        seq, TxnKind.CARD, TxnMode.ONLINE, amount_minor, "EUR", TxnStatus.AUTHORIZING, card=card
    )
    if seq % 4 == 2:
        return online, online.with_status(TxnStatus.APPROVED, response_code="00", auth_code="1")
    if seq % 4 == 3:
        return online, online.with_status(TxnStatus.REVERSAL_PENDING)
    offline = online.with_status(TxnStatus.PENDING, mode=TxnMode.OFFLINE, response_code="Y3")
    return (offline,)


def test_no_clear_pan_in_the_data_directory_after_1000_sales(tmp_path: Path) -> None:
    data = tmp_path / "data"
    pans = [pan_for(index, prefix="52") for index in range(SALES)]
    pan_bytes = {pan.encode() for pan in pans}
    journal = Journal.open(data, Sealer.load_or_create(data / KEY_FILE_NAME))
    try:
        for seq, pan in enumerate(pans, start=1):
            for txn in card_sale(seq, pan, amount_minor=100 + seq):
                journal.record(txn)
        to_forward = int(journal.pending_count() * FORWARD_SHARE)
        for _ in range(to_forward):
            item = journal.next_forward_item()
            assert item is not None and item.card in (None, Card(pans[item.row.seq - 1], "3012"))
            journal.mark_attempt(item.row.seq)
            journal.mark_forwarded(item.row.seq, "00")
        assert journal.pending_count() > 0  # some sealed card data is still waiting
        files_open = sorted(p.name for p in data.iterdir())
        assert {"journal.sqlite3-wal", KEY_FILE_NAME} <= set(files_open)
        assert scan([data], pan_bytes) == {}, "a clear PAN while the journal is open"
    finally:
        journal.close()
    assert scan([data], pan_bytes) == {}, "a clear PAN after the journal was closed"
    # the scan is not blind: the database does hold each sale's masked PAN
    text = (data / "journal.sqlite3").read_bytes()
    assert pans[-1][:6].encode() + b"******" + pans[-1][-4:].encode() in text


# --- part two: the real terminal, its log, events, screens and exports -----------------------

CHILD = """\
import sys
from pitill import logs
from pitill.cli import main
from pitill.sim import cli as sim_main

log_file = sys.argv[1]
sim_main.configure_logging = lambda *a, **k: logs.configure_logging(
    "DEBUG", log_file=log_file, stream=sys.stderr
)
sys.exit(main(sys.argv[2:]))
"""


def sim_script(writer: ScriptWriter) -> str:
    """Online sales, a decline, an outage with offline and cash sales, the heal, every format."""
    writer.emit("expect link online")
    for _ in range(3):
        writer.online_sale()
    writer.card_sale(writer.amount(100, 9999, declined=True), expect="DECLINED")
    for fmt in ("track1", "track2"):
        writer.emit(f"press {' '.join(str(writer.amount(100, 2500)))} OK")
        writer.emit(f"swipe {writer.next_pan()} {EXPIRY_YYMM} {fmt}", 'expect screen "APPROVED"')
        writer.emit("press OK")
    writer.emit("swipe approved", "press 1 0 0 OK", "swipe bad-luhn", "press CANCEL")
    writer.emit("upstream down", "expect link offline")
    for _ in range(4):
        writer.offline_sale()
    writer.cash_sale()
    writer.emit("upstream up", "expect link online", "expect pending 0")
    # The report on screen, behind a new supervisor PIN (keyed twice; shown as asterisks).
    writer.emit("press FN 2 5 8 0 OK 2 5 8 0 OK", "expect state MENU", "press 2", "press OK OK OK")
    return writer.text()


def test_no_clear_pan_in_logs_events_screens_or_exports(tmp_path: Path) -> None:
    writer = ScriptWriter(random.Random(4), pan_base=900_000)
    script = tmp_path / "sales.pitill"
    script.write_text(sim_script(writer), encoding="utf-8")
    data, events, screens, log = (tmp_path / n for n in ("data", "ev.jsonl", "png", "pitill.log"))
    config = write_config(tmp_path / "fast.toml")
    sim = ["sim", "--config", str(config), "--script", str(script), "--data-dir", str(data)]
    sim += ["--events", str(events), "--screens", str(screens)]
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(log), *sim], capture_output=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    exports = [
        subprocess.run([*PITILL, *args, "--data-dir", str(data)], capture_output=True, check=True)
        for args in (["journal", "list", "--json"], ["journal", "list"], ["report"])
    ]
    outputs = tmp_path / "outputs.txt"
    outputs.write_bytes(
        b"\n".join([result.stdout, result.stderr, *(e.stdout + e.stderr for e in exports)])
    )
    pans = {pan_for(writer.pan_base + n).encode() for n in range(1, writer.sales + 1)}
    pans |= {card.pan.encode() for card in TEST_CARDS.values()}
    assert scan([data, events, screens, log, outputs], pans) == {}
    # not blind: the sales happened, were logged, shown and exported with masked PANs
    assert b"txn_recorded" in log.read_bytes() and b"******" in log.read_bytes()
    assert len(list(screens.glob("*.png"))) > 10
    assert b"FORWARDED" in exports[0].stdout and b"******" in exports[0].stdout
