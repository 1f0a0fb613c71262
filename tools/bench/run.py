"""`make bench`: the benchmark suite P1..P8, printed as one table with the machine and the date.

Each figure is measured with its baseline in the same run (these machines are noisy), and the
ratio is what to compare between machines. The whole suite takes about three minutes on a
2-core x86 VM, most of it P1 (several rounds of each fault) and P5's idle window.

    python tools/bench/run.py                 # everything, a 60 s idle window for P5
    python tools/bench/run.py --only P2,P3    # some of it
    python tools/bench/run.py --idle-s 10     # a shorter idle window (say so when quoting)
    python tools/bench/run.py --quick         # small samples, no verdicts: checks the suite runs
    python tools/bench/run.py --only P1 --netns-faults dns-stopped   # some netns rows alone
    python tools/bench/run.py --write-docs    # `make bench`: the table into docs/ and README
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

# Run as a script: its own directory (for the P modules) is sys.path[0] already.
import benchlib
import p1_detect
import p2_frame
import p3_commit
import p4_forward
import p5_footprint
import p6_scale
import p7_web
import p8_host

from pitill.sim.netns import FAULTS

SUITE: dict[str, Callable[[benchlib.Options], list[benchlib.Figure]]] = {
    "P1": p1_detect.measure,
    "P2": p2_frame.measure,
    "P3": p3_commit.measure,
    "P4": p4_forward.measure,
    "P5": p5_footprint.measure,
    "P6": p6_scale.measure,
    "P7": p7_web.measure,
    "P8": p8_host.measure,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="example: python tools/bench/run.py --only P1 --json bench.json",
    )
    parser.add_argument("--only", metavar="P1,P3", help="run only these (comma separated)")
    parser.add_argument("--quick", action="store_true", help="small samples (a smoke test)")
    parser.add_argument(
        "--idle-s", type=float, default=60.0, metavar="S", help="P5's idle window (default 60)"
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(tempfile.gettempdir()),
        help="where the journals go: the medium measured by P3, P4, P6 (default: TMPDIR)",
    )
    parser.add_argument(
        "--netns-faults",
        metavar="F,F",
        help="P1: only these network-namespace faults (pitill.sim.netns FAULTS), nothing else",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="write the table into docs/bench.md and README.md (what `make bench` does)",
    )
    args = parser.parse_args(argv)
    chosen = [p.strip().upper() for p in args.only.split(",")] if args.only else list(SUITE)
    unknown = [p for p in chosen if p not in SUITE]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(SUITE)}")
    if args.idle_s <= 0:
        parser.error(f"--idle-s must be > 0, got {args.idle_s}")
    if not args.dir.is_dir():
        parser.error(f"--dir {args.dir} is not a directory")
    if args.write_docs and (args.quick or args.only or args.netns_faults):
        parser.error(
            "--write-docs needs the whole suite at full size: no --quick, --only, --netns-faults"
        )
    netns_faults = tuple(f.strip() for f in (args.netns_faults or "").split(",") if f.strip())
    unknown_faults = [f for f in netns_faults if f not in FAULTS]
    if unknown_faults:
        parser.error(
            f"unknown netns fault(s) {', '.join(unknown_faults)}; faults: {', '.join(FAULTS)}"
        )
    options = benchlib.Options(
        quick=args.quick,
        idle_s=args.idle_s,
        seed=args.seed,
        work_dir=args.dir,
        netns_faults=netns_faults,
    )
    figures: list[benchlib.Figure] = []
    for key in chosen:
        started = time.perf_counter()
        print(f"{key} ...", file=sys.stderr, flush=True)
        figures += SUITE[key](options)
        print(f"{key} done in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    print(benchlib.format_table(figures, options))
    if args.json is not None:
        data = {"machine": benchlib.machine(options), "figures": [asdict(f) for f in figures]}
        args.json.write_text(json.dumps(data, indent=2, default=str) + "\n")
    if args.write_docs:
        command = " ".join(
            ["python tools/bench/run.py", *(argv if argv is not None else sys.argv[1:])]
        )
        benchlib.write_docs(figures, options, command)
        print(
            f"wrote {benchlib.REPO / 'docs' / 'bench.md'} and the README's table", file=sys.stderr
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
