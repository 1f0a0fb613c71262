"""End of day: what each terminal and the program took, paid out and lost, and the outages.

Read-only queries over the host's own tables (`movements`, `messages`, `links`), the same SQL on
SQLite and PostgreSQL. A period is a half-open range of the host's clock (UTC, ISO text):
money counts on the day the host booked it, so an offline sale counts on the day its advice
arrived (the terminal's local time of the sale is in the outage view).

- Money by category, from `movements` (each kind of movement has one category, KIND_CATEGORY;
  a kind this module does not know yet is still shown, as itself).
- Debts: debits that overdrew (HostStore.debit: offline sales, reversals of spent top-ups),
  and how much each pushed the balance below zero.
- Losses: offline sales the host declined after the fact (classify_message; the report's
  all-time figures are the settlement of ALL_TIME).
- Refused refunds: offline refunds (processing code 20) the host declined after the fact: the
  terminal told the customer the card was credited and the host did not credit it. No money
  of the program's is lost, but the holder may be owed: its own heading, for the operator.
- Offline share: approved online sales against approved offline ones, count and amount.
- A terminal's day as its 0500 gives it (`day_totals`, the 0510's fields 74-89), counted by
  core/settlement.py's rules over the same classification of messages (`classify_message`).
- Outages: per terminal, runs of offline sales (advices between two online sales, ordered by the
  sale's own instant, field 7) with when they happened and when their advices arrived, and the
  gaps in the terminal's connections the host saw (`links`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pitill.core.responses import REVERSAL_REASON_CUSTOMER_CANCELLATION, AnswerKind, classify
from pitill.core.responses import ResponseClass as Class
from pitill.core.settlement import Reconciliation, add_to_reconciliation
from pitill.core.types import format_amount
from pitill.errors import ConfigError
from pitill.host.store import HostStore
from pitill.upstream.messages import Batch, is_refund_code

HOST_DESK = "host"  # movements no terminal made: the command line and the dashboard
# Advices still coming in: the last one arrived less than this long ago, or the terminal is
# disconnected now (whatever it sells meanwhile arrives when it is back).
SETTLE_QUIET_S = 120
GAP_MIN_S = 5  # a reconnect quicker than this is a blip, not an outage
ALL_TIME = ("", "9999")  # every row: host times are ISO text

KIND_CATEGORY = {
    "sale": "sales_online",
    "offline_sale": "sales_offline",
    "reversal": "reversals",
    "topup": "topups",
    "refund": "refunds",
    "offline_refund": "refunds",  # given while the host was away, advised after (FN 4)
    "refund_reversal": "refund_reversals",  # a refund whose 0200 timed out, taken back
    "payout": "payouts",
    "moved_out": "transfers",
    "moved_in": "transfers",
}
# A reversal gives back what its original moved: a sale's (money back onto the card) is in
# "reversals"; a staffed terminal's top-up's (money off the card again) in "topup_reversals".
TOPUP_REVERSALS = "topup_reversals"
CATEGORIES = (
    "sales_online",
    "sales_offline",
    "reversals",
    "refunds",
    "topups",
    TOPUP_REVERSALS,
    "refund_reversals",
    "payouts",
    "transfers",
)
# What a sale or advice the host answered was, besides the category of the movement it made.
INQUIRY = "inquiry"  # approved without moving money: a balance inquiry
LOSS = "losses"  # an advice the host declined after the fact: the merchant's loss
# An offline refund the host declined after the fact: promised at the terminal, not credited.
REFUSED_REFUND = "refused_refunds"
DECLINED = "declined"  # a sale the host declined: nothing happened
# core/settlement.py's kinds for the 0510: a movement that takes money from the card's account
# is a debit (a sale, online or offline); one that puts money on it is a credit (a top-up, or a
# refund): by its sign, so a new kind of movement needs no change here.
DEBIT, CREDIT = "card", "topup"


def classify_message(klass: str, code: str, moved_kind: str, processing_code: str) -> str:
    """What one sale (0200) or advice (0220) the host answered with `code` was, `moved_kind`
    the kind of the movement it made ('' for none), `processing_code` its field 3 ('' when
    stored before the host kept it): the one rule behind the settlement's approvals, losses
    and refused refunds, the outage view and the 0510's totals. Approved is
    core/responses.py's rule."""
    answer = AnswerKind.SALE if klass == "sale" else AnswerKind.ADVICE
    if classify(code, answer) is not Class.APPROVED:
        if klass != "advice":
            return DECLINED
        return REFUSED_REFUND if is_refund_code(processing_code) else LOSS
    if not moved_kind:
        return INQUIRY
    return KIND_CATEGORY.get(moved_kind, moved_kind)


