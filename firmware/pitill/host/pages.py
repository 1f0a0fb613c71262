"""The dashboard's HTML, rendered on the server: no script, no library, one stylesheet.

Every value from the store passes through `esc` (html.escape); every form that changes state
carries the session's CSRF token (`form`). Cards appear only as the store shows them (first 6
and last 4 at most, or an NFC tag's uid:HEX).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from pitill.core.types import format_amount
from pitill.host.operators import Operator
from pitill.host.settlement import (
    CATEGORIES,
    Figures,
    OutageView,
    Settlement,
    TerminalRow,
)
from pitill.host.store import Account, Movement

NAV = (
    ("/", "Today", "view"),
    ("/terminals", "Terminals", "view"),
    ("/accounts", "Accounts", "view"),
    ("/settlement", "Settlement", "view"),
    ("/outages", "Outages", "view"),
    ("/operators", "Operators", "operators"),
)
CATEGORY_LABEL = {
    "sales_online": "Sales online",
    "sales_offline": "Sales offline",
    "reversals": "Reversals",
    "refunds": "Refunds",
    "topups": "Top-ups",
    "topup_reversals": "Top-ups reversed",
    "refund_reversals": "Refunds reversed",
    "payouts": "Payouts",
    "transfers": "Moved to new cards",
}


def esc(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def money(amount_minor: int) -> str:
    return esc(format_amount(amount_minor))


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, label: str) -> str:
    """A table; cells are HTML already escaped by the caller."""
    head = "".join(f"<th scope='col'>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    if not body:
        body = f"<tr><td colspan='{len(headers)}' class='empty'>none</td></tr>"
    return (
        f"<table aria-label='{esc(label)}'><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


def form(action: str, csrf: str, fields: str, button: str, *, danger: bool = False) -> str:
    kind = " class='danger'" if danger else ""
    return (
        f"<form method='post' action='{esc(action)}'>"
        f"<input type='hidden' name='csrf' value='{esc(csrf)}'>{fields}"
        f"<button type='submit'{kind}>{esc(button)}</button></form>"
    )


def layout(
    title: str, body: str, operator: Operator | None, csrf: str = "", flash: str = ""
) -> str:
    nav = ""
    if operator is not None:
        links = "".join(
            f"<a href='{href}'>{esc(label)}</a>" for href, label, need in NAV if operator.can(need)
        )
        logout = form("/logout", csrf, "", "Log out")
        nav = (
            f"<nav aria-label='pages'>{links}</nav><div class='who'>"
            f"<span id='operator'>{esc(operator.name)} ({esc(operator.role)})</span>{logout}</div>"
        )
    notice = f"<p role='status' class='flash'>{esc(flash)}</p>" if flash else ""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{esc(title)} · pitill host</title>"
        "<link rel='stylesheet' href='/dashboard.css'></head><body>"
        f"<header><h1>pitill host</h1>{nav}</header><main><h2>{esc(title)}</h2>"
        f"{notice}{body}</main></body></html>"
    )


def login_page(token: str, message: str = "") -> str:
    error = f"<p role='alert' class='error'>{esc(message)}</p>" if message else ""
    body = (
        f"{error}<form method='post' action='/login' class='login'>"
        f"<input type='hidden' name='csrf' value='{esc(token)}'>"
        "<label>Name <input name='name' autocomplete='username' required></label>"
        "<label>Password <input name='password' type='password' "
        "autocomplete='current-password' required></label>"
        "<button type='submit'>Log in</button></form>"
    )
    return layout("Log in", body, None)


def figures(f: Figures) -> str:
    return f"{f.count} · {money(f.amount_minor)}"


def settlement_table(program: Settlement, terminals: dict[str, Settlement]) -> str:
    columns = [("program", program), *terminals.items()]
    categories = list(CATEGORIES) + sorted(
        {c for _, s in columns for c in s.money} - set(CATEGORIES)
    )
    rows = [
        [esc(CATEGORY_LABEL.get(c, c))] + [figures(s.money.get(c, Figures())) for _, s in columns]
        for c in categories
    ]
    rows += [
        ["Net sales"] + [money(s.net_sales_minor) for _, s in columns],
        ["Debts (taken below zero: offline sales, spent top-ups reversed)"]
        + [figures(s.debts) for _, s in columns],
        ["Losses (declined after the fact)"] + [figures(s.losses) for _, s in columns],
        ["Offline refunds refused (promised, not credited: see the holder)"]
        + [figures(s.refused_refunds) for _, s in columns],
        ["Approved online"] + [figures(s.approved_online) for _, s in columns],
        ["Approved offline"] + [figures(s.approved_offline) for _, s in columns],
        ["Offline share (count / amount)"]
        + [
            f"{s.offline_share()['count']:.0%} / {s.offline_share()['amount']:.0%}"
            for _, s in columns
        ],
    ]
    headers = ["", *[name for name, _ in columns]]
    return table(headers, rows, label="settlement")


def today_page(
    program: Settlement,
    terminals: dict[str, Settlement],
    outstanding: dict[str, int],
    rows: list[TerminalRow],
) -> str:
    online = sum(1 for r in rows if r.online)
    arriving = sum(1 for r in rows if r.arriving)
    return (
        "<dl class='totals'>"
        f"<dt>Net sales today</dt><dd id='net-sales'>{money(program.net_sales_minor)}</dd>"
        f"<dt>Top-ups today</dt><dd>{figures(program.money['topups'])}</dd>"
        f"<dt>Held on cards</dt><dd>{money(outstanding['held_minor'])}</dd>"
        f"<dt>Debts owed</dt><dd>{money(outstanding['debts_minor'])} "
        f"({outstanding['accounts_owing']} accounts)</dd>"
        f"<dt>Terminals online</dt><dd>{online} of {len(rows)}</dd>"
        f"<dt>Advices still arriving</dt><dd>from {arriving} of {len(rows)} terminals</dd></dl>"
        f"<h3>Settlement today (UTC)</h3>{settlement_table(program, terminals)}"
    )


def terminals_page(rows: list[TerminalRow]) -> str:
    cells = [
        [
            esc(r.terminal_id),
            esc(r.name),
            esc(r.status),
            "<span class='ok'>online</span>" if r.online else "<span class='bad'>offline</span>",
            esc(r.last_seen_at or "never"),
            esc("" if r.last_stan is None else f"{r.last_stan:06d}"),
            "<span class='warn'>arriving</span>" if r.arriving else "settled",
        ]
        for r in rows
    ]
    headers = ["Terminal", "Name", "Enrolment", "Link", "Last seen (UTC)", "Last STAN", "Advices"]
    return table(headers, cells, label="terminals")


def account_rows(accounts: list[Account]) -> list[list[str]]:
    return [
        [
            f"<a href='/accounts/{a.id}'>{esc(a.card_shown)}</a>",
            esc(a.holder),
            esc(a.status),
            money(a.balance_minor),
            money(a.debt_minor) if a.debt_minor else "",
        ]
        for a in accounts
    ]


ACCOUNT_HEADERS = ["Card", "Holder", "Status", "Balance", "Debt"]


def accounts_page(
    csrf: str,
    found: list[Account] | None,
    watch: tuple[list[Account], list[Account]] = ([], []),
) -> str:
    search = form(
        "/accounts",
        csrf,
        "<label>Card number, last 4 digits, uid:HEX or holder "
        "<input name='q' autocomplete='off' required></label>",
        "Search",
    )
    if found is None:
        owing, refused = watch
        return (
            search
            + "<h3>Owing a debt</h3>"
            + table(ACCOUNT_HEADERS, account_rows(owing), label="accounts owing")
            + "<h3>Blocked or lost</h3>"
            + table(ACCOUNT_HEADERS, account_rows(refused), label="blocked cards")
        )
    return search + table(ACCOUNT_HEADERS, account_rows(found), label="accounts found")


def account_page(account: Account, history: list[Movement], operator: Operator, csrf: str) -> str:
    base = f"/accounts/{account.id}"
    actions = []
    if account.status != "replaced":
        if operator.can("topup"):
            actions.append(
                form(
                    f"{base}/topup",
                    csrf,
                    "<label>Amount <input name='amount' inputmode='decimal' required></label>",
                    "Top up",
                )
            )
        if operator.can("payout"):
            actions.append(
                form(
                    f"{base}/payout",
                    csrf,
                    "<label>Amount <input name='amount' inputmode='decimal' required></label>",
                    "Pay out",
                )
            )
        if operator.can("block"):
            if account.status == "active":
                actions.append(form(f"{base}/block", csrf, "", "Block card", danger=True))
            else:
                actions.append(form(f"{base}/unblock", csrf, "", "Unblock card"))
        if operator.can("replace"):
            actions.append(
                form(
                    f"{base}/replace",
                    csrf,
                    "<label>New card <input name='card' autocomplete='off' required></label>",
                    "Replace card",
                    danger=True,
                )
            )
    debt = (
        f"<dt>Debt</dt><dd id='debt'>{money(account.debt_minor)}</dd>" if account.debt_minor else ""
    )
    summary = (
        f"<dl class='totals'><dt>Card</dt><dd id='card'>{esc(account.card_shown)}</dd>"
        f"<dt>Holder</dt><dd>{esc(account.holder)}</dd>"
        f"<dt>Status</dt><dd id='status'>{esc(account.status)}</dd>"
        f"<dt>Balance</dt><dd id='balance'>{money(account.balance_minor)}</dd>{debt}</dl>"
    )
    rows = [
        [
            esc(m.at),
            esc(m.kind),
            money(m.amount_minor),
            money(m.balance_after_minor),
            esc(m.flag),
            esc(m.terminal_id),
            esc("" if m.stan is None else m.stan),
        ]
        for m in history
    ]
    return (
        summary
        + f"<div class='actions'>{''.join(actions)}</div><h3>History</h3>"
        + table(
            ["At (UTC)", "Kind", "Amount", "Balance after", "Flag", "Terminal", "STAN"],
            rows,
            label="history",
        )
    )


def period_form(since: str, until: str) -> str:
    return (
        "<form method='get' action='/settlement' class='period'>"
        f"<label>From <input type='date' name='from' value='{esc(since)}'></label>"
        f"<label>To <input type='date' name='to' value='{esc(until)}'></label>"
        "<button type='submit'>Show</button></form>"
    )


def outages_page(view: OutageView) -> str:
    outages = [
        [
            esc(o.terminal_id),
            esc(o.first_sale_at),
            esc(o.last_sale_at),
            figures(o.sales),
            figures(o.approved),
            figures(o.declined),
            esc(o.debts),
            esc(f"{o.first_arrival_at} … {o.last_arrival_at}"),
            f"<span class='warn'>{esc(o.state)}</span>" if o.state == "arriving" else esc(o.state),
        ]
        for o in view.outages
    ]
    gaps = [[esc(g.terminal_id), esc(g.down_at), esc(g.up_at or "still away")] for g in view.gaps]
    return (
        "<h3>Offline sales, by outage</h3>"
        + table(
            [
                "Terminal",
                "First offline sale (UTC)",
                "Last offline sale",
                "Sold offline",
                "Settled",
                "Declined (loss)",
                "Debts",
                "Advices arrived",
                "State",
            ],
            outages,
            label="outages",
        )
        + "<h3>Connection gaps the host saw</h3>"
        + table(["Terminal", "Lost at (UTC)", "Back at"], gaps, label="connection gaps")
    )


def operators_page(rows: list[tuple[str, str, str]], csrf: str) -> str:
    cells = [
        [
            esc(name),
            esc(role),
            esc(locked or ""),
            form(f"/operators/{name}/remove", csrf, "", "Remove", danger=True),
        ]
        for name, role, locked in rows
    ]
    add = form(
        "/operators",
        csrf,
        "<label>Name <input name='name' required autocomplete='off'></label>"
        "<label>Role <select name='role'><option>cashier</option><option>admin</option>"
        "</select></label><label>Password <input name='password' type='password' "
        "autocomplete='new-password' required></label>",
        "Add operator",
    )
    return table(["Name", "Role", "Locked until", ""], cells, label="operators") + add
