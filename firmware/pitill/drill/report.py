"""The drill's report: what the shop lived through and the ledger-vs-journal check, JSON and text.

The check is the project's one reconciliation (pitill.sim.reconcile): lost, duplicated, phantom
and unsettled, over the journal, the host ledger and what each customer was told.

Everything else in the report is read off the DrillRun; report["consistent"] says whether the
shop's counts agree with the journal's rows.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from pitill.core.settlement import DECLINED_AFTER, REFUNDS_REFUSED, z_line
from pitill.core.types import LinkStatus, TxnKind, TxnStatus, format_amount
from pitill.drill.play import DrillRun, LinkPoint
from pitill.drill.shop import Outcome, Sale
from pitill.drill.timeline import format_duration
from pitill.records import JournalRow
from pitill.sim.reconcile import Told, reconcile

USABLE = (LinkStatus.ONLINE, LinkStatus.DEGRADED)
SERIES_POINTS = 2000  # at most this many points per series in the JSON (for the plot)
PAID = {Outcome.ONLINE: TxnKind.CARD, Outcome.OFFLINE: TxnKind.CARD, Outcome.CASH: TxnKind.CASH}


def told_of(sales: Sequence[Sale]) -> list[Told]:
    """What the shop's customers were told: each paid sale's seqs, for the reconciliation."""
    return [
        Told(seq, PAID[sale.outcome], f"customer {sale.customer.number}")
        for sale in sales
        if sale.outcome in PAID
        for seq in sale.seqs
    ]


# --- the numbers ---------------------------------------------------------------------------------


def cash_only_reasons(sales: Iterable[Sale]) -> dict[str, int]:
    """How often the terminal said CASH ONLY, by the reason it gave, most common first.

    A sale's reason is its own (the core keeps it in the sale's record, dropped at idle), so a
    cash sale the cashier began with FN is not counted under an earlier sale's reason."""
    return dict(Counter(s.cash_reason for s in sales if s.cash_reason).most_common())


def refused_after(rows: Iterable[JournalRow], tally: str) -> list[JournalRow]:
    """The rows the host refused after the fact that core/settlement counts in `tally`:
    DECLINED_AFTER (offline sales, the merchant's loss) or REFUNDS_REFUSED (offline refunds
    the card never got: the customer is still owed it, not the merchant's loss)."""
    return [r for r in rows if z_line(r.kind.value, r.mode, r.status)[1] == tally]


def after_the_fact(rows: Sequence[JournalRow]) -> dict[str, int]:
    """The sales' count and amount the host refused after the fact, and the refunds'."""
    declined_after = refused_after(rows, DECLINED_AFTER)
    refunds_refused = refused_after(rows, REFUNDS_REFUSED)
    return {
        "declined_after": len(declined_after),
        "declined_after_minor": sum(r.amount_minor for r in declined_after),
        "refunds_refused": len(refunds_refused),
        "refunds_refused_minor": sum(r.amount_minor for r in refunds_refused),
    }


def _sales_counts(run: DrillRun) -> dict[str, Any]:
    outcomes = Counter(sale.outcome for sale in run.sales)
    cash = [s for s in run.sales if s.outcome is Outcome.CASH]
    return {
        "customers_planned": len(run.customers),
        "attempted": len(run.sales),
        "approved_online": outcomes[Outcome.ONLINE],
        "approved_offline": outcomes[Outcome.OFFLINE],
        "cash": outcomes[Outcome.CASH],
        "cash_rung": sum(1 for s in cash if s.rung),
        "cash_at_till": sum(1 for s in cash if not s.rung),
        "declined": outcomes[Outcome.DECLINED],
        "refused": outcomes[Outcome.REFUSED],
        "failed": outcomes[Outcome.FAILED],
        **after_the_fact(run.rows),
        "card_declines_seen": sum(s.declines for s in run.sales),
        "cash_only_reasons": cash_only_reasons(run.sales),
        "failures": [f"customer {s.customer.number}: {s.note}" for s in run.sales if s.note][:20],
    }


