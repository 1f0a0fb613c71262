"""kill -9 torture: a `pitill sim --script` child sells through outages and dies by SIGKILL.

Each kill point is one child process on a data directory that persists across kills. Its script
starts with the heal (host up, link online, backlog empty) and then sells: online sales, a
decline, outages (down, blackhole) with sales that race the monitor, offline sales, cash sales,
heals, and a dead name ridden out on the remembered address (sales stay online). The child is
killed at a seeded random moment: either after a random time, or just after the Nth journal /
backlog / link line of its events file (so kills land right after commits, while a 0200 is in
flight, while the backlog drains).

After every kill, with the process dead:
- PRAGMA integrity_check is ok;
- every sale the screens acknowledged (APPROVED, or CHANGE for cash) is in the journal with an
  acknowledged status (lost = 0);
- the host ledger agrees with the journal (reliability_kit.audit): nothing charged twice, nothing
  charged that was not approved, in-flight rows charged 0 or once;
- if the heal at the start of that child completed, every row older than the child is settled.
At the end a last heal runs to completion and every acknowledged sale is charged exactly once.

Two chains run side by side (two data directories) to use both cores. PITILL_TORTURE_SCALE
multiplies the number of kill points (32 by default; 7 gives 224).
"""

from __future__ import annotations

import contextlib
import json
import random
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from reliability_kit import (
    HEAL,
    Ack,
    ScriptWriter,
    acknowledgements,
    audit,
    find_acked_row,
    heal,
    integrity,
    journal_rows,
    ledger,
    scaled,
    sim_command,
)

from fast_config import write_config
from pitill.sim.reconcile import IN_FLIGHT, Reconciliation

KILL_POINTS = scaled(32)
CHAINS = 2
EPISODES_PER_CHILD = 14  # more than a child can get through before its kill
SEED = 20251020
# Lines of the events file a kill may follow (a commit, a backlog change, a link change).
TRIGGERS = (
    '"status": "AUTHORIZING"',
    '"status": "APPROVED"',
    '"status": "PENDING"',
    '"status": "REVERSAL_PENDING"',
    '"status": "COMPLETED"',
    '"event": "backlog"',
    '"event": "link"',
)
POLL_S = 0.001
TRIGGER_WAIT_S = 3.0
START_WAIT_S = 30.0  # bounded: a child that writes no event in this long is killed anyway


def kill_child(process: subprocess.Popen[bytes], events: Path, rng: random.Random) -> str:
    """SIGKILL the child at a random point; what the point was ("exited" if it beat us).

    Either a random time after the start, or just after the Nth line of the events file holding
    a random trigger (or after TRIGGER_WAIT_S if that line never comes). Both count from the
    child's first line of events, not from its start: under load the interpreter's start-up
    alone can outlast a time-only kill, and a child killed while importing tests nothing.
    """
    started = time.monotonic()
    while process.poll() is None and time.monotonic() - started < START_WAIT_S:
        if events.exists() and events.stat().st_size > 0:
            break
        time.sleep(POLL_S * 10)
    deadline = time.monotonic() + rng.uniform(0.4, 3.0)
    trigger, nth = rng.choice(TRIGGERS).encode(), rng.randint(1, 2)
    if rng.random() < 0.7:
        deadline = time.monotonic() + TRIGGER_WAIT_S
    else:
        trigger = b""  # time only
    how, seen, pending = "time", 0, b""
    with contextlib.ExitStack() as stack:
        reader = None
        while process.poll() is None and time.monotonic() < deadline:
            if trigger and reader is None and events.exists():
                reader = stack.enter_context(events.open("rb"))
            if reader is not None:
                pending += reader.read()
                complete, _, pending = pending.rpartition(b"\n")
                seen += complete.count(trigger)
                if seen >= nth:
                    # at once (inside the next few ms: a 0200 in flight, the next commit) or later
                    time.sleep(rng.choice((0.0, rng.uniform(0.0, 0.005), rng.uniform(0.0, 0.02))))
                    how = trigger.decode().split(": ")[1].strip('"')
                    break
            time.sleep(POLL_S)
    if process.poll() is not None:
        return "exited"
    process.kill()
    process.wait()
    return how


def heal_completed(events: Path) -> bool:
    """Did the child get past the heal at the top of its script?"""
    if not events.exists():
        return False
    for line in events.read_text(errors="replace").splitlines():
        if '"event": "step"' in line:
            try:
                if json.loads(line)["line"] > len(HEAL):
                    return True
            except (json.JSONDecodeError, KeyError):
                continue
    return False