@dataclass
class Figures:
    count: int = 0
    amount_minor: int = 0

    def add(self, count: int, amount_minor: int) -> None:
        self.count += count
        self.amount_minor += amount_minor


@dataclass
class Settlement:
    """One terminal's (or the program's) figures for a period. Amounts are positive: money
    taken for sales, given back by reversals and refunds, loaded by top-ups."""

    money: dict[str, Figures] = field(default_factory=lambda: {c: Figures() for c in CATEGORIES})
    debts: Figures = field(default_factory=Figures)  # debits past the balance; the shortfall
    losses: Figures = field(default_factory=Figures)
    refused_refunds: Figures = field(default_factory=Figures)  # see REFUSED_REFUND
    approved_online: Figures = field(default_factory=Figures)
    approved_offline: Figures = field(default_factory=Figures)

    @property
    def net_sales_minor(self) -> int:
        m = self.money
        return (
            m["sales_online"].amount_minor
            + m["sales_offline"].amount_minor
            - m["reversals"].amount_minor
            - m["refunds"].amount_minor
            + m["refund_reversals"].amount_minor
        )

    def offline_share(self) -> dict[str, float]:
        """The offline part of approved sales, by count and by amount (0..1)."""
        on, off = self.approved_online, self.approved_offline
        return {
            "count": off.count / (on.count + off.count) if on.count + off.count else 0.0,
            "amount": (
                off.amount_minor / (on.amount_minor + off.amount_minor)
                if on.amount_minor + off.amount_minor
                else 0.0
            ),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            **{name: asdict(f) for name, f in self.money.items()},
            "net_sales_minor": self.net_sales_minor,
            "debts": asdict(self.debts),
            "losses": asdict(self.losses),
            "refused_refunds": asdict(self.refused_refunds),
            "approved_online": asdict(self.approved_online),
            "approved_offline": asdict(self.approved_offline),
            "offline_share": self.offline_share(),
        }


def period(day: str | None, since: str | None, until: str | None, today: date) -> tuple[str, str]:
    """The [from, to) range of host time for --day, or --from/--to (dates, to inclusive);
    default today (UTC)."""

    def parse(text: str, what: str) -> date:
        try:
            given = date.fromisoformat(text)
        except ValueError:
            raise ConfigError(f"{what} {text!r}: give a date as YYYY-MM-DD") from None
        if given == date.max:  # its range would end on a day Python has no date for
            raise ConfigError(f"{what} {text!r}: give a date before {date.max}")
        return given

    if day is not None and (since is not None or until is not None):
        raise ConfigError("--day and --from/--to: give one day, or a range, not both")
    if day is not None:
        first = last = parse(day, "--day")
    elif since is None and until is None:
        first = last = today
    else:
        first = parse(since, "--from") if since is not None else date(1970, 1, 1)
        last = parse(until, "--to") if until is not None else today
        if last < first:
            raise ConfigError(f"--from {first} is after --to {last}: swap them")
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
    return start.isoformat(timespec="seconds"), end.isoformat(timespec="seconds")


