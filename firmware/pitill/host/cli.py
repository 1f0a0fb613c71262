"""`pitill host …`: serve the program's terminals, and keep its accounts from the command line."""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import logging
import secrets
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from pitill.card.sun import SANDBOX_MASTER_KEY, SANDBOX_META_KEY
from pitill.cliargs import add_wire_options, number, wire_of
from pitill.config import Bound, UpstreamConfig
from pitill.core.types import format_amount, parse_amount
from pitill.errors import ConfigError
from pitill.host.cards import (
    SUN_MASTER_KEY_NAME,
    SUN_META_KEY_NAME,
    SunKeys,
    parse_card,
    write_sun_keys,
)
from pitill.host.store import Account, HostStore
from pitill.logs import configure_logging, log_event

Commands = Any  # argparse's private _SubParsersAction
log_host = logging.getLogger("pitill.host")
POSTGRES_WORKERS = 8  # connections of one host process to PostgreSQL
DEFAULT_DIR = Path("host-data")
MAX_HOLDER_CHARS = 80
EXAMPLES = """examples:
  pitill host serve --data-dir /var/lib/pitill-host --listen 127.0.0.1:8583
  pitill host account add 6280001234567895 --balance 20.00 --holder "Ada"
  pitill host account add uid:04A1B2C3D4E5F6
  pitill host sun-keys init   # NTAG 424 DNA cards: the keys the host checks their taps with
  pitill host account topup 6280001234567895 10
  pitill host account show 6280001234567895 --json
  pitill host account block 6280001234567895
  pitill host account replace 6280001234567895 uid:04A1B2C3D4E5F7
  pitill host terminal add till-1 --out till-1 --host host.example --port 8583
  pitill host serve --data-dir host-data --listen 0.0.0.0:8583 --tls --tls-name host.example
  pitill host report --json
  pitill host report --day 2026-11-30 --settlement-csv settlement.csv
  pitill host operator add ada --role admin
  pitill host serve --data-dir host-data --listen 0.0.0.0:8583 --tls --web 127.0.0.1:8590"""

COUNT = Bound(0, 1_000_000)  # sales, advices or cards of a load run


