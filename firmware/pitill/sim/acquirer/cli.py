"""`pitill acquirer` and `python -m pitill.sim.acquirer`: the sandbox host run alone, its mode and
faults switched from stdin.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from pitill.cliargs import OneLineParser, add_wire_options, wire_of
from pitill.cliargs import number as number_type  # `number` names ledger lines here
from pitill.config import Bound
from pitill.core.responses import (
    ISSUER_INOPERATIVE,
    is_response_code,
)
from pitill.errors import ConfigError, PitillError
from pitill.sim.acquirer.chaos import ChaosPlan
from pitill.sim.acquirer.policy import Mode, _today_yymm, acknowledge
from pitill.sim.acquirer.server import AcquirerHost

log = logging.getLogger("pitill.sim.acquirer")

# --- running it alone ------------------------------------------------------------------------


PORT = Bound(0, 65535)
CHANCE = Bound(0, 1)  # a probability per financial message
DELAY = Bound(0, 3600, "s")
SEED = Bound(0, 2**63 - 1)
LATENCY_MS = Bound(0, 60_000, "ms")


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m pitill.sim.acquirer",
        description="Run the simulator's ISO 8583 acquirer host until interrupted (SIGINT or "
        "SIGTERM).",
    )
    parser.add_argument("--data-dir", type=Path, required=True, help="where the ledger lives")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port",
        type=number_type(PORT, integer=True),
        default=8583,
        help="TCP port; 0 picks a free one",
    )
    parser.add_argument("--mode", choices=[m.value for m in Mode], default=Mode.UP.value)
    parser.add_argument("--today", metavar="YYMM", help="the host's date for expiry checks")
    parser.add_argument(
        "--stdin-control",
        action="store_true",
        help="switch modes by writing up, down or blackhole lines to stdin (a pipe); a line "
        "'counts' prints what the host has received as 'acquirer counts {JSON}'",
    )
    parser.add_argument(
        "--advice-code",
        metavar="CODE",
        help="answer every advice (0220/0221) with CODE (e.g. 30, format error); default: 00",
    )
    add_wire_options(parser)
    chaos = parser.add_argument_group("chaos (probabilities 0..1 per financial message)")
    chaos.add_argument("--drop-request", type=number_type(CHANCE), default=0.0)
    chaos.add_argument("--drop-reply", type=number_type(CHANCE), default=0.0)
    chaos.add_argument("--duplicate-reply", type=number_type(CHANCE), default=0.0)
    chaos.add_argument(
        "--retry", type=number_type(CHANCE), default=0.0, help="answer with --retry-code"
    )
    chaos.add_argument("--retry-code", default=ISSUER_INOPERATIVE)
    chaos.add_argument("--delay", type=number_type(DELAY), default=0.0, metavar="SECONDS")
    chaos.add_argument("--seed", type=number_type(SEED, integer=True), default=0)
    wan = parser.add_argument_group("a WAN between the terminal and the host (every message)")
    wan.add_argument(
        "--latency-ms",
        type=number_type(LATENCY_MS),
        default=0.0,
        metavar="MS",
        help="each answer leaves MS after its request came; the next requests are answered "
        "meanwhile (a round trip of MS, e.g. 30)",
    )
    wan.add_argument(
        "--latency-jitter-ms",
        type=number_type(LATENCY_MS),
        default=0.0,
        metavar="MS",
        help="add a random 0..MS to each answer's latency (drawn with --seed): answers overtake "
        "each other",
    )
    return parser


async def _control_from_stdin(host: AcquirerHost) -> None:
    """Mode names read line by line from stdin; EOF just ends the control, not the host."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command = line.decode(errors="replace").strip()
        if not command:
            continue
        if command == "counts":  # how a bench counts what a host in another process received
            print(f"acquirer counts {json.dumps(dict(host.counts), sort_keys=True)}", flush=True)
            continue
        try:
            host.set_mode(command)
        except ConfigError as exc:
            print(f"acquirer: {exc}", file=sys.stderr, flush=True)
            continue
        print(f"acquirer mode {host.mode}", flush=True)


async def _run(args: argparse.Namespace) -> None:
    plan = ChaosPlan(
        drop_request=args.drop_request,
        drop_reply=args.drop_reply,
        duplicate_reply=args.duplicate_reply,
        retry=args.retry,
        retry_code=args.retry_code,
        delay_s=args.delay,
        latency_s=args.latency_ms / 1000,
        latency_jitter_s=args.latency_jitter_ms / 1000,
        seed=args.seed,
    )
    today = args.today
    code = args.advice_code
    host = AcquirerHost(
        args.data_dir,
        host=args.host,
        port=args.port,
        chaos=plan,
        today_yymm=(lambda: today) if today else _today_yymm,
        wire=wire_of(args),
        advice_policy=(lambda _request, _today: code) if code else acknowledge,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with host:
        host.set_mode(args.mode)
        print(
            f"acquirer listening on {host.host}:{host.port} mode {host.mode} "
            f"({host.wire.describe()})",
            flush=True,
        )
        control = asyncio.create_task(_control_from_stdin(host)) if args.stdin_control else None
        await stop.wait()
        if control is not None:
            control.cancel()
    print("acquirer stopped", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.today is not None and not (len(args.today) == 4 and args.today.isdigit()):
        _parser().error(f"--today must be YYMM, got {args.today!r}")
    if args.advice_code is not None and not is_response_code(args.advice_code):
        _parser().error(f"--advice-code must be 2 letters or digits, got {args.advice_code!r}")
    try:
        asyncio.run(_run(args))
    except PitillError as exc:
        print(f"acquirer: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"acquirer: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