def settle(store: HostStore, since: str, until: str) -> tuple[Settlement, dict[str, Settlement]]:
    """The program's settlement for [since, until) and each terminal's (HOST_DESK: the
    movements no terminal made)."""
    program = Settlement()
    terminals: dict[str, Settlement] = defaultdict(Settlement)
    rows = store.execute(
        "SELECT terminal_id, kind, amount_minor > 0, COUNT(*), SUM(amount_minor), "
        "SUM(CASE WHEN flag = 'debt' THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN flag = 'debt' THEN "
        "  (CASE WHEN balance_after_minor < 0 THEN -balance_after_minor ELSE 0 END) - "
        "  (CASE WHEN balance_after_minor - amount_minor < 0 "
        "   THEN amount_minor - balance_after_minor ELSE 0 END) ELSE 0 END) "
        "FROM movements WHERE at >= ? AND at < ? GROUP BY terminal_id, kind, amount_minor > 0",
        (since, until),
    ).fetchall()
    for terminal_id, kind, credit, count, total, debt_count, debt_minor in rows:
        if kind == "reversal" and not credit:
            category = TOPUP_REVERSALS
        else:
            category = KIND_CATEGORY.get(kind, kind)
        # a sale takes money off a card: shown positive; a reversal gives it back: positive too
        amount = abs(int(total)) if category != "transfers" else int(total)
        for target in (program, terminals[terminal_id or HOST_DESK]):
            target.money.setdefault(category, Figures()).add(int(count), amount)
            target.debts.add(int(debt_count), int(debt_minor))
    _count_messages(store, since, until, program, terminals)
    return program, dict(sorted(terminals.items()))


def _count_messages(
    store: HostStore,
    since: str,
    until: str,
    program: Settlement,
    terminals: dict[str, Settlement],
) -> None:
    """Approvals and losses: what each sale and advice answered in [since, until) was, by
    classify_message (a top-up or a balance inquiry is an 0200 too, and is no sale)."""
    rows = store.execute(
        "SELECT m.terminal_id, m.class, m.response_code, COALESCE(v.kind, ''), "
        "m.processing_code, COUNT(*), COALESCE(SUM(m.amount_minor), 0) FROM messages m "
        "LEFT JOIN movements v ON v.id = m.movement_id "
        "WHERE m.at >= ? AND m.at < ? AND m.class IN ('sale', 'advice') "
        "GROUP BY m.terminal_id, m.class, m.response_code, COALESCE(v.kind, ''), "
        "m.processing_code",
        (since, until),
    ).fetchall()
    for terminal_id, klass, code, moved, processing_code, count, total in rows:
        what = classify_message(klass, code, moved, processing_code)
        for target in (program, terminals[terminal_id]):
            if what == "sales_online":
                target.approved_online.add(int(count), int(total))
            elif what == "sales_offline":
                target.approved_offline.add(int(count), int(total))
            elif what == LOSS:
                target.losses.add(int(count), int(total))
            elif what == REFUSED_REFUND:
                target.refused_refunds.add(int(count), int(total))


def day_totals(store: HostStore, terminal_id: str, batch: Batch) -> Reconciliation:
    """The host's own totals of one terminal's day (the 0500's batch of STANs), for the 0510:
    each sale and advice classified as the settlement does (classify_message), then counted by
    core/settlement.py. Debits and credits by the movement's sign (DEBIT, CREDIT); inquiries
    in field 80; a reversal counts when it gave money back for a sale the supervisor voided
    (its field 39 was 17); a sale reversed because its answer was lost (68) counts nowhere, as
    on the terminal, which never learned whether it was approved. (The settlement's money
    shows that sale and its reversal both: money moved and moved back.)"""
    # Only the batch's STANs are read (through the primary key): reading every message the
    # terminal ever sent took 0.6 s of the store's one worker per 0500 after 300,000 of them.
    wraps = batch.first_stan > batch.last_stan
    stans = "(m.stan >= ? OR m.stan <= ?)" if wraps else "m.stan BETWEEN ? AND ?"
    rows = store.execute(
        "SELECT m.class, m.stan, m.response_code, m.amount_minor, COALESCE(v.kind, ''),"
        " m.processing_code, v.amount_minor, m.reversed_by FROM messages m"
        " LEFT JOIN movements v ON v.id = m.movement_id"
        f" WHERE m.terminal_id = ? AND m.class IN ('sale', 'advice') AND {stans}",
        (terminal_id, batch.first_stan, batch.last_stan),
    ).fetchall()
    # The reason of each reversal that gave money back, by the movement it made.
    reasons = dict(
        store.execute(
            "SELECT movement_id, reason FROM messages WHERE terminal_id = ? "
            "AND class = 'reversal' AND movement_id IS NOT NULL",
            (terminal_id,),
        ).fetchall()
    )
    totals: dict[str, int] = {}
    for klass, stan, code, amount, moved_kind, processing_code, moved, reversed_by in rows:
        if not batch.holds(int(stan)):
            continue
        what = classify_message(klass, code, moved_kind, processing_code)
        if what in (DECLINED, LOSS, REFUSED_REFUND):  # the terminal counts none of them either
            continue
        if what == INQUIRY:
            add_to_reconciliation(totals, "balance", reversal=False, count=1, amount_minor=0)
            continue
        voided = reasons.get(reversed_by) == REVERSAL_REASON_CUSTOMER_CANCELLATION
        if reversed_by is not None and not voided:
            continue  # reversed because its answer was lost: on neither side
        side = DEBIT if int(moved) < 0 else CREDIT
        taken = int(amount or 0)
        add_to_reconciliation(totals, side, reversal=False, count=1, amount_minor=taken)
        if voided:
            add_to_reconciliation(totals, side, reversal=True, count=1, amount_minor=taken)
    return Reconciliation(**totals)


