"""The `pitill drill` subcommand: add_parser() is called by pitill.cli with its subparsers."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from pitill.cliargs import number
from pitill.config import Bound
from pitill.drill.timeline import BUILT_IN, DEFAULT_TIMELINE
from pitill.errors import ConfigError

SPEED = Bound(1, 100_000)  # simulated seconds per real second
BUSY = Bound(0.001, 1000)
SEED = Bound(0, 2**63 - 1)


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `pitill drill` to the `pitill` command's subparsers."""
    drill = commands.add_parser(
        "drill",
        help="replay an outage timeline against the terminal with a synthetic shop",
        description=(
            "Run the terminal headless against the sandbox host while the host follows an\n"
            "outage timeline, compressed in time, and a synthetic shop (seeded) sells through\n"
            "it with key presses and card swipes. Prints what the shop lived through: sales by\n"
            "kind, how long the terminal took to notice each change, the backlog, the longest\n"
            "wait; and checks the journal against the host's ledger. Exits 0 when nothing was\n"
            "lost, charged twice, phantom or unsettled, the backlog drained, the shop's counts\n"
            "equal the journal's, no customer failed and the shop finished; 1 otherwise.\n\n"
            f"Built-in timelines: {', '.join(BUILT_IN)}."
        ),
        epilog=(
            "examples:\n  pitill drill --data-dir /tmp/drill\n"
            "  pitill drill --timeline blackhole --speed 60 --data-dir /tmp/d --report r.json "
            "--plot r.png\n"
            "  pitill drill --timeline my-outage.toml --data-dir /tmp/d   (format: docs/drill.md)\n"
            "  pitill drill --data-dir /tmp/drill --markdown docs/drill.md   (the docs' run)"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    drill.add_argument(
        "--timeline",
        default=DEFAULT_TIMELINE,
        metavar="NAME|FILE",
        help=f"a built-in timeline or a .toml/.json file (default {DEFAULT_TIMELINE})",
    )
    drill.add_argument(
        "--speed",
        type=number(SPEED),
        metavar="X",
        help="simulated seconds per real second (default: the timeline in about a minute)",
    )
    drill.add_argument(
        "--data-dir",
        type=Path,
        required=True,
        metavar="DIR",
        help="a new, empty directory for the journal and the host's ledger",
    )
    drill.add_argument("--report", type=Path, metavar="FILE", help="write the report as JSON")
    drill.add_argument("--plot", type=Path, metavar="FILE", help="draw the timeline as a PNG")
    drill.add_argument(
        "--markdown",
        type=Path,
        metavar="FILE",
        help="write the command, the machine and the report between FILE's drill markers "
        "(how docs/drill.md is made)",
    )
    drill.add_argument(
        "--seed",
        type=number(SEED, integer=True),
        default=1,
        metavar="N",
        help="the shop's and the faults' seed (1)",
    )
    drill.add_argument(
        "--busy",
        type=number(BUSY),
        default=1.0,
        metavar="FACTOR",
        help="multiply the shop's customer rate (default 1: a small all-night corner shop)",
    )
    drill.add_argument(
        "--config", type=Path, metavar="FILE", help="TOML config overriding the embedded defaults"
    )
    drill.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    """Run the drill; 0 when it passed (drill.report.problems() found nothing), else 1."""
    from pitill.config import load_config
    from pitill.drill.play import DrillOptions, run_drill
    from pitill.drill.plot import save_plot
    from pitill.drill.report import build_report, format_text, passed
    from pitill.drill.shop import ShopProfile
    from pitill.drill.timeline import load_timeline
    from pitill.logs import configure_logging

    configure_logging(level="WARNING", stream=sys.stderr)
    timeline = load_timeline(args.timeline)
    config = load_config(args.config)
    base = ShopProfile()
    if not all(rate * args.busy <= 3600 for rate in base.hourly_customers):
        raise ConfigError(f"--busy {args.busy:g}: more than one customer a second is not a shop")
    profile = dataclasses.replace(
        base, hourly_customers=tuple(rate * args.busy for rate in base.hourly_customers)
    )
    options = DrillOptions(
        timeline=timeline,
        data_dir=args.data_dir,
        speed=args.speed,
        seed=args.seed,
        config=config,
        profile=profile,
    )
    print(
        f"drill {timeline.name}: {timeline.total_s / 3600:.1f} h at "
        f"{options.effective_speed:g}x, about {timeline.total_s / options.effective_speed:.0f} s",
        file=sys.stderr,
        flush=True,
    )
    report = build_report(run_drill(options))
    print(format_text(report))
    if args.report is not None:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.plot is not None:
        save_plot(report, args.plot)
    if args.markdown is not None:
        _write_markdown(args, report)
    return 0 if passed(report) else 1


def command_line(args: argparse.Namespace) -> str:
    """The `pitill drill` command that reproduces this run (its output files left out)."""
    words = ["pitill drill", f"--timeline {args.timeline}", f"--seed {args.seed}"]
    if args.speed is not None:
        words.append(f"--speed {args.speed:g}")
    if args.busy != 1.0:
        words.append(f"--busy {args.busy:g}")
    if args.config is not None:
        words.append(f"--config {args.config}")
    return " ".join([*words, f"--data-dir {args.data_dir}"])


def _write_markdown(args: argparse.Namespace, report: dict[str, Any]) -> None:
    import os
    import platform

    from pitill.drill.report import markdown_block, with_markdown

    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    block = markdown_block(report, command_line(args), machine)
    path: Path = args.markdown
    document = path.read_text(encoding="utf-8") if path.exists() else ""
    path.write_text(with_markdown(document, block), encoding="utf-8")