def _one_line(what: str) -> Callable[[str], str]:
    """A holder's or a terminal's name is echoed by show, list and the report (and a terminal's
    written into its terminal.toml): one printable line, never an escape sequence."""

    def check(text: str) -> str:
        if not text.isprintable() or len(text) > MAX_HOLDER_CHARS:
            raise argparse.ArgumentTypeError(
                f"{what} {text[:20]!r}: at most {MAX_HOLDER_CHARS} printable characters, one line"
            )
        return text

    return check


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
        parser.add_argument(
            "--database",
            default=None,
            metavar="URL",
            help="keep accounts in this PostgreSQL database (postgresql://user@host/db) "
            "instead of SQLite in --data-dir; the card key stays in --data-dir",
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
    serve.add_argument(
        "--tls",
        action="store_true",
        help="mutual TLS: only terminals enrolled with `pitill host terminal add` get in "
        "(needed for any --listen but a loopback one)",
    )
    serve.add_argument(
        "--tls-name",
        action="append",
        default=[],
        metavar="NAME",
        help="a name or address terminals dial this host by, for its certificate (repeat it; "
        "default: localhost, 127.0.0.1 and the --listen address)",
    )
    serve.add_argument(
        "--web",
        default=None,
        metavar="ADDR",
        help="serve the dashboard at ADDR (e.g. 127.0.0.1:8590; operators log in: add them "
        "with `pitill host operator add`)",
    )
    add_wire_options(serve)
    serve.set_defaults(handler=_serve)

    operator = sub.add_parser(
        "operator",
        help="the dashboard's operators: add (or reset), list, remove",
        epilog="example: pitill host operator add ada --role admin  (asks for the password; "
        "or: printf '%s\\n' \"$PW\" | pitill host operator add ada --role cashier)",
    )
    oacts = operator.add_subparsers(dest="operator_command", metavar="ACTION", required=True)
    oadd = with_dir(
        oacts.add_parser(
            "add",
            help="add NAME, or give it a new role and password (and lift a lockout)",
            description="The password is asked for twice at a terminal, or read as one line "
            "from standard input; it is stored only as a salted scrypt hash.",
        )
    )
    oadd.add_argument("name", metavar="NAME")
    oadd.add_argument("--role", choices=("admin", "cashier"), required=True)
    oadd.set_defaults(handler=_operator_add)
    olist = with_dir(oacts.add_parser("list", help="the operators, their roles and lockouts"))
    olist.set_defaults(handler=_operator_list)
    oremove = with_dir(oacts.add_parser("remove", help="remove NAME"))
    oremove.add_argument("name", metavar="NAME")
    oremove.set_defaults(handler=_operator_remove)

    terminal = sub.add_parser(
        "terminal",
        help="enroll a terminal (its certificate and config), list or revoke them",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tacts = terminal.add_subparsers(dest="terminal_command", metavar="ACTION", required=True)
    enroll = with_dir(
        tacts.add_parser(
            "add",
            help="issue a terminal's certificate and write DIR/terminal.toml for it",
            description=(
                "Issue the terminal NAME a client certificate from the program's CA and write it, "
                "its key, the CA and a terminal.toml holding [terminal] terminal_id and the "
                "[upstream] section (address, TLS files) to --out DIR; `pitill run --config "
                "DIR/terminal.toml` and `pitill sim --config DIR/terminal.toml` take it as it is. "
                "Adding NAME again issues a new certificate and the old one stops working."
            ),
        )
    )
    enroll.add_argument("name", type=_one_line("terminal name"), metavar="NAME", help="e.g. till-1")
    enroll.add_argument("--out", type=Path, required=True, metavar="DIR")
    enroll.add_argument(
        "--id", default=None, help="its terminal id (8 characters; default: from NAME)"
    )
    enroll.add_argument(
        "--host", default="127.0.0.1", help="the name or address it dials (default 127.0.0.1)"
    )
    enroll.add_argument(
        "--port",
        type=number(Bound(1, 65535), integer=True),
        default=8583,
        help="the port (default 8583)",
    )
    enroll.set_defaults(handler=_terminal_add)
    listing = with_dir(tacts.add_parser("list", help="the enrolled terminals"))
    listing.set_defaults(handler=_terminal_list)
    revoke = with_dir(tacts.add_parser("revoke", help="refuse this terminal from now on"))
    revoke.add_argument("terminal_id", metavar="ID")
    revoke.set_defaults(handler=_terminal_revoke)

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
    add.add_argument(
        "--holder", type=_one_line("holder"), default="", help="the holder's name (optional)"
    )
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

    report = with_dir(
        sub.add_parser(
            "report",
            help="settlement per terminal and for the program, debts, losses, outages",
            description=(
                "The settlement of a day (default today) or a range, by the host's clock in "
                "UTC: sales online and offline, reversals, refunds, top-ups, payouts, debts, "
                "losses, offline refunds the host refused (the holder may be owed: see them) "
                "and the offline share, per terminal and for the program; the money "
                "held and owed now; and the outages (offline sales by when they happened and "
                "when their advices arrived, and the connection gaps the host saw)."
            ),
            epilog="examples:\n  pitill host report --day 2026-11-30\n"
            "  pitill host report --from 2026-11-01 --to 2026-11-30 --json\n"
            "  pitill host report --settlement-csv today.csv --csv movements.csv",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    report.add_argument("--json", action="store_true", help="as one JSON object")
    report.add_argument("--day", metavar="YYYY-MM-DD", help="one day (UTC; default today)")
    report.add_argument("--from", dest="since", metavar="YYYY-MM-DD", help="first day of a range")
    report.add_argument("--to", dest="until", metavar="YYYY-MM-DD", help="last day (inclusive)")
    report.add_argument(
        "--csv", type=Path, metavar="FILE", help="also write the period's movements to FILE (CSV)"
    )
    report.add_argument(
        "--settlement-csv",
        type=Path,
        metavar="FILE",
        help="also write the settlement to FILE: one row per terminal and one for the program",
    )
    report.set_defaults(handler=_report)

    backup = with_dir(
        sub.add_parser(
            "backup",
            help="copy the SQLite store while the host keeps serving",
            epilog="example: pitill host backup --data-dir host-data /media/usb/host-2026-11-30.db",
        )
    )
    backup.add_argument("target", type=Path, metavar="FILE", help="a new file")
    backup.set_defaults(handler=_backup)

    sun_keys = sub.add_parser("sun-keys", help="the program's NTAG 424 DNA (SUN) keys")
    sun_acts = sun_keys.add_subparsers(dest="sun_keys_command", metavar="ACTION", required=True)
    sun_init = with_dir(
        sun_acts.add_parser(
            "init",
            help="make the program's SUN keys in --data-dir (sun-meta.key, sun-master.key)",
            description=(
                "Write the program's two AES-128 keys (32 hex digits, 0600) into --data-dir, "
                "never over existing ones: sun-meta.key (the SDM meta read key: copy it to each "
                "terminal's reader.sun_meta_key_file and to `pitill card enroll`) and "
                "sun-master.key (each card's key is diversified from it: keep it on the host "
                "and the enrolling machine only). The host verifies every SUN tap with them."
            ),
            epilog="examples:\n  pitill host sun-keys init --data-dir host-data\n"
            "  pitill host sun-keys init --data-dir demo --sandbox   # the simulator's cards",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    sun_init.add_argument(
        "--sandbox",
        action="store_true",
        help="the sandbox program's public keys, which `pitill sim`'s virtual cards use: for "
        "tests and demos only, never for real cards",
    )
    sun_init.set_defaults(handler=_sun_keys_init)

    load = with_dir(
        sub.add_parser(
            "load",
            help="many terminals in one process against a running host: figures and a check",
            description=(
                "Simulate TERMINALS terminals speaking the real protocol to a running `pitill "
                "host serve` on the same store: online sales, then an outage's backlog forwarded "
                "by every terminal at once (or spread by --jitter); print sales/s, p50/p99, the "
                "time to settle, and check the host's books (0 lost, 0 charged twice). It adds "
                "test cards (628…) to the store: use a test store, never a live one."
            ),
            epilog=(
                "example: pitill host load --data-dir /tmp/h --connect 127.0.0.1:8583 "
                "--terminals 200 --sales 20 --advices 50 --jitter 2"
            ),
        )
    )
    load.add_argument("--connect", required=True, metavar="HOST:PORT", help="the running host")
    load.add_argument("--terminals", type=number(Bound(1, 10_000), integer=True), default=50)
    load.add_argument(
        "--sales", type=number(COUNT, integer=True), default=20, help="online sales per terminal"
    )
    load.add_argument(
        "--advices", type=number(COUNT, integer=True), default=50, help="offline sales per terminal"
    )
    load.add_argument(
        "--jitter",
        type=number(Bound(0, 3600, "s")),
        default=0.0,
        metavar="S",
        help="each terminal starts forwarding after a random 0..S s, the terminal's own rule "
        "(upstream.forward_jitter_s; default 0: a stampede)",
    )
    load.add_argument(
        "--window",
        type=number(Bound(1, 256), integer=True),
        default=UpstreamConfig.forward_window,
        help="advices each terminal has in flight at most, the window opening and closing as "
        "the terminal's forwarder does (upstream.forward_window; default "
        f"{UpstreamConfig.forward_window}; 1: one at a time)",
    )
    load.add_argument(
        "--cards",
        type=number(COUNT, integer=True),
        default=0,
        help="distinct cards (default: one each)",
    )
    load.set_defaults(handler=_load)


def _sun_keys_init(args: argparse.Namespace) -> int:
    if args.sandbox:
        keys = SunKeys(SANDBOX_META_KEY, SANDBOX_MASTER_KEY)
    else:
        keys = SunKeys(secrets.token_bytes(16), secrets.token_bytes(16))
    try:
        args.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--data-dir {args.data_dir}: {exc.strerror}") from None
    write_sun_keys(args.data_dir, keys)
    which = "the sandbox program's public keys" if args.sandbox else "new random keys"
    print(
        f"wrote {which} to {args.data_dir / SUN_META_KEY_NAME} (for terminals and enrolling) "
        f"and {args.data_dir / SUN_MASTER_KEY_NAME} (host and enrolling only)"
    )
    return 0


def _store(args: argparse.Namespace, *, create: bool = False) -> HostStore:
    """The store; only commands that start a program (account add, terminal add, serve) may
    create its data directory: a mistyped --data-dir elsewhere is an error, not a new program."""
    if not create and not args.data_dir.is_dir():
        raise ConfigError(
            f"--data-dir {args.data_dir}: no host data here; give the directory `pitill host "
            "serve` uses (a new program starts with `pitill host account add` or `terminal add`)"
        )
    return HostStore.open(args.data_dir, args.database)


def _describe(account: Account) -> str:
    debt = f", debt {format_amount(account.debt_minor)}" if account.debt_minor else ""
    holder = f" ({account.holder})" if account.holder else ""
    return (
        f"{account.card_shown}{holder}: {account.status}, balance "
        f"{format_amount(account.balance_minor)}{debt}"
    )


def _account_add(args: argparse.Namespace) -> int:
    store = _store(args, create=True)
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


def _load(args: argparse.Namespace) -> int:
    from pitill.host.load import AMOUNT_MINOR, check_books, prepare_accounts, run_load
    from pitill.web.bind import parse_bind

    target = parse_bind(args.connect, what="--connect")
    for name in ("terminals", "sales", "advices"):
        if not 1 <= getattr(args, name) <= 10_000:
            raise ConfigError(f"--{name} {getattr(args, name)}: must be 1..10000")
    if not 0 <= args.jitter <= 600:
        raise ConfigError(f"--jitter {args.jitter}: must be 0..600 s")
    cards = args.cards or args.terminals
    per_card = -(-args.terminals // cards) * (args.sales + args.advices) * AMOUNT_MINOR
    store = _store(args)
    try:
        prepare_accounts(store, cards, per_card * 10)
        result = asyncio.run(
            run_load(
                target.host,
                target.port,
                terminals=args.terminals,
                sales=args.sales,
                advices=args.advices,
                jitter_s=args.jitter,
                cards=cards,
                window=args.window,
            )
        )
        result.problems = check_books(store, result)
    finally:
        store.close()
    print(json.dumps(result.summary()))
    return 0 if not result.problems else 1


def _backup(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        accounts = store.backup(args.target)
    finally:
        store.close()
    print(f"backed up {accounts} accounts to {args.target} (integrity checked)")
    return 0


def _write_csv(path: Path, option: str, rows: Iterable[list[str]]) -> None:
    try:
        with path.open("x", newline="", encoding="utf-8") as out:
            csv.writer(out).writerows(rows)
    except FileExistsError:
        raise ConfigError(f"{option} {path}: exists already; give a new file") from None
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot write it ({exc.strerror})") from None


def _report(args: argparse.Namespace) -> int:
    from dataclasses import asdict
    from datetime import UTC, datetime

    from pitill.host.settlement import (
        ALL_TIME,
        outage_view,
        outstanding,
        period,
        settle,
        settlement_csv,
    )

    now = datetime.now(UTC)
    since, until = period(args.day, args.since, args.until, now.date())
    store = _store(args)
    try:
        movements = store.movements_by_kind()
        ever, _ = settle(store, *ALL_TIME)
        program, terminals = settle(store, since, until)
        now_figures = outstanding(store)
        view = outage_view(store, now, since)
        if args.csv is not None:
            _write_csv(args.csv, "--csv", store.movements_csv(since, until))
        if args.settlement_csv is not None:
            _write_csv(args.settlement_csv, "--settlement-csv", settlement_csv(program, terminals))
    finally:
        store.close()
    refunds = asdict(ever.money["refunds"])  # credited back to cards, online and offline
    losses, refused = asdict(ever.losses), asdict(ever.refused_refunds)
    if args.json:
        report = {
            # all time (the settlement's rules; balances and debts: now)
            "movements": movements,
            "balances_minor": now_figures["held_minor"],
            "debts_minor": now_figures["debts_minor"],
            "refunds": refunds,
            "losses": losses,
            "refused_refunds": refused,
            "from": since,
            "to": until,
            "program": program.as_dict(),
            "terminals": {tid: s.as_dict() for tid, s in terminals.items()},
            "now": now_figures,
            **view.as_dict(),
        }
        print(json.dumps(report))
        return 0
    print(f"settlement {since} .. {until} (host clock, UTC; the end excluded)")
    for line in _settlement_lines(program, terminals):
        print(line)
    print(f"held on cards   {format_amount(now_figures['held_minor']):>12}")
    print(f"refunded        {format_amount(refunds['amount_minor']):>12}  ({refunds['count']})")
    print(
        f"owed (debts)    {format_amount(now_figures['debts_minor']):>12}  "
        f"({now_figures['accounts_owing']} accounts)"
    )
    print(
        f"lost (offline sales on refused cards, all time) {losses['count']}: "
        f"{format_amount(losses['amount_minor'])}"
    )
    print(
        f"offline refunds refused (not credited: see the holders, all time) {refused['count']}: "
        f"{format_amount(refused['amount_minor'])}"
    )
    if view.outages or view.gaps:
        print("outages (offline sales: when sold, when their advices arrived):")
    for o in view.outages:
        print(
            f"  {o.terminal_id}  sold {o.first_sale_at} .. {o.last_sale_at}: {o.sales.count} "
            f"for {format_amount(o.sales.amount_minor)}, settled {o.approved.count}, declined "
            f"{o.declined.count}, debts {o.debts}; advices {o.first_arrival_at} .. "
            f"{o.last_arrival_at} [{o.state}]"
        )
    for g in view.gaps:
        print(f"  {g.terminal_id}  link lost {g.down_at}, back {g.up_at or 'not yet'}")
    return 0


def _settlement_lines(program: Any, terminals: dict[str, Any]) -> Iterator[str]:
    from pitill.host.settlement import settlement_rows

    rows = settlement_rows(program, terminals)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        yield "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )


def terminal_id_for(name: str, given: str | None) -> str:
    """ISO 8583 field 41: eight printable ASCII characters."""
    if given is not None:
        if len(given) != 8 or not given.isascii() or not given.isprintable():
            raise ConfigError(f"--id {given!r}: a terminal id is 8 printable ASCII characters")
        return given
    letters = "".join(c for c in name.upper() if c.isascii() and c.isalnum())[:8]
    if not letters:
        raise ConfigError(f"terminal {name!r}: no letters or digits to make an id; give --id")
    return letters.ljust(8, "0")


def _terminal_add(args: argparse.Namespace) -> int:
    import tomllib

    from pitill.config import config_from_dict
    from pitill.host.pki import ProgramCA

    terminal_id = terminal_id_for(args.name, args.id)
    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: must be 1..65535")
    store = _store(args, create=True)
    try:
        holder = store.terminal(terminal_id)
    finally:
        store.close()
    if holder is not None and holder.name != args.name and holder.status == "active":
        raise ConfigError(
            f"terminal id {terminal_id} belongs to the enrolled terminal {holder.name!r}; "
            f"give {args.name!r} its own --id, or revoke {terminal_id} first"
        )
    out = args.out.resolve()
    toml = (  # json.dumps writes a valid TOML basic string: quotes and backslashes escaped
        f"# pitill host terminal add {' '.join(args.name.split())}: the config `pitill run "
        "--config` and `pitill sim --config` take as it is\n"
        f"[terminal]\nterminal_id = {json.dumps(terminal_id)}\n\n"
        f"[upstream]\nhost = {json.dumps(args.host)}\nport = {args.port}\ntls = true\n"
        f"tls_ca_file = {json.dumps(str(out / 'ca.pem'))}\n"
        f"tls_cert_file = {json.dumps(str(out / 'terminal.pem'))}\n"
        f"tls_key_file = {json.dumps(str(out / 'terminal-key.pem'))}\n"
    )
    config_from_dict(tomllib.loads(toml))  # the terminal's own checks, before anything is issued
    ca = ProgramCA(args.data_dir)
    issued = ca.issue_terminal(terminal_id)
    try:
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
        (out / "ca.pem").write_bytes(ca.cert_path.read_bytes())
        (out / "terminal.pem").write_bytes(issued.cert_pem)
        with (out / "terminal-key.pem").open("wb") as key_file:
            (out / "terminal-key.pem").chmod(0o600)
            key_file.write(issued.key_pem)
        (out / "terminal.toml").write_text(toml, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--out {args.out}: cannot write there ({exc.strerror})") from None
    store = _store(args)
    try:
        store.enroll(terminal_id, args.name, issued.fingerprint)
    finally:
        store.close()
    print(f"terminal {args.name} enrolled as {terminal_id}; its config: {out / 'terminal.toml'}")
    return 0


def _terminal_list(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        for t in store.terminals():
            seen = f"last seen {t.last_seen_at} STAN {t.last_stan}" if t.last_seen_at else "unseen"
            print(f"{t.terminal_id}  {t.name:16} {t.status:8} enrolled {t.enrolled_at}  {seen}")
    finally:
        store.close()
    return 0


def _terminal_revoke(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        store.revoke(args.terminal_id)
    finally:
        store.close()
    print(f"terminal {args.terminal_id} revoked: its certificate is refused from now on")
    return 0


def _read_password() -> str:
    """The new password: asked twice at a terminal, else one line of standard input."""
    import getpass

    from pitill.host.operators import check_password

    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise ConfigError("the two passwords differ; run the command again")
    else:
        first = sys.stdin.readline().rstrip("\r\n")
    return check_password(first)


def _operator_add(args: argparse.Namespace) -> int:
    from pitill.host.operators import add_operator, check_name

    check_name(args.name)
    password = _read_password()
    store = _store(args, create=True)
    try:
        operator = add_operator(store, args.name, args.role, password)
    finally:
        store.close()
    print(f"operator {operator.name} ({operator.role}) saved")
    return 0


def _operator_list(args: argparse.Namespace) -> int:
    from pitill.host.operators import operators

    store = _store(args)
    try:
        for name, role, locked in operators(store):
            print(f"{name:24} {role:8} {'locked until ' + locked if locked else ''}".rstrip())
    finally:
        store.close()
    return 0


def _operator_remove(args: argparse.Namespace) -> int:
    from pitill.host.operators import remove_operator

    store = _store(args)
    try:
        remove_operator(store, args.name)
    finally:
        store.close()
    print(f"operator {args.name} removed")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from pitill.host.server import HostServer, server_context
    from pitill.web.bind import parse_bind

    bind = parse_bind(args.listen, what="--listen")
    if not bind.loopback and not args.tls:
        # plain ISO 8583 has no sender: anyone who reached the port could top up any card
        raise ConfigError(
            f"--listen {args.listen}: without --tls any machine that reaches this port could "
            "top up any card, read balances and reverse sales; add --tls (terminals enrolled "
            "with `pitill host terminal add`), or listen on 127.0.0.1"
        )
    web = parse_bind(args.web, what="--web") if args.web is not None else None
    configure_logging(level="INFO", stream=sys.stderr)
    tls = None
    if args.tls:
        from pitill.host.pki import ProgramCA

        ca = ProgramCA(args.data_dir)
        names = args.tls_name or ["localhost", "127.0.0.1", bind.host]
        cert, key = ca.server_files([n for n in names if n not in ("0.0.0.0", "::")])
        tls = server_context(cert, key, ca.cert_path)
    store = _store(args, create=True)

    async def main() -> None:
        # PostgreSQL takes many writers at once: a pool of connections; SQLite takes one.
        pool = (lambda: HostStore.open(args.data_dir, args.database)) if args.database else None
        server = HostServer(
            store,
            bind.host,
            bind.port,
            tls=tls,
            open_store=pool,
            workers=POSTGRES_WORKERS,
            wire=wire_of(args),
        )
        await server.start()
        print(f"pitill host: listening on {bind.host}:{server.port}", flush=True)
        log_event(
            log_host,
            "host_listening",
            host=bind.host,
            port=server.port,
            bitmap=server.wire.bitmap,
            length_prefix=server.wire.length_prefix,
        )
        dashboard = None
        if web is not None:
            from pitill.host.dashboard import Dashboard

            dashboard = Dashboard(web, lambda: HostStore.open(args.data_dir, args.database))
            try:
                await dashboard.start()
            except BaseException:
                await server.close()
                raise
            print(f"pitill host: dashboard at {dashboard.url}", flush=True)
            if not web.loopback:
                log_event(
                    log_host, "dashboard_not_loopback", level=logging.WARNING, address=web.host,
                    advice="plain HTTP: passwords cross the network in clear; use an SSH tunnel "
                    "or a TLS reverse proxy in front of a loopback --web",
                )  # fmt: skip
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            if dashboard is not None:
                await dashboard.close()
            await server.close()

    try:
        asyncio.run(main())
    except OSError as exc:
        raise ConfigError(f"--listen {args.listen}: cannot listen there ({exc.strerror})") from None
    finally:
        store.close()
    return 0