def _all_categories(groups: list[Settlement]) -> list[str]:
    extra = {c for s in groups for c in s.money} - set(CATEGORIES)
    return [*CATEGORIES, *sorted(extra)]


def settlement_rows(program: Settlement, terminals: dict[str, Settlement]) -> list[list[str]]:
    """The settlement as a text table: a row per figure, a column per terminal and the
    program (count x amount)."""
    groups = [("program", program), *terminals.items()]
    settlements = [s for _, s in groups]

    def cell(f: Figures) -> str:
        return f"{f.count} x {format_amount(f.amount_minor)}" if f.count else "-"

    rows = [["", *[name for name, _ in groups]]]
    for category in _all_categories(settlements):
        rows.append([category, *[cell(s.money.get(category, Figures())) for s in settlements]])
    rows.append(["net_sales", *[format_amount(s.net_sales_minor) for s in settlements]])
    rows.append(["debts", *[cell(s.debts) for s in settlements]])
    rows.append(["losses", *[cell(s.losses) for s in settlements]])
    rows.append(["refused_refunds", *[cell(s.refused_refunds) for s in settlements]])
    rows.append(["approved_online", *[cell(s.approved_online) for s in settlements]])
    rows.append(["approved_offline", *[cell(s.approved_offline) for s in settlements]])
    rows.append(
        [
            "offline_share",
            *[
                f"{s.offline_share()['count']:.0%} / {s.offline_share()['amount']:.0%}"
                for s in settlements
            ],
        ]
    )
    return rows


def settlement_csv(program: Settlement, terminals: dict[str, Settlement]) -> list[list[str]]:
    """One row per terminal (HOST_DESK for the command line and dashboard) and one for the
    program, with a header; amounts in minor units."""
    groups = [*terminals.items(), ("program", program)]
    categories = _all_categories([s for _, s in groups])
    header = ["terminal"]
    for name in [
        *categories,
        "debts",
        "losses",
        "refused_refunds",
        "approved_online",
        "approved_offline",
    ]:
        header += [f"{name}_count", f"{name}_minor"]
    header += ["net_sales_minor", "offline_share_count", "offline_share_amount"]
    rows = [header]
    for name, s in groups:
        row = [name]
        for f in [
            *[s.money.get(c, Figures()) for c in categories],
            s.debts,
            s.losses,
            s.refused_refunds,
            s.approved_online,
            s.approved_offline,
        ]:
            row += [str(f.count), str(f.amount_minor)]
        share = s.offline_share()
        row += [str(s.net_sales_minor), f"{share['count']:.4f}", f"{share['amount']:.4f}"]
        rows.append(row)
    return rows


