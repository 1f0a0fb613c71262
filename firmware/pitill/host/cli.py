"""`pitill host …`: serve the program's terminals, and keep its accounts from the command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from pitill.core.types import format_amount, parse_amount
from pitill.errors import ConfigError
from pitill.host.cards import parse_card
from pitill.host.store import Account, HostStore
from pitill.logs import configure_logging, log_event

Commands = Any  # argparse's private _SubParsersAction
log_host = logging.getLogger("pitill.host")
DEFAULT_DIR = Path("host-data")
EXAMPLES = """examples:
  pitill host serve --data-dir /var/lib/pitill-host --listen 0.0.0.0:8583
  pitill host account add 6280001234567891 --balance 20.00 --holder "Ada"
  pitill host account add uid:04A1B2C3D4E5F6
  pitill host account topup 6280001234567891 10
  pitill host account show 6280001234567891 --json
  pitill host account block 6280001234567891
  pitill host account replace 6280001234567891 uid:04A1B2C3D4E5F6
  pitill host report --json"""


def _amount(text: str) -> int:
    try:
        return parse_amount(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(commands: Commands) -> None:
    host = commands.add_parser(
        "host",
        help="the closed-loop program's host: accounts, balances, terminals",
        description=(
            "The host a closed-loop card program runs: one account per card (a PAN, or "
            "uid:HEX for an NFC tag) with a balance; it authorizes sales against the balance, "
            "takes every offline sale after an outage (a debt if it overdraws, a loss on a "
            "blocked card) and answers every message exactly once. Data lives in --data-dir "
            "(SQLite)."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = host.add_subparsers(dest="host_command", metavar="COMMAND", required=True)

    def with_dir(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument(
            "--data-dir",
            type=Path,
            default=DEFAULT_DIR,
            metavar="DIR",
            help=f"the host's database and card key (default {DEFAULT_DIR})",
        )
        return parser

    serve = with_dir(
        sub.add_parser(
            "serve",
            help="answer the terminals (ISO 8583 over TCP) until SIGINT/SIGTERM",
            epilog="example: pitill host serve --data-dir host-data --listen 127.0.0.1:8583",
        )
    )
    serve.add_argument(
        "--listen",
        default="127.0.0.1:8583",
        metavar="ADDR",
        help="HOST:PORT to listen on (default 127.0.0.1:8583; 0 as the port picks a free one)",
    )
    serve.set_defaults(handler=_serve)

    account = sub.add_parser(
        "account",
        help="add, show, top up, pay out, block or replace a card's account",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    acts = account.add_subparsers(dest="account_command", metavar="ACTION", required=True)
    add = with_dir(acts.add_parser("add", help="open an account for CARD"))
    add.add_argument("card", metavar="CARD", help="a PAN, or uid:HEX for an NFC tag")
    add.add_argument("--balance", type=_amount, default=0, metavar="AMOUNT", help="e.g. 20.00")
    add.add_argument("--holder", default="", help="the holder's name (optional)")
    add.set_defaults(handler=_account_add)
    show = with_dir(acts.add_parser("show", help="balance, status, debt and history"))
    show.add_argument("card", metavar="CARD")
    show.add_argument("--json", action="store_true", help="as one JSON object")
    show.set_defaults(handler=_account_show)
    for name, what in (("topup", "credit the account"), ("payout", "pay money back out")):
        parser = with_dir(acts.add_parser(name, help=what))
        parser.add_argument("card", metavar="CARD")
        parser.add_argument("amount", type=_amount, metavar="AMOUNT", help="e.g. 12.50")
        parser.set_defaults(handler=_account_money, action=name)
    for name, status in (("block", "blocked"), ("unblock", "active"), ("lost", "lost")):
        parser = with_dir(acts.add_parser(name, help=f"mark the card {status}"))
        parser.add_argument("card", metavar="CARD")
        parser.set_defaults(handler=_account_status, status=status)
    replace = with_dir(acts.add_parser("replace", help="move the balance to a new card"))
    replace.add_argument("old", metavar="OLD")
    replace.add_argument("new", metavar="NEW")
    replace.set_defaults(handler=_account_replace)

    report = with_dir(sub.add_parser("report", help="money held, taken, owed and lost"))
    report.add_argument("--json", action="store_true", help="as one JSON object")
    report.set_defaults(handler=_report)


def _store(args: argparse.Namespace) -> HostStore:
    return HostStore.open(args.data_dir)


def _describe(account: Account) -> str:
    debt = f", debt {format_amount(account.debt_minor)}" if account.debt_minor else ""
    holder = f" ({account.holder})" if account.holder else ""
    return (
        f"{account.card_shown}{holder}: {account.status}, balance "
        f"{format_amount(account.balance_minor)}{debt}"
    )


def _account_add(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        account = store.add_account(parse_card(args.card), args.balance, args.holder)
    finally:
        store.close()
    print(_describe(account))
    return 0


def _account_show(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        account = store.require(parse_card(args.card))
        history = store.history(account)
    finally:
        store.close()
    if args.json:
        print(
            json.dumps(
                {
                    "card": account.card_shown,
                    "holder": account.holder,
                    "status": account.status,
                    "balance_minor": account.balance_minor,
                    "debt_minor": account.debt_minor,
                    "history": [vars(m) for m in history],
                }
            )
        )
        return 0
    print(_describe(account))
    for m in history:
        where = f" {m.terminal_id} STAN {m.stan}" if m.terminal_id else ""
        flag = f" [{m.flag}]" if m.flag else ""
        print(
            f"  {m.at}  {m.kind:12} {format_amount(m.amount_minor):>10}  "
            f"-> {format_amount(m.balance_after_minor)}{where}{flag}"
        )
    return 0


def _account_money(args: argparse.Namespace) -> int:
    store = _store(args)
    card = parse_card(args.card)
    try:
        if args.action == "topup":
            account, paid_minor = store.topup(card, args.amount)
            extra = f" (paid off a debt of {format_amount(paid_minor)})" if paid_minor else ""
        else:
            account, extra = store.payout(card, args.amount), ""
    finally:
        store.close()
    print(_describe(account) + extra)
    return 0


def _account_status(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        account = store.set_status(parse_card(args.card), args.status)
    finally:
        store.close()
    print(_describe(account))
    return 0


def _account_replace(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        account = store.replace(parse_card(args.old), parse_card(args.new))
    finally:
        store.close()
    print(_describe(account))
    return 0


def _report(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        totals = store.totals()
        losses = store.losses()
    finally:
        store.close()
    totals["losses"] = losses
    if args.json:
        print(json.dumps(totals))
        return 0
    print(f"held on cards   {format_amount(totals['balances_minor']):>12}")
    print(f"owed (debts)    {format_amount(totals['debts_minor']):>12}")
    print(
        f"lost (offline sales on refused cards) {losses['count']}: "
        f"{format_amount(losses['amount_minor'])}"
    )
    for kind, figures in totals["movements"].items():
        print(f"  {kind:20} {figures['count']:>6}  {format_amount(figures['amount_minor']):>12}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from pitill.host.server import HostServer
    from pitill.web.bind import parse_bind

    bind = parse_bind(args.listen, what="--listen")
    configure_logging(level="INFO", stream=sys.stderr)
    store = _store(args)

    async def main() -> None:
        server = HostServer(store, bind.host, bind.port)
        await server.start()
        print(f"pitill host: listening on {bind.host}:{server.port}", flush=True)
        log_event(log_host, "host_listening", host=bind.host, port=server.port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await server.close()

    try:
        asyncio.run(main())
    except OSError as exc:
        raise ConfigError(f"--listen {args.listen}: cannot listen there ({exc.strerror})") from None
    finally:
        store.close()
    return 0
