"""The host's dashboard (`pitill host serve --web ADDR`): aiohttp in the host's own loop.

The web layer's rules hold here too (pitill.web.guard): 127.0.0.1 unless told otherwise, a
loopback Host on a loopback address, a strict CSP, no asset from elsewhere. On top:
- Operators log in (pitill.host.operators: scrypt, lockout after MAX_FAILURES). A session is a
  random token in an HttpOnly, SameSite=Strict cookie, ended by logging out, after SESSION_IDLE_S
  without a request, after SESSION_MAX_S, or when its operator is removed or given a new
  password (here or with `pitill host operator`: the session holds the hash it logged in with).
- Every POST carries the session's CSRF token in a form field (the login form a token of its own,
  doubled in a cookie) and, when the browser sends an Origin, the page's own origin; anything
  else is refused (403) and changes nothing.
- One client address gets IP_MAX_FAILURES wrong logins per IP_WINDOW_S, then 429.
- Each state change goes through the store's own methods (topup, payout, set_status, replace):
  the dashboard has no rule of its own about money.
The store's work runs on one worker thread with its own connection: the host's answers to
terminals never wait for a page.
"""

from __future__ import annotations

import asyncio
import csv
import hmac
import io
import logging
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any, TypeVar

from aiohttp import web

from pitill.core.types import format_amount, parse_amount
from pitill.errors import ConfigError, PitillError
from pitill.host import pages
from pitill.host.cards import parse_card
from pitill.host.operators import (
    LoginRefused,
    Operator,
    add_operator,
    login,
    operator_state,
    operators,
    record_action,
    remove_operator,
)
from pitill.host.settlement import (
    outage_view,
    outstanding,
    period,
    settle,
    settlement_csv,
    terminal_rows,
)
from pitill.host.store import HostStore
from pitill.logs import log_event
from pitill.web.bind import BindAddress
from pitill.web.guard import loopback_host, same_origin, security_headers
from pitill.web.site import start_site

log = logging.getLogger("pitill.host.dashboard")

SESSION_COOKIE = "pitill_session"
LOGIN_COOKIE = "pitill_login"
SESSION_IDLE_S = 30 * 60
SESSION_MAX_S = 12 * 3600
IP_MAX_FAILURES = 20
IP_WINDOW_S = 15 * 60
RECENT_DAYS = 7  # the terminals and outages pages read this far back (the report: any period)
HEADERS = security_headers(form_action="'self'")  # on every answer, redirects and errors too
T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Session:
    operator: Operator
    csrf: str
    credential: str  # the operator's password hash at login: another one ends the session
    started_s: float
    last_s: float
    flash: str = ""


