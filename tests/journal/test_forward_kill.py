"""A forwarding process killed (SIGKILL) in the middle of a backlog of many batches, at seeded
points of the host's ledger, then started again, until the backlog is drained.

The forwarder streams a backlog: while one batch is on the wire the next is read ahead and its
attempts committed, and each batch's answers are committed in one transaction once all of them
came. So a kill lands with answers the host gave that the journal has not committed, attempts
counted for items never sent, and two batches open at once. After every kill: no sale lost, none
charged twice, and every advice the host saw twice came the second time flagged as a repeat
(0221, same STAN): the attempt was durable before the first send. At the end: everything settled,
one final answer per row in the journal's history.

The host is the sandbox one (`pitill acquirer`) in its own process, answering each message a few
ms late so a window is always in flight; the child is tests/journal/forward_child.py.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from journal_helpers import OpenJournal, offline_sale

from pitill.config import TerminalConfig
from pitill.core.types import TxnStatus
from pitill.sim.acquirer import LEDGER_NAME, read_ledger
from pitill.sim.reconcile import reconcile
from pitill_cli import serving_acquirer

SALES = 300
WINDOW = 8  # batches of 32 (the forwarder's minimum): about ten batches in the backlog
KILLS = 5
SEED = 20261130
CHILD = Path(__file__).resolve().parent / "forward_child.py"
POLL_S = 0.001
WAIT_S = 60.0  # for a child to reach its kill point or finish; bounded, not a timing assert
FINALS = {TxnStatus.FORWARDED, TxnStatus.DECLINED_AFTER, TxnStatus.REVERSED}


@contextmanager
def acquirer(data_dir: Path, latency_ms: int) -> Iterator[int]:
    """`pitill acquirer` in its own process (it outlives every child); yields its port."""
    data_dir.mkdir(parents=True)
    with serving_acquirer(data_dir, "--latency-ms", str(latency_ms)) as port:
        yield port


def run_child(data_dir: Path, port: int, kill_at: int | None, ledger: Path) -> int | None:
    """Start a child; SIGKILL it once the host's ledger holds `kill_at` entries. Its exit
    code when it finished first (or `kill_at` is None), None when it was killed."""
    child = subprocess.Popen([sys.executable, str(CHILD), str(data_dir), str(port), str(WINDOW)])
    deadline = time.monotonic() + WAIT_S
    try:
        while child.poll() is None and time.monotonic() < deadline:
            if kill_at is not None and len(read_ledger(ledger)) >= kill_at:
                child.kill()
                child.wait()
                return None
            time.sleep(POLL_S)
        return child.wait(timeout=WAIT_S)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_a_forwarder_killed_mid_stream_loses_nothing_and_charges_nothing_twice(
    open_journal: OpenJournal, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    journal = open_journal(data_dir)
    for seq in range(1, SALES + 1):
        journal.record(offline_sale(seq, amount_minor=100 + seq))
    journal.close()
    terminal_id = TerminalConfig().terminal_id
    rng = random.Random(SEED)
    # Kill points spread over the backlog (host ledger entries), so they fall at any place in
    # a batch: mid-window, just after a batch's last answer, while the next one is read ahead.
    kill_points = sorted(rng.sample(range(20, SALES - 20), KILLS))
    caught_uncommitted = 0  # kills after which the host held advices the journal had not settled
    with acquirer(tmp_path / "host", latency_ms=3) as port:
        ledger_path = tmp_path / "host" / LEDGER_NAME
        for kill_at in kill_points:
            assert run_child(data_dir, port, kill_at, ledger_path) is None, (
                "drained before its kill"
            )
            journal = open_journal(data_dir)
            rows, ledger = journal.rows(), read_ledger(ledger_path)
            journal.close()
            check = reconcile(rows, ledger, terminal_id, settled=False)
            assert check.counts()["lost"] == check.counts()["duplicated"] == 0, check.problems()
            assert check.counts()["phantom"] == 0, check.problems()
            held = {int(e["stan"]) for e in ledger}
            caught_uncommitted += any(
                r.status is TxnStatus.PENDING and r.stan in held for r in rows
            )
        assert run_child(data_dir, port, None, ledger_path) == 0
        ledger = read_ledger(ledger_path)
    journal = open_journal(data_dir)
    check = reconcile(journal.rows(), ledger, terminal_id, settled=True)
    assert check.counts() == {"lost": 0, "duplicated": 0, "phantom": 0, "unsettled": 0}, (
        check.problems()[:5]
    )
    # The host saw an advice twice only as a repeat (0221): its attempt was durable first.
    firsts = Counter(int(e["stan"]) for e in ledger if e["mti"] == "0220")
    assert [stan for stan, n in firsts.items() if n > 1] == []
    assert all(e["mti"] == "0221" for e in ledger if e["duplicate"])
    assert any(e["duplicate"] for e in ledger)  # the kills did cut answers off: repeats absorbed
    assert caught_uncommitted >= 1
    for row in journal.rows():
        assert row.status is TxnStatus.FORWARDED, row
        finals = [h for h in journal.history(row.seq) if h.status in FINALS]
        assert len(finals) == 1, (row.seq, finals)