def journal_counts(rows: Sequence[JournalRow]) -> dict[str, int]:
    """The journal's side of the shop's counts."""
    card = [r for r in rows if r.kind is TxnKind.CARD]
    return {
        "approved_online": sum(1 for r in card if r.status is TxnStatus.APPROVED),
        "approved_offline": sum(
            1
            for r in card
            if r.status in (TxnStatus.PENDING, TxnStatus.FORWARDED, TxnStatus.DECLINED_AFTER)
        ),
        "cash_rung": sum(
            1 for r in rows if r.kind is TxnKind.CASH and r.status is TxnStatus.COMPLETED
        ),
        "declined_after": len(refused_after(card, DECLINED_AFTER)),
    }


def _point_at(link: Sequence[LinkPoint], at_s: float) -> LinkPoint:
    """The link change in force at at_s."""
    found = link[0] if link else LinkPoint(0.0, LinkStatus.UNKNOWN)
    for point in link:
        if point.at_s > at_s:
            break
        found = point
    return found


def _status_at(link: Sequence[LinkPoint], at_s: float) -> LinkStatus:
    return _point_at(link, at_s).status


def _time_share(link: Sequence[LinkPoint], start_s: float, end_s: float) -> dict[str, float]:
    """The share of [start_s, end_s) the terminal spent in each link state."""
    spans: dict[str, float] = defaultdict(float)
    status = _status_at(link, start_s)
    at_s = start_s
    for point in link:
        if point.at_s <= start_s:
            continue
        if point.at_s >= end_s:
            break
        spans[status.value] += point.at_s - at_s
        status, at_s = point.status, point.at_s
    spans[status.value] += end_s - at_s
    total = max(end_s - start_s, 1e-9)
    ranked = sorted(spans.items(), key=lambda item: -item[1])
    return {name: round(seconds / total, 3) for name, seconds in ranked}


def _fits(point: LinkPoint, statuses: frozenset[LinkStatus], reason: str) -> bool:
    return point.status in statuses and reason in ("", point.reason)


def _changes(run: DrillRun) -> list[dict[str, Any]]:
    """For each segment: when it began and how long the terminal took to show it had noticed."""
    out = []
    starts_sim = run.timeline.starts_s()
    ends = [*run.segment_starts_s[1:], run.timeline_end_s]
    last = len(run.segment_starts_s) - 1
    for index, segment in enumerate(run.timeline.segments[: last + 1]):
        begin_s, end_s = run.segment_starts_s[index], ends[index]
        before = _point_at(run.link, begin_s)
        statuses, reason = segment.expects(before.status)
        already = _fits(before, statuses, reason)
        noticed = (
            before
            if already
            else next(
                (
                    p
                    for p in run.link
                    if begin_s < p.at_s
                    and _fits(p, statuses, reason)
                    and (p.at_s < end_s or index == last)
                ),
                None,
            )
        )
        delay_s = None if noticed is None else max(0.0, noticed.at_s - begin_s)
        out.append(
            {
                "at": run.timeline.clock(starts_sim[index]),
                "sim_start_s": starts_sim[index],
                "label": segment.label,
                "mode": segment.mode,
                "describe": segment.describe(),
                "duration_sim_s": segment.duration_s,
                "expects": sorted(s.value for s in statuses),
                "expects_reason": reason,
                "already": already,
                "noticed": None if noticed is None else noticed.status.value,
                "reason": None if noticed is None else noticed.reason,
                "notice_real_s": None if delay_s is None else round(delay_s, 3),
                "notice_sim_s": None if delay_s is None else round(delay_s * run.speed, 1),
                "link_share": _time_share(run.link, begin_s, end_s),
            }
        )
    return out