class Dashboard:
    """Serves the dashboard on `bind` from its own connection to the store."""

    def __init__(
        self,
        bind: BindAddress,
        open_store: Callable[[], HostStore],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bind = bind
        self.port = bind.port
        self._open_store = open_store
        self._store: HostStore | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pitill-dashboard")
        self.clock = clock
        self.monotonic = monotonic
        self.sessions: dict[str, Session] = {}
        self._ip_failures: dict[str, deque[float]] = defaultdict(deque)
        self._runner: web.AppRunner | None = None

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        await self._db(lambda store: None)  # open the store now: a bad one fails at start
        app = web.Application(middlewares=[self._guard], client_max_size=16 * 1024)
        r = app.router
        r.add_get("/dashboard.css", self._css)
        r.add_get("/login", self._login_form)
        r.add_post("/login", self._login)
        r.add_post("/logout", self._logout)
        r.add_get("/", self._today)
        r.add_get("/terminals", self._terminals)
        r.add_get("/accounts", self._accounts)
        r.add_post("/accounts", self._search)
        r.add_get("/accounts/{id:[0-9]{1,18}}", self._account)
        r.add_post(
            "/accounts/{id:[0-9]{1,18}}/{action:topup|payout|block|unblock|replace}", self._act
        )
        r.add_get("/settlement", self._settlement)
        r.add_get("/settlement.csv", self._settlement_csv)
        r.add_get("/outages", self._outages)
        r.add_get("/operators", self._operators)
        r.add_post("/operators", self._operator_add)
        r.add_post("/operators/{name}/remove", self._operator_remove)
        self._runner, self.port = await start_site(app, self.bind)

    @property
    def url(self) -> str:
        return self.bind.url(self.port)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._store is not None:
            store = self._store
            await asyncio.get_running_loop().run_in_executor(self._worker, store.close)
        self._worker.shutdown(wait=True)

    async def _db(self, work: Callable[[HostStore], T]) -> T:
        def run() -> T:
            if self._store is None:
                self._store = self._open_store()
            return work(self._store)

        return await asyncio.get_running_loop().run_in_executor(self._worker, run)

    # --- guard, sessions, CSRF -----------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.bind.loopback and not loopback_host(request.host):
            raise web.HTTPForbidden(text="this page answers only at a loopback address\n")
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers.update(HEADERS)
            raise
        response.headers.update(HEADERS)
        return response

    def _session(self, request: web.Request) -> Session | None:
        token = request.cookies.get(SESSION_COOKIE, "")
        session = self.sessions.get(token)
        if session is None:
            return None
        now_s = self.monotonic()
        if _expired(session, now_s):
            del self.sessions[token]
            return None
        session.last_s = now_s
        return session

    async def _need(self, request: web.Request, action: str = "view") -> Session:
        """The request's session, its operator's role read again from the store (an operator
        removed or given another role, here or with `pitill host operator`, is so at once)."""
        session = self._session(request)
        if session is None:
            raise web.HTTPSeeOther("/login")
        name = session.operator.name
        state = await self._db(lambda store: operator_state(store, name))
        if state is None or not hmac.compare_digest(state[1], session.credential):
            self.sessions.pop(request.cookies.get(SESSION_COOKIE, ""), None)
            raise web.HTTPSeeOther("/login")
        session.operator = Operator(name, state[0])
        if not session.operator.can(action):
            log_event(
                log, "dashboard_refused", level=logging.WARNING,
                operator=session.operator.name, action=action,
            )  # fmt: skip
            raise web.HTTPForbidden(
                text=f"{session.operator.role} {session.operator.name} may not {action}: "
                "ask an admin\n"
            )
        return session

    async def _posted(self, request: web.Request, action: str) -> tuple[Session, dict[str, str]]:
        """The session and form of a state-changing request, after the CSRF checks."""
        session = await self._need(request, action)
        form = await request.post()
        given = form.get("csrf")
        if (
            not isinstance(given, str)
            or not hmac.compare_digest(given, session.csrf)
            or not same_origin(request.headers.get("Origin"), request.host)
        ):
            log_event(log, "csrf_refused", level=logging.WARNING, path=request.path)
            raise web.HTTPForbidden(text="this form is stale or not from this page: reload it\n")
        return session, {k: v for k, v in form.items() if isinstance(v, str)}

    def _page(self, title: str, body: str, session: Session | None) -> web.Response:
        flash = ""
        if session is not None:
            flash, session.flash = session.flash, ""
        html = pages.layout(
            title,
            body,
            session.operator if session else None,
            session.csrf if session else "",
            flash,
        )
        return web.Response(text=html, content_type="text/html", charset="utf-8")

    # --- login ---------------------------------------------------------------------------

    async def _css(self, request: web.Request) -> web.Response:
        body = resources.files("pitill.web").joinpath("static", "dashboard.css").read_bytes()
        return web.Response(body=body, content_type="text/css", charset="utf-8")

    def _login_response(self, message: str = "", status: int = 200) -> web.Response:
        token = secrets.token_urlsafe(18)
        response = web.Response(
            text=pages.login_page(token, message),
            content_type="text/html",
            charset="utf-8",
            status=status,
        )
        response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="Strict", path="/login")
        return response

    async def _login_form(self, request: web.Request) -> web.Response:
        return self._login_response()

    async def _login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        given, expected = form.get("csrf"), request.cookies.get(LOGIN_COOKIE, "")
        if (
            not isinstance(given, str)
            or not expected
            or not hmac.compare_digest(given, expected)
            or not same_origin(request.headers.get("Origin"), request.host)
        ):
            raise web.HTTPForbidden(text="this login form is stale or not from this page\n")
        client = request.remote or "?"
        now_s = self.monotonic()
        self._forget_old(now_s)
        failures = self._ip_failures[client]
        if len(failures) >= IP_MAX_FAILURES:
            return self._login_response("too many failed logins from here: wait a while", 429)
        # counted as a failure until it succeeds: attempts sent at once cannot pass the limit
        failures.append(now_s)
        name, password = str(form.get("name", "")), str(form.get("password", ""))

        def check(store: HostStore) -> tuple[Operator, tuple[str, str] | None]:
            operator = login(store, name, password, self.clock())
            return operator, operator_state(store, operator.name)

        try:
            operator, state = await self._db(check)
        except LoginRefused as exc:
            log_event(log, "login_refused", level=logging.WARNING, operator=name[:40])
            return self._login_response(str(exc), 401)
        failures.remove(now_s)
        token = secrets.token_urlsafe(32)
        credential = state[1] if state else ""
        self.sessions[token] = Session(
            operator, secrets.token_urlsafe(32), credential, now_s, now_s
        )
        log_event(log, "login", operator=operator.name, role=operator.role)
        response = web.HTTPSeeOther("/")
        response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Strict", path="/")
        raise response

    def _forget_old(self, now_s: float) -> None:
        """Drop failures older than the window and sessions past their time (both dicts stay
        as small as the recent traffic)."""
        for client, failures in list(self._ip_failures.items()):
            while failures and now_s - failures[0] > IP_WINDOW_S:
                failures.popleft()
            if not failures:
                del self._ip_failures[client]
        for token, session in list(self.sessions.items()):
            if _expired(session, now_s):
                del self.sessions[token]

    async def _logout(self, request: web.Request) -> web.StreamResponse:
        await self._posted(request, "view")
        self.sessions.pop(request.cookies.get(SESSION_COOKIE, ""), None)
        response = web.HTTPSeeOther("/login")
        response.del_cookie(SESSION_COOKIE, path="/")
        raise response

    # --- pages ---------------------------------------------------------------------------

    async def _today(self, request: web.Request) -> web.Response:
        session = await self._need(request)
        now = self.clock()
        since, until = period(None, None, None, now.date())

        def read(store: HostStore) -> str:
            program, terminals = settle(store, since, until)
            rows = terminal_rows(store, outage_view(store, now, self._recent(now)))
            return pages.today_page(program, terminals, outstanding(store), rows)

        return self._page(f"Today, {now.date()}", await self._db(read), session)

    async def _terminals(self, request: web.Request) -> web.Response:
        session = await self._need(request)
        now = self.clock()
        recent = self._recent(now)
        rows = await self._db(lambda store: terminal_rows(store, outage_view(store, now, recent)))
        return self._page("Terminals", pages.terminals_page(rows), session)

    async def _accounts(self, request: web.Request) -> web.Response:
        session = await self._need(request)
        watch = await self._db(lambda store: store.accounts_to_watch())
        return self._page("Accounts", pages.accounts_page(session.csrf, None, watch), session)

    async def _search(self, request: web.Request) -> web.Response:
        # a POST so a card number never sits in a URL, a history or a log
        session, form = await self._posted(request, "view")
        query = form.get("q", "").strip()[:80]

        def find(store: HostStore) -> list[Any]:
            digits = query.replace(" ", "")
            if (digits.isdigit() and len(digits) >= 12) or query.lower().startswith("uid:"):
                try:
                    found = store.account(parse_card(query))
                except ConfigError:
                    return []
                return [found] if found else []
            return store.search_accounts(query) if query else []

        found = await self._db(find)
        return self._page(
            f"Accounts: {len(found)} found", pages.accounts_page(session.csrf, found), session
        )

    async def _account(self, request: web.Request) -> web.Response:
        session = await self._need(request)
        account_id = int(request.match_info["id"])

        def read(store: HostStore) -> str | None:
            found = store.account_by_id(account_id)
            if found is None:
                return None
            account, _ = found
            return pages.account_page(
                account, store.history(account), session.operator, session.csrf
            )

        body = await self._db(read)
        if body is None:
            raise web.HTTPNotFound(text=f"account {account_id}: no such account\n")
        return self._page("Account", body, session)

    async def _act(self, request: web.Request) -> web.StreamResponse:
        action = request.match_info["action"]
        need = {"unblock": "block"}.get(action, action)
        session, form = await self._posted(request, need)
        account_id = int(request.match_info["id"])
        operator = session.operator

        def act(store: HostStore) -> tuple[str, int]:
            """What was done, and the account to show next (a replacement's new one)."""
            found = store.account_by_id(account_id)
            if found is None:
                raise ConfigError(f"account {account_id}: no such account")
            account, card = found
            amount: int | None = None
            if action in ("topup", "payout"):
                try:
                    amount = parse_amount(form.get("amount", ""))
                except ValueError as exc:
                    raise ConfigError(str(exc)) from None
            shown_next = account_id
            if action == "topup" and amount is not None:
                after, paid = store.topup(card, amount)
                said = f"topped up {format_amount(amount)}"
                if paid:
                    said += f" (paid off a debt of {format_amount(paid)})"
            elif action == "payout" and amount is not None:
                after = store.payout(card, amount)
                said = f"paid out {format_amount(amount)}"
            elif action in ("block", "unblock"):
                after = store.set_status(card, "blocked" if action == "block" else "active")
                said = f"card {after.card_shown} is {after.status}"
            else:
                after = store.replace(card, parse_card(form.get("card", "")))
                said = f"balance moved to {after.card_shown}; {account.card_shown} is refused now"
                shown_next = after.id
            record_action(store, operator, action, account.card_shown, amount)
            return f"{said}: balance {format_amount(after.balance_minor)}", shown_next

        shown_next = account_id
        try:
            said, shown_next = await self._db(act)
        except PitillError as exc:
            said = f"refused: {exc}"
        else:
            log_event(log, "dashboard_action", operator=operator.name, action=action)
        session.flash = said
        response = web.HTTPSeeOther(f"/accounts/{shown_next}")
        raise response

    async def _settlement(self, request: web.Request) -> web.Response:
        session = await self._need(request)
        today = self.clock().date()
        given_from = request.query.get("from") or None
        given_to = request.query.get("to") or None
        try:
            since, until = period(None, given_from, given_to, today)
        except ConfigError as exc:
            session.flash = str(exc)
            since, until = period(None, None, None, today)
            given_from = given_to = None
        program, terminals = await self._db(lambda store: settle(store, since, until))
        body = pages.period_form(given_from or str(today), given_to or str(today))
        body += (
            f"<p><a href='/settlement.csv?from={since[:10]}&amp;"
            f"to={pages.esc(given_to or since[:10])}'>"
            "Download as CSV</a></p>"
        )
        body += pages.settlement_table(program, terminals)
        return self._page(f"Settlement {since[:10]} to {given_to or since[:10]}", body, session)

    async def _settlement_csv(self, request: web.Request) -> web.Response:
        """The period's settlement as `pitill host report --settlement-csv` writes it."""
        await self._need(request)
        try:
            since, until = period(
                None,
                request.query.get("from") or None,
                request.query.get("to") or None,
                self.clock().date(),
            )
        except ConfigError as exc:
            raise web.HTTPBadRequest(text=f"{exc}\n") from None
        rows = await self._db(lambda store: settlement_csv(*settle(store, since, until)))
        out = io.StringIO()
        csv.writer(out).writerows(rows)
        return web.Response(
            text=out.getvalue(),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="settlement-{since[:10]}.csv"'},
        )

    async def _outages(self, request: web.Request) -> web.Response:
        session = await self._need(request)
        now = self.clock()
        recent = self._recent(now)
        view = await self._db(lambda store: outage_view(store, now, recent))
        return self._page(f"Outages since {recent[:10]}", pages.outages_page(view), session)

    @staticmethod
    def _recent(now: datetime) -> str:
        return (now - timedelta(days=RECENT_DAYS)).isoformat(timespec="seconds")

    async def _operators(self, request: web.Request) -> web.Response:
        session = await self._need(request, "operators")
        rows = await self._db(operators)
        return self._page("Operators", pages.operators_page(rows, session.csrf), session)

    async def _operator_add(self, request: web.Request) -> web.StreamResponse:
        session, form = await self._posted(request, "operators")
        name, role, password = form.get("name", ""), form.get("role", ""), form.get("password", "")
        try:
            added = await self._db(lambda store: add_operator(store, name, role, password))
            session.flash = f"operator {added.name} ({added.role}) saved"
            log_event(log, "operator_added", by=session.operator.name, operator=added.name)
        except PitillError as exc:
            session.flash = f"refused: {exc}"
        response = web.HTTPSeeOther("/operators")
        raise response

    async def _operator_remove(self, request: web.Request) -> web.StreamResponse:
        session, _ = await self._posted(request, "operators")
        name = request.match_info["name"]
        if name == session.operator.name:
            session.flash = "refused: you cannot remove yourself"
        else:
            try:
                await self._db(lambda store: remove_operator(store, name))
                session.flash = f"operator {name} removed"
                for token, other in list(self.sessions.items()):
                    if other.operator.name == name:
                        del self.sessions[token]
            except PitillError as exc:
                session.flash = f"refused: {exc}"
        response = web.HTTPSeeOther("/operators")
        raise response


def _expired(session: Session, now_s: float) -> bool:
    return now_s - session.last_s > SESSION_IDLE_S or now_s - session.started_s > SESSION_MAX_S
