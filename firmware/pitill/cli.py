"""`pitill` and its subcommands. Each subcommand's --help says what it does, with an example."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pitill import __version__
from pitill.cliargs import OneLineParser, add_wire_options, number
from pitill.config import Bound
from pitill.drill.cli import add_parser as add_drill
from pitill.enroll import add_parser as add_card
from pitill.errors import PitillError
from pitill.host.cli import add_parser as add_host
from pitill.journal.days import day_arg
from pitill.receipt import add_parser as add_receipt
from pitill.service_cli import add_parsers as add_run_and_doctor
from pitill.supervisor import add_parser as add_pin

Handler = Callable[[argparse.Namespace], int]


def _sim(args: argparse.Namespace) -> int:
    from pitill.sim.cli import run_sim

    return run_sim(args)


def _journal_list(args: argparse.Namespace) -> int:
    from pitill.journal.listing import print_listing

    return print_listing(args.data_dir, as_json=args.json)


def _journal_salvage(args: argparse.Namespace) -> int:
    from pitill.journal.salvage import print_salvage

    return print_salvage(args.data_dir, args.files)


def _journal_init(args: argparse.Namespace) -> int:
    from pitill.journal.salvage import init_journal

    print(init_journal(args.data_dir, force=args.force))
    return 0


def _journal_settle(args: argparse.Namespace) -> int:
    from pitill.journal.settle import settle_by_hand

    print(settle_by_hand(args.data_dir, args.seq, args.note))
    return 0


def _journal_requeue(args: argparse.Namespace) -> int:
    from pitill.journal.settle import requeue_by_hand

    print(requeue_by_hand(args.data_dir, args.seq, args.note))
    return 0


def _journal_decline(args: argparse.Namespace) -> int:
    from pitill.journal.settle import decline_by_hand

    print(decline_by_hand(args.data_dir, args.seq, args.note))
    return 0


def _report(args: argparse.Namespace) -> int:
    from pitill.journal.report import print_day_reports, print_report

    if args.day is not None:
        return print_day_reports(args.data_dir, args.day, as_json=args.json)
    return print_report(args.data_dir, as_json=args.json)


def _acquirer(args: argparse.Namespace) -> int:
    from pitill.sim.acquirer import main as acquirer_main

    wan = ["--latency-ms", f"{args.latency_ms:g}", "--latency-jitter-ms", f"{args.jitter_ms:g}"]
    wire = ["--bitmap", args.bitmap, "--length-prefix", args.length_prefix]
    advices = ["--advice-code", args.advice_code] if args.advice_code else []
    where = ["--data-dir", str(args.data_dir), "--port", str(args.port)]
    return acquirer_main([*where, *wan, *wire, *advices])


def _diagram(args: argparse.Namespace) -> int:
    from pitill.core.diagram import mermaid

    print(mermaid())
    return 0


def _data_dir_argument(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--data-dir", type=Path, required=True, metavar="DIR", help=help_text)


def build_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = OneLineParser(
        prog="pitill",
        description="pitill: a Raspberry Pi payment terminal that keeps selling through outages.",
        epilog="Start with `pitill sim` (no hardware needed). `pitill COMMAND --help` for more.",
    )
    parser.add_argument("--version", action="version", version=f"pitill {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sim = commands.add_parser(
        "sim",
        help="run the whole terminal in this terminal, with no hardware",
        description=(
            "Run the terminal with an emulated keypad (your keyboard), the OLED drawn in braille "
            "(80x24 and up) or half blocks (155x40 and up), a card reader on a pty pair and an "
            "acquirer host on loopback; ? lists the keys. With --script it runs headless and "
            "exits 0 when every `expect` held, 1 otherwise."
        ),
        epilog=(
            "examples:\n  pitill sim --data-dir data\n"
            "  pitill sim --script tests/scenarios/offline_cash_change.pitill --data-dir /tmp/d "
            "--events /tmp/events.jsonl --screens /tmp/screens\n"
            "  pitill sim --upstream 127.0.0.1:8583   # against a host you started\n"
            "  pitill sim --web                      # and the terminal live at "
            "http://127.0.0.1:8580/\n"
            "  pitill sim --no-tui --web 0.0.0.0:8580 --data-dir /tmp/d   # a workshop's projector"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sim.add_argument("--data-dir", type=Path, default=Path("data"), help="journal and ledger")
    sim.add_argument("--config", type=Path, help="TOML config overriding the embedded defaults")
    sim.add_argument("--script", type=Path, help="run this script headless instead of the UI")
    sim.add_argument("--events", type=Path, help="write JSON lines of what happened to FILE")
    sim.add_argument("--screens", type=Path, help="write a PNG of each distinct screen to DIR")
    sim.add_argument(
        "--receipts", type=Path, help="print receipts to DIR (SEQ-STATUS.txt and .png each)"
    )
    sim.add_argument(
        "--expect-timeout",
        type=number(Bound(0.01, 3600, "s")),
        default=5.0,
        metavar="S",
        help="how long an `expect` waits for its condition (default 5 s)",
    )
    sim.add_argument(
        "--upstream",
        metavar="HOST:PORT",
        help="dial this host (a `pitill acquirer` or `pitill host serve` started apart, your "
        "own ISO 8583 host) instead of starting the sandbox one; script faults apply to the "
        "real connection (through a local proxy); a config's [upstream] host does the same",
    )
    sim.add_argument(
        "--web",
        nargs="?",
        const="127.0.0.1:8580",
        metavar="ADDR",
        help="also serve the terminal live on a web page at ADDR (default 127.0.0.1:8580; any "
        "other address than loopback prints a URL with a token)",
    )
    sim.add_argument(
        "--no-tui",
        action="store_true",
        help="no terminal UI: run until SIGINT/SIGTERM, driven from the --web page",
    )
    sim.set_defaults(handler=_sim)

    journal = commands.add_parser(
        "journal",
        help="look into a terminal's journal",
        description="Look into the journal of a data directory.",
    )
    journal_commands = journal.add_subparsers(
        dest="journal_command", metavar="ACTION", required=True
    )
    listing = journal_commands.add_parser(
        "list",
        help="list every transaction",
        description=(
            "List transactions: seq, time recorded, kind (card or cash), mode (online or offline), "
            "amount, currency, status, masked PAN and response code (with its meaning). "
            "Example: pitill journal list --data-dir data --json"
        ),
    )
    _data_dir_argument(listing, "the terminal's data directory")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(handler=_journal_list)

    salvage = journal_commands.add_parser(
        "salvage",
        help="recover the sales still owed to the host from a damaged, moved-aside journal",
        description=(
            "Read the offline sales and reversals still owed to the host from FILE (default: "
            "every journal.sqlite3.corrupt-N in the data directory) and add them to the live "
            "journal, to be forwarded as usual. Exactly once: a sale already in the journal "
            "(same STAN and local date/time) is not added again. The file is not changed. "
            "Stop the terminal first (it holds the data directory). Exits 1 when some rows "
            "could not be read or unsealed (they are named)."
        ),
        epilog=(
            "examples:\n  pitill journal salvage --data-dir /var/lib/pitill\n"
            "  pitill journal salvage --data-dir data data/journal.sqlite3.corrupt-1"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _data_dir_argument(salvage, "the terminal's data directory")
    salvage.add_argument(
        "files", nargs="*", type=Path, metavar="FILE", help="a moved-aside journal"
    )
    salvage.set_defaults(handler=_journal_salvage)

    init = journal_commands.add_parser(
        "init",
        help="start a new, empty journal (where one went missing: only with --force)",
        description=(
            "Create an empty journal in the data directory. A terminal refuses to start with "
            "an empty journal where the seal key, a WAL, a moved-aside journal or remembered "
            "host addresses show that sales were written before; this is how the operator "
            "says it is meant. Salvage first what can be salvaged. Nothing is deleted."
        ),
        epilog="example:\n  pitill journal init --force --data-dir /var/lib/pitill",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _data_dir_argument(init, "the terminal's data directory")
    init.add_argument("--force", action="store_true", help="even where sales were written before")
    init.set_defaults(handler=_journal_init)

    held_help = (
        "An advice the host refused without processing it (ADVICE_REFUSED: 30 format error, "
        "58, 92, an unknown code...; `pitill doctor` lists them) is held with its card sealed "
        "and never sent again by itself. Stop the terminal first."
    )
    # The by-hand commands on a row the host refused: one shape, each its own words.
    for name, what, description, handler, example, seq_help, note_help in (
        (
            "settle",
            "record that the acquirer settled a reversal the host had refused",
            "A reversal the host refused (REVERSAL_REFUSED: `pitill doctor` lists them with "
            "their STAN) is never sent again: the sale may still be charged. Once the acquirer "
            "has reversed it by hand, or confirmed it never held the charge, record it here: "
            "the row becomes REVERSED, NOTE in its history. Stop the terminal first.",
            _journal_settle,
            '--note "acquirer ticket 4711: reversed by hand"',
            "the refused reversal's seq, as `pitill doctor` lists it",
            "who confirmed it and their reference (kept in its history; not blank, <= 200 chars)",
        ),
        (
            "requeue",
            "send a held advice again, once its cause is fixed: the row becomes PENDING",
            f"{held_help} Send a held advice again, once its cause is fixed: the row becomes "
            "PENDING.",
            _journal_requeue,
            '--note "pitill 1.4.2 fixed the 0220 field 22"',
            "the held advice's seq, as `pitill doctor` lists it",
            "why (kept in its history; not blank, <= 200 chars)",
        ),
        (
            "decline",
            "record a held advice as declined (DECLINED_AFTER, the shop's loss; card wiped)",
            f"{held_help} Record a held advice as declined (DECLINED_AFTER, the shop's loss; "
            "card wiped).",
            _journal_decline,
            '--note "acquirer ticket 4712: will not take it"',
            "the held advice's seq, as `pitill doctor` lists it",
            "why (kept in its history; not blank, <= 200 chars)",
        ),
    ):
        by_hand = journal_commands.add_parser(
            name,
            help=what,
            description=description,
            epilog=(
                "example (as the service's user, never root):\n"
                f"  sudo -u pitill pitill journal {name} --data-dir /var/lib/pitill --seq 17 "
                f"{example}"
            ),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _data_dir_argument(by_hand, "the terminal's data directory")
        by_hand.add_argument(
            "--seq", required=True, type=number(Bound(1, 2**63 - 1), integer=True), help=seq_help
        )
        by_hand.add_argument("--note", required=True, help=note_help)
        by_hand.set_defaults(handler=handler)

    report = commands.add_parser(
        "report",
        help="the reconciliation report: what was sold, how, and what the host still owes",
        description=(
            "Counts and totals by kind (card online, card offline, cash), by status, offline "
            "sales still waiting for the host, sales the host declined after an offline "
            "approval (the shop's loss), refunds (those the host refused after an offline "
            "refund: the customer is still owed them), and reversals due (a sale left "
            "AUTHORIZING counts: its "
            "outcome is unknown). One aggregate query on a read-only connection: safe while the "
            "terminal runs. With --day, a day's Z report (end of day, FN 5): totals by kind, "
            "voids, refunds (card, cash, refused by host), what the host must hold (ISO 8583 "
            "fields 74-89) and whether it "
            "agreed. Examples: pitill report --data-dir /var/lib/pitill; "
            "pitill report --data-dir /var/lib/pitill --day 3; pitill report --day 2026-11-30"
        ),
    )
    _data_dir_argument(report, "the terminal's data directory")
    report.add_argument("--json", action="store_true", help="the same figures as JSON")
    report.add_argument(
        "--day",
        type=day_arg,
        metavar="N|YYYY-MM-DD",
        help="the Z report of day N (closed at end of day, FN 5; the open day's so far), or of "
        "the days closed on that date",
    )
    report.set_defaults(handler=_report)

    acquirer = commands.add_parser(
        "acquirer",
        help="run the built-in acquirer host on loopback",
        description=(
            "Run the sandbox acquirer host (ISO 8583 over TCP) on 127.0.0.1, writing its ledger "
            "to DATA_DIR/acquirer-ledger.jsonl. Example: pitill acquirer --data-dir /tmp/h "
            "--port 8583 --bitmap binary --length-prefix 4-digit-ascii"
        ),
    )
    _data_dir_argument(acquirer, "where the ledger is kept")
    acquirer.add_argument(
        "--port",
        type=number(Bound(0, 65535), integer=True),
        default=8583,
        help="TCP port on 127.0.0.1 (0 picks a free one)",
    )
    acquirer.add_argument(
        "--latency-ms",
        type=number(Bound(0, 60_000, "ms")),
        default=0.0,
        metavar="MS",
        help="a WAN: each answer leaves MS after its request came, the next ones answered "
        "meanwhile (30: a 30 ms round trip)",
    )
    acquirer.add_argument(
        "--latency-jitter-ms",
        dest="jitter_ms",
        type=number(Bound(0, 60_000, "ms")),
        default=0.0,
        metavar="MS",
        help="plus a random 0..MS per answer: answers overtake each other",
    )
    acquirer.add_argument(
        "--advice-code",
        metavar="CODE",
        help="answer every advice (0220/0221) with CODE, e.g. 30: a host that refuses them",
    )
    add_wire_options(acquirer)
    acquirer.set_defaults(handler=_acquirer)

    add_run_and_doctor(commands)
    add_drill(commands)
    add_host(commands)
    add_pin(commands)
    add_receipt(commands)
    add_card(commands)

    diagram = commands.add_parser(
        "diagram",
        help="print the state chart (Mermaid) generated from the transition table",
        description="Print the terminal's state chart as Mermaid. Example: pitill diagram > c.mmd",
    )
    diagram.set_defaults(handler=_diagram)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; whatever goes wrong ends in one line on stderr and a non-zero exit.

    Output into a pipe whose reader is gone (`pitill journal list | head -1`) ends quietly with
    141 (128 + SIGPIPE), as every Unix filter does: the reader has what it wanted.
    """
    try:
        try:
            return _run(argv)
        finally:  # also after --help: a closed pipe shows here, not in the interpreter's exit
            sys.stdout.flush()
    except BrokenPipeError:
        _detach_stdout()
        return 141


def _run(argv: Sequence[str] | None) -> int:
    command = ""
    try:
        args = build_parser().parse_args(argv)
        command = args.command
        handler: Handler = args.handler
        return handler(args)
    except PitillError as exc:
        _say(str(exc))
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        raise
    except OSError as exc:
        if exc.filename is not None:
            _say(f"{exc.filename}: {(exc.strerror or str(exc)).lower()}; check the path")
        else:
            _say(f"{exc.strerror or exc}")
        return 1
    except Exception as exc:
        if os.environ.get("PITILL_TRACEBACK"):
            raise
        if command == "run":  # the service: journald keeps the traceback for the bug report
            logging.getLogger("pitill").critical("uncaught_exception", exc_info=True)
        _say(
            f"unexpected {type(exc).__name__}: {exc} (a bug: please report it with the "
            "command; PITILL_TRACEBACK=1 shows where it happened)"
        )
        return 70


def _say(message: str) -> None:
    """One line on stderr, whatever the message holds."""
    print("pitill: " + " ".join(message.splitlines()), file=sys.stderr)


def _detach_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