def _backlog(run: DrillRun) -> dict[str, Any]:
    points = run.backlog
    if not points or max(p.pending for p in points) == 0:
        return {"peak": 0, "drained": run.drained_at_s is not None}
    peak = max(points, key=lambda p: p.pending)
    usable_from_s = peak.at_s
    if _status_at(run.link, peak.at_s) not in USABLE:
        back = next((p for p in run.link if p.at_s > peak.at_s and p.status in USABLE), None)
        usable_from_s = back.at_s if back is not None else run.end_s
    empty = next((p for p in points if p.at_s > peak.at_s and p.pending == 0), None)
    drain_s = empty.at_s - usable_from_s if empty is not None else None
    return {
        "peak": peak.pending,
        "peak_at": run.timeline.clock(peak.at_s * run.speed),
        "peak_real_s": round(peak.at_s, 3),
        "link_back_real_s": round(usable_from_s, 3),
        "drain_real_s": None if drain_s is None else round(max(drain_s, 0.0), 3),
        "drain_sim_s": None if drain_s is None else round(max(drain_s, 0.0) * run.speed, 1),
        "drained": run.drained_at_s is not None,
        "after_timeline_real_s": None
        if run.drained_at_s is None
        else round(max(0.0, run.drained_at_s - run.timeline_end_s), 3),
    }


def _longest_wait(run: DrillRun) -> dict[str, Any]:
    if not run.sales:
        return {}
    sale = max(run.sales, key=lambda s: s.wait_s)
    customer = sale.customer
    index = run.timeline.segment_at(customer.arrival_s)
    return {
        "real_s": round(sale.wait_s, 3),
        "customer": customer.number,
        "at": run.timeline.clock(customer.arrival_s),
        "during": run.timeline.segments[index].label,
        "amount_minor": customer.amount_minor,
        "paying": "card" if customer.card is not None else "cash",
        "outcome": sale.outcome.value,
        "declines": sale.declines,
        "max_queue_real_s": round(max(s.late_s for s in run.sales), 3),
    }