def outstanding(store: HostStore) -> dict[str, int]:
    """Now, whatever the period: money held on cards, debts owed, and the accounts owing."""
    held, owed, owing = store.execute(
        "SELECT COALESCE(SUM(CASE WHEN balance_minor > 0 THEN balance_minor ELSE 0 END), 0), "
        "COALESCE(SUM(CASE WHEN balance_minor < 0 THEN -balance_minor ELSE 0 END), 0), "
        "COALESCE(SUM(CASE WHEN balance_minor < 0 THEN 1 ELSE 0 END), 0) FROM accounts"
    ).fetchone()
    return {"held_minor": int(held), "debts_minor": int(owed), "accounts_owing": int(owing)}


# --- outages -----------------------------------------------------------------------------------


def sale_instant(transmission: str, arrived_at: str) -> str:
    """A sale's own instant (field 7: UTC MMDDhhmmss, no year) as ISO text, its year the one
    that puts it at or before its arrival (an advice arrives after its sale)."""
    arrived = datetime.fromisoformat(arrived_at)
    try:
        month, day = int(transmission[:2]), int(transmission[2:4])
        hh, mm, ss = int(transmission[4:6]), int(transmission[6:8]), int(transmission[8:10])
        instant = datetime(arrived.year, month, day, hh, mm, ss, tzinfo=UTC)
        if instant > arrived + timedelta(days=1):  # sold in December, arrived in January
            instant = instant.replace(year=arrived.year - 1)
    except ValueError:
        return arrived_at  # not a stamp pitill writes: the arrival is all we know
    return instant.isoformat(timespec="seconds")


@dataclass
class Outage:
    """One run of a terminal's offline sales, as the host learned it from their advices."""

    terminal_id: str
    first_sale_at: str  # the sales' own instants (UTC)
    last_sale_at: str
    first_arrival_at: str  # when their advices reached the host
    last_arrival_at: str
    sales: Figures = field(default_factory=Figures)  # every offline sale of the run
    approved: Figures = field(default_factory=Figures)  # taken (settled on the card)
    declined: Figures = field(default_factory=Figures)  # losses
    debts: int = 0  # of the approved ones, how many overdrew
    state: str = "settled"  # or "arriving": more of this terminal's advices may come

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LinkGap:
    terminal_id: str
    down_at: str
    up_at: str  # '' while the terminal is still away


@dataclass
class OutageView:
    outages: list[Outage]
    gaps: list[LinkGap]
    online: dict[str, bool]  # terminal id -> connected now (as far as the links say)

    def as_dict(self) -> dict[str, Any]:
        return {
            "outages": [o.as_dict() for o in self.outages],
            "gaps": [asdict(g) for g in self.gaps],
            "online": self.online,
        }