@dataclass
class Chain:
    """One data directory, killed again and again."""

    index: int
    workdir: Path
    rng: random.Random
    figures: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    acked: list[tuple[int, Ack]] = field(default_factory=list)  # (seq, what the screen said)
    boundary_seq: int = 0  # the highest seq before the current child started

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data = self.workdir / "data"
        self.config = write_config(self.workdir / "fast.toml")

    def run(self, kill_points: int) -> None:
        for point in range(kill_points):
            self.kill_point(point)
        self.finish()

    def kill_point(self, point: int) -> None:
        writer = ScriptWriter(random.Random(self.rng.random()), pan_base=self.pan_base(point))
        writer.emit(*HEAL)
        for _ in range(EPISODES_PER_CHILD):
            writer.episode()
        script = self.workdir / f"child-{point:03d}.pitill"
        script.write_text(writer.text(), encoding="utf-8")
        events = self.workdir / f"events-{point:03d}.jsonl"
        command = sim_command(script, self.data, self.config, events)
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        how = kill_child(process, events, self.rng)
        output = process.stdout.read().decode(errors="replace") if process.stdout else ""
        if process.stdout:
            process.stdout.close()
        self.figures[f"kill:{how}"] += 1
        if how == "exited" and process.returncode != 0:
            self.flag("child_failed", f"chain {self.index} child {point} failed:\n{output}")
        self.check_after_kill(point, events)

    def pan_base(self, point: int) -> int:
        return (self.index * 10_000 + point) * 100

    def check_after_kill(self, point: int, events: Path) -> None:
        where = f"chain {self.index} point {point}"
        if not (self.data / "journal.sqlite3").exists():
            return  # killed before the journal was first created
        verdict = integrity(self.data)
        if verdict != "ok":
            self.flag("integrity", f"{where}: integrity_check says {verdict}")
        rows = journal_rows(self.data)
        for ack in acknowledgements(events):
            self.figures[f"acked:{ack.kind}"] += 1
            row = find_acked_row(rows, ack, after_seq=self.boundary_seq)
            if row is None:
                self.flag("lost", f"{where}: acknowledged {ack} is not in the journal")
            else:
                self.acked.append((row.seq, ack))
        result = audit(rows, ledger(self.data), healed=False)
        self.flag_audit(where, result)
        if heal_completed(events):
            self.figures["heals_checked"] += 1
            old = [r for r in rows if r.seq <= self.boundary_seq and r.status in IN_FLIGHT]
            if old:
                self.flag("unsettled", f"{where}: unsettled after its heal: {old}")
        self.boundary_seq = max((r.seq for r in rows), default=0)

    def finish(self) -> None:
        heal(self.data, self.config, self.workdir)
        rows = journal_rows(self.data)
        result = audit(rows, ledger(self.data), healed=True)
        self.flag_audit(f"chain {self.index} final", result)
        by_seq = {r.seq: r for r in rows}
        for seq, ack in self.acked:
            row = by_seq.get(seq)
            if row is None or row.status not in ("APPROVED", "FORWARDED", "COMPLETED"):
                self.flag("lost", f"chain {self.index}: acknowledged {ack} ended as {row}")
        if integrity(self.data) != "ok":
            self.flag("integrity", f"chain {self.index}: integrity_check failed after the heal")
        self.figures["sales_card"] += result.card_rows
        self.figures["sales_cash"] += result.cash_rows
        self.figures["charged_once"] += result.charged_rows
        self.figures["host_repeats_absorbed"] += result.host_duplicates_absorbed
        self.figures["reversed"] += sum(r.status == "REVERSED" for r in rows)

    def flag(self, category: str, message: str) -> None:
        self.figures[category] += 1
        self.problems.append(message)

    def flag_audit(self, where: str, result: Reconciliation) -> None:
        for category, found in (
            ("lost", result.lost),
            ("duplicated", result.duplicated),
            ("phantom", result.phantom),
            ("unsettled", result.unsettled),
        ):
            for problem in found:
                self.flag(category, f"{where}: {problem}")


def test_kill9_at_random_points_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    master = random.Random(SEED)
    chains = [
        Chain(i, tmp_path / f"chain{i}", random.Random(master.random())) for i in range(CHAINS)
    ]
    shares = [KILL_POINTS // CHAINS + (i < KILL_POINTS % CHAINS) for i in range(CHAINS)]
    with ThreadPoolExecutor(max_workers=CHAINS) as pool:
        for done in [pool.submit(c.run, n) for c, n in zip(chains, shares, strict=True)]:
            done.result()
    figures: Counter[str] = Counter()
    for chain in chains:
        figures.update(chain.figures)
    problems = [p for c in chains for p in c.problems]
    killed = sum(n for k, n in figures.items() if k.startswith("kill:") and k != "kill:exited")
    print(
        f"\nkill -9 torture: {KILL_POINTS} points, {killed} killed; sales "
        f"{figures['sales_card']} card + {figures['sales_cash']} cash, acknowledged "
        f"{figures['acked:card']} + {figures['acked:cash']}; lost {figures['lost']}, "
        f"duplicated {figures['duplicated']}, phantom {figures['phantom']}, unsettled "
        f"{figures['unsettled']}, integrity {figures['integrity']}; reversed "
        f"{figures['reversed']}, host repeats absorbed {figures['host_repeats_absorbed']}, "
        f"heals checked {figures['heals_checked']}; kills by point: "
        f"{ {k[5:]: n for k, n in sorted(figures.items()) if k.startswith('kill:')} }"
    )
    (tmp_path / "problems.txt").write_text("\n".join(problems), encoding="utf-8")
    assert not problems, (
        f"{len(problems)} problems (all in {tmp_path}/problems.txt):\n" + "\n".join(problems[:20])
    )
    assert killed >= KILL_POINTS * 3 // 4  # the children really were killed, mostly
    assert figures["acked:card"] > 0 and figures["acked:cash"] > 0  # it really sold
    assert figures["heals_checked"] > 0