def _series(run: DrillRun) -> dict[str, Any]:
    """Simulated-time series for the plot; thinned to SERIES_POINTS."""

    def thin(points: list[Any]) -> list[Any]:
        step = max(1, len(points) // SERIES_POINTS)
        return points[::step] if step > 1 else points

    return {
        "segments": [
            [start, seg.duration_s, seg.mode, seg.label, seg.healthy]
            for start, seg in zip(run.timeline.starts_s(), run.timeline.segments, strict=True)
        ],
        "link": [[round(p.at_s * run.speed, 1), p.status.value] for p in run.link],
        "backlog": thin([[round(p.at_s * run.speed, 1), p.pending] for p in run.backlog]),
        "sales": [[round(s.customer.arrival_s, 1), s.outcome.value] for s in run.sales],
        "end_sim_s": round(run.end_s * run.speed, 1),
    }


def build_report(run: DrillRun) -> dict[str, Any]:
    """The whole report as JSON-ready data."""
    terminal = run.config.terminal
    check = reconcile(
        run.rows,
        run.ledger,
        terminal.terminal_id,
        settled=run.drained_at_s is not None,
        told=told_of(run.sales),
    )
    sales = _sales_counts(run)
    journal = journal_counts(run.rows)
    mismatches = {k: (sales[k], v) for k, v in journal.items() if sales[k] != v}
    timeline = run.timeline
    return {
        "timeline": {
            "name": timeline.name,
            "title": timeline.title,
            "start": timeline.start.isoformat(timespec="minutes"),
            "timezone": timeline.timezone,
            "sim_s": timeline.total_s,
        },
        "run": {
            "date": date.today().isoformat(),
            "speed": round(run.speed, 2),
            "seed": run.seed,
            "boot_online_real_s": round(run.boot_online_s, 3),
            "timeline_real_s": round(run.timeline_end_s, 3),
            "total_real_s": round(run.end_s, 3),
            "shop_finished": run.shop_finished,
            "currency": terminal.currency,
            "currency_exponent": terminal.currency_exponent,
        },
        "sales": sales,
        "check": {
            **check.counts(),
            "lost_detail": check.lost[:50],
            "duplicated_detail": check.duplicated[:50],
            "phantom_detail": check.phantom[:50],
            "unsettled_detail": check.unsettled[:50],
            "ledger_entries": check.ledger_entries,
            "journal_rows": len(run.rows),
            "keys_charged": check.keys_charged,
            "host_net_minor": check.host_net_minor,
            "journal_charged_minor": check.journal_charged_minor,
        },
        "journal": journal,
        "consistent": not mismatches,
        "mismatches": {k: {"shop": a, "journal": b} for k, (a, b) in mismatches.items()},
        "changes": _changes(run),
        "backlog": _backlog(run),
        "longest_wait": _longest_wait(run),
        "faults_injected": run.injected,
        "series": _series(run),
    }


def problems(report: dict[str, Any]) -> list[str]:
    """Why the drill failed, empty when it passed: a PASS needs nothing lost, duplicated, phantom
    or unsettled, the backlog drained, the shop's counts equal to the journal's, no customer the
    terminal failed, and the shop finished (every customer served before the drill stopped)."""
    check, sales = report["check"], report["sales"]
    found = [
        f"{check.get(word, 0)} {word}"
        for word in ("lost", "duplicated", "phantom", "unsettled")
        if check.get(word, 0)
    ]
    if not report["backlog"]["drained"]:
        found.append("backlog not drained")
    if not report["consistent"]:
        found.append("shop and journal disagree")
    if sales["failed"]:
        found.append(f"{sales['failed']} failed customers")
    if not report["run"]["shop_finished"]:
        found.append("the shop did not finish")
    return found


def passed(report: dict[str, Any]) -> bool:
    """See problems()."""
    return not problems(report)


# --- text ----------------------------------------------------------------------------------------


def _money(report: dict[str, Any], amount_minor: int) -> str:
    run = report["run"]
    return f"{run['currency']} {format_amount(amount_minor, run['currency_exponent'])}"


def _sim(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(seconds)


def _real(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f} s"


def format_text(report: dict[str, Any]) -> str:
    t, run, s, c = report["timeline"], report["run"], report["sales"], report["check"]
    tz = f" {t['timezone']}" if t["timezone"] else ""
    lines = [
        f"pitill drill: {t['name']} - {t['title']}",
        f"  {format_duration(t['sim_s'])} from {t['start'].replace('T', ' ')}{tz}, played at "
        f"{run['speed']:g}x in {run['timeline_real_s']:.1f} s real ({run['total_real_s']:.1f} s "
        f"with the final drain); seed {run['seed']}; {run['date']}",
        "",
        f"sales attempted            {s['attempted']:>5}",
        f"  approved online          {s['approved_online']:>5}",
        f"  approved offline         {s['approved_offline']:>5}",
        f"  cash                     {s['cash']:>5}   ({s['cash_rung']} rung with change, "
        f"{s['cash_at_till']} not rung up on the terminal)",
        f"  declined                 {s['declined']:>5}   ({s['card_declines_seen']} declines "
        "seen, retries included)",
        f"  refused (walked away)    {s['refused']:>5}",
    ]
    if s["failed"]:
        lines.append(f"  FAILED (terminal stuck)  {s['failed']:>5}")
    lines.append(
        f"declined after the fact    {s['declined_after']:>5}   "
        f"({_money(report, s['declined_after_minor'])}, the merchant's loss)"
    )
    if s.get("refunds_refused"):
        lines.append(
            f"refunds refused by host    {s['refunds_refused']:>5}   "
            f"({_money(report, s['refunds_refused_minor'])}, the customer is still owed it)"
        )
    for reason, count in s["cash_only_reasons"].items():
        lines.append(f"  CASH ONLY because {reason!r}: {count}")
    lines += [
        f"lost                       {c['lost']:>5}   (checked against {c['ledger_entries']} "
        f"host ledger entries and {c['journal_rows']} journal rows)",
        f"duplicated at the host     {c['duplicated']:>5}",
        f"phantom charges            {c.get('phantom', 0):>5}",
        f"unsettled after the heal   {c.get('unsettled', 0):>5}",
        f"  host charged {_money(report, c['host_net_minor'])} net on {c['keys_charged']} keys; "
        f"the journal's acknowledged card sales: {_money(report, c['journal_charged_minor'])}",
    ]
    lines += [f"  LOST: {line}" for line in c["lost_detail"]]
    lines += [f"  DUPLICATED: {line}" for line in c["duplicated_detail"]]
    lines += [f"  PHANTOM: {line}" for line in c.get("phantom_detail", [])]
    lines += [f"  UNSETTLED: {line}" for line in c.get("unsettled_detail", [])]
    if not report["consistent"]:
        for name, pair in report["mismatches"].items():
            lines.append(f"  MISMATCH {name}: shop {pair['shop']}, journal {pair['journal']}")
    lines += [
        "",
        "timeline                                   noticed            real     simulated",
    ]
    for change in report["changes"]:
        what = f"{change['at']} {change['label']} ({_sim(change['duration_sim_s'])})"
        if change["noticed"] is None:
            seen = "not seen"
        else:
            seen = f"{change['noticed']} {change['reason'] or ''}".strip()
            if change["already"]:
                seen = f"already {seen}"
        lines.append(
            f"{what:42} {seen:18} {_real(change['notice_real_s']):>8}  "
            f"{_sim(change['notice_sim_s'])}"
        )
        if change["describe"] != "healthy" and change["mode"] == "up":
            share = ", ".join(f"{k} {v:.0%}" for k, v in change["link_share"].items())
            lines.append(f"    {change['describe']}; terminal showed {share}")
    b = report["backlog"]
    lines.append("")
    if b["peak"]:
        drain = (
            f"drained {_real(b['drain_real_s'])} real ({_sim(b['drain_sim_s'])} simulated) after "
            "the link came back"
            if b["drain_real_s"] is not None
            else "NOT drained"
        )
        lines.append(f"peak backlog {b['peak']} at {b['peak_at']}; {drain}")
    else:
        lines.append("no backlog: every card sale went online")
    if not b["drained"]:
        lines.append("BACKLOG NOT DRAINED by the end of the drill (counted as lost above)")
    w = report["longest_wait"]
    if w:
        lines.append(
            f"longest wait at the terminal: {w['real_s']:.2f} s (customer {w['customer']} at "
            f"{w['at']}, {w['during']}, {w['paying']} {_money(report, w['amount_minor'])}: "
            f"{w['outcome']})"
        )
    injected = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in report["faults_injected"].items())
    lines.append(f"faults injected: {injected}")
    lines.append("")
    lines.append(
        "PASS: 0 lost, 0 duplicated, 0 phantom, 0 unsettled; shop and journal agree; "
        "0 failed customers; the shop finished"
        if passed(report)
        else f"FAIL: {'; '.join(problems(report))}"
    )
    return "\n".join(lines)


# --- markdown: the run in docs/drill.md ----------------------------------------------------------

MARKDOWN_START, MARKDOWN_END = "<!-- drill:start -->", "<!-- drill:end -->"


def markdown_block(report: dict[str, Any], command: str, machine: str) -> str:
    """The run as docs/drill.md shows it: the command, the machine, the text report."""
    return f"`{command}` on {machine}:\n\n```\n{format_text(report)}\n```"


def with_markdown(document: str, block: str) -> str:
    """`document` with the text between its drill markers replaced by `block` (the whole
    document is the block, between markers, when it has none yet)."""
    if MARKDOWN_START not in document or MARKDOWN_END not in document:
        return f"{MARKDOWN_START}\n{block}\n{MARKDOWN_END}\n"
    start, end = document.index(MARKDOWN_START), document.index(MARKDOWN_END)
    return document[: start + len(MARKDOWN_START)] + "\n" + block + "\n" + document[end:]


def markdown_of(document: str) -> str:
    """The block between the drill markers of `document`."""
    start, end = document.index(MARKDOWN_START), document.index(MARKDOWN_END)
    return document[start + len(MARKDOWN_START) : end].strip("\n")
