"""`pitill sim`: the interactive simulator, or a script run headless with --script."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from pitill.config import load_config
from pitill.errors import ScriptError
from pitill.logs import configure_logging
from pitill.sim.runner import ScriptRunner, report_failure
from pitill.sim.script import parse_script
from pitill.sim.world import CARD_NAMES, SimWorld


def run_sim(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    world = SimWorld(config, args.data_dir, events=args.events)
    if args.script is None:
        from pitill.sim.tui import SimUI

        # The panel owns the terminal: the log goes to a file beside the journal instead.
        args.data_dir.mkdir(parents=True, exist_ok=True)
        with open(os.devnull, "w") as quiet:
            configure_logging(log_file=str(args.data_dir / "sim.log"), stream=quiet)
            asyncio.run(SimUI(world).run())
        return 0
    configure_logging(level="WARNING", stream=sys.stderr)
    try:
        text = args.script.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScriptError(f"cannot read the script {args.script}: {exc.strerror}") from None
    steps = parse_script(text, CARD_NAMES)
    runner = ScriptRunner(world, expect_timeout_s=args.expect_timeout, screens_dir=args.screens)
    failure = asyncio.run(runner.run(steps))
    if failure is not None:
        report_failure(failure, sys.stdout)
        return 1
    print(f"ok: {len(steps)} steps, every expect held")
    return 0