def outage_view(store: HostStore, now: datetime, since: str = "") -> OutageView:
    """Every terminal's offline runs and connection gaps, from the advices that arrived and the
    links that ended at or after `since` (host time; '' for all: the dashboard reads a recent
    window, not every row the program ever had)."""
    gaps: list[LinkGap] = []
    online: dict[str, bool] = {}
    links: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for terminal_id, up_at, down_at in store.execute(
        "SELECT terminal_id, up_at, down_at FROM links WHERE down_at = '' OR down_at >= ? "
        "ORDER BY terminal_id, up_at, id",
        (since,),
    ):
        links[terminal_id].append((up_at, down_at))
    for terminal_id, spans in links.items():
        open_now = any(down == "" for _, down in spans)
        online[terminal_id] = open_now
        # a gap: from a link's end to the next link's start, when no other link was up meanwhile
        covered_until = ""
        ordered = sorted(spans)
        for index, (_up, down) in enumerate(ordered):
            end = "9999" if down == "" else down
            covered_until = max(covered_until, end)
            following = ordered[index + 1][0] if index + 1 < len(ordered) else None
            if covered_until == "9999":
                continue
            if following is None:
                gaps.append(LinkGap(terminal_id, covered_until, ""))
            elif _seconds_between(covered_until, following) >= GAP_MIN_S:
                gaps.append(LinkGap(terminal_id, covered_until, following))
    gaps = [g for g in gaps if (g.up_at or "9999") >= since]

    rows = store.execute(
        "SELECT m.terminal_id, m.class, m.stan, m.transmission, m.amount_minor, "
        "m.response_code, m.at, m.movement_id, COALESCE(v.kind, ''), m.processing_code "
        "FROM messages m LEFT JOIN movements v ON v.id = m.movement_id "
        "WHERE m.class IN ('sale', 'advice') AND m.at >= ?",
        # an 0200 of any kind (a sale, a top-up, a balance inquiry) says the link was up
        (since,),
    ).fetchall()
    debt_ids = {
        int(row[0])
        for row in store.execute(
            "SELECT id FROM movements WHERE kind = 'offline_sale' AND flag = 'debt' AND at >= ?",
            (since,),
        )
    }
    per_terminal: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for row in rows:
        per_terminal[row[0]].append((sale_instant(row[3], row[6]), row))
    outages: list[Outage] = []
    quiet_since = (now - timedelta(seconds=SETTLE_QUIET_S)).isoformat(timespec="seconds")
    for terminal_id, items in per_terminal.items():
        items.sort(key=lambda item: (item[0], item[1][2]))
        current: Outage | None = None
        for instant, row in items:
            _, klass, _stan, _tx, amount, code, arrived, movement_id, moved, processing = row
            if klass == "sale":
                current = None
                continue
            what = classify_message(klass, code, moved, processing)
            if what not in ("sales_offline", LOSS):
                continue  # an offline refund, taken or refused: the settlement shows it
            if current is None:
                current = Outage(terminal_id, instant, instant, arrived, arrived)
                outages.append(current)
            current.last_sale_at = instant
            current.first_arrival_at = min(current.first_arrival_at, arrived)
            current.last_arrival_at = max(current.last_arrival_at, arrived)
            amount_minor = int(amount or 0)
            current.sales.add(1, amount_minor)
            if what != LOSS:
                current.approved.add(1, amount_minor)
                if movement_id is not None and int(movement_id) in debt_ids:
                    current.debts += 1
            else:
                current.declined.add(1, amount_minor)
    for terminal_id in per_terminal:
        theirs = [o for o in outages if o.terminal_id == terminal_id]
        if theirs:
            latest = max(theirs, key=lambda o: (o.last_arrival_at, o.last_sale_at))
            if latest.last_arrival_at >= quiet_since or online.get(terminal_id) is False:
                latest.state = "arriving"
    outages = [o for o in outages if o.last_arrival_at >= since]
    outages.sort(key=lambda o: (o.first_sale_at, o.terminal_id))
    return OutageView(outages, gaps, online)


def _seconds_between(earlier: str, later: str) -> float:
    return (datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds()


@dataclass
class TerminalRow:
    """One line of the terminals page: enrolled or only ever heard from (without --tls)."""

    terminal_id: str
    name: str
    status: str  # active, revoked, or "not enrolled"
    online: bool
    last_seen_at: str
    last_stan: int | None
    arriving: bool  # advices still coming after an outage


def terminal_rows(store: HostStore, view: OutageView) -> list[TerminalRow]:
    enrolled = {t.terminal_id: t for t in store.terminals()}
    last: dict[str, tuple[str, int]] = {}
    for terminal_id, at, stan in store.execute(
        "SELECT m.terminal_id, m.at, m.stan FROM messages m JOIN ("
        "SELECT terminal_id, MAX(at) AS at FROM messages GROUP BY terminal_id) l "
        "ON l.terminal_id = m.terminal_id AND l.at = m.at ORDER BY m.stan"
    ):
        last[terminal_id] = (at, int(stan))
    arriving = {o.terminal_id for o in view.outages if o.state == "arriving"}
    rows = []
    for terminal_id in sorted(set(enrolled) | set(last) | set(view.online)):
        t = enrolled.get(terminal_id)
        seen_at, stan = last.get(terminal_id, ("", None))
        if t is not None and t.last_seen_at > seen_at:
            seen_at, stan = t.last_seen_at, t.last_stan
        rows.append(
            TerminalRow(
                terminal_id,
                t.name if t else "",
                t.status if t else "not enrolled",
                view.online.get(terminal_id, False),
                seen_at,
                stan,
                terminal_id in arriving,
            )
        )
    return rows
