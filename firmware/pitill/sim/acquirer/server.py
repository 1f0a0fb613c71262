"""AcquirerHost: a small ISO 8583 authorization host for the simulator and the tests.

It answers like a sandbox host: a valid, unexpired card is approved unless the amount ends in 51
(declined 51) or 05 (declined 05); the test card 4000000000000002 is always declined 05; a bad
PAN is declined 14, an expired card 54. Echoes get 0810 "00", advices 0230 "00" (advice_policy
may decline them), reversals 0430 "00".

Its ledger, DATA_DIR/acquirer-ledger.jsonl, has one JSON line per financial message (never
echoes), fsynced before the answer is sent, so "what the host saw" survives a crash of the host.
A message whose terminal id + STAN + local date/time it has already answered (per message class)
is answered again with the first answer, logged with "duplicate": true and never charged twice;
a restarted host reloads the ledger and keeps deduplicating.

Modes (set_mode): "up"; "down" (not listening, so connects are refused, and open connections are
dropped); "blackhole" (connections accepted and read, nothing is ever answered, open ones too).
DNS failure is SimResolver's job: the host stays up. ChaosPlan adds faults on top of "up".
Given an ssl.SSLContext (`tls=`) it speaks TLS, for the tests of certificate checks.

Run alone: python -m pitill.sim.acquirer --data-dir DIR --port N
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from pitill.card.model import CardTier
from pitill.card.sun import check_nfc_card_data
from pitill.core.responses import (
    APPROVED,
    FORMAT_ERROR,
    INVALID_CARD,
    SECURITY_VIOLATION,
    AnswerKind,
    ResponseClass,
    advice_held,
    classify,
)
from pitill.errors import ConfigError, ProtocolError, SunError
from pitill.sim.acquirer.chaos import ChaosPlan, _Chaos
from pitill.sim.acquirer.ledger import (
    LEDGER_NAME,
    Decision,
    DedupKey,
    _dedup_key,
    _Ledger,
    _sale_key,
    day_totals,
    read_ledger,
)
from pitill.sim.acquirer.policy import (
    MESSAGE_CLASS,
    AdvicePolicy,
    MessageClass,
    Mode,
    _today_yymm,
    accepted,
    acknowledge,
    answer_class,
    decide_sale,
)
from pitill.sim.sun_program import SANDBOX_MASTER_KEY, SANDBOX_META_KEY
from pitill.upstream.connect import close_stream
from pitill.upstream.fields import problems as field_problems
from pitill.upstream.framing import MAX_FRAME, frame, read_frame
from pitill.upstream.messages import (
    ECHO_REQUEST,
    RECONCILIATION,
    RESPONSE_MTI,
    UNKNOWN_TRANSMISSION,
    Message,
    Request,
    build_reconciliation_response,
    build_response,
    decode,
    encode,
    parse_batch,
    parse_request,
    reconciliation_of,
)
from pitill.upstream.wireformat import DEFAULT_WIRE, WireFormat

log = logging.getLogger("pitill.sim.acquirer")

# --- the host --------------------------------------------------------------------------------


class AcquirerHost:
    def __init__(
        self,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        today_yymm: Callable[[], str] = _today_yymm,
        chaos: ChaosPlan | None = None,
        advice_policy: AdvicePolicy = acknowledge,
        max_frame: int = MAX_FRAME,
        tls: ssl.SSLContext | None = None,
        wire: WireFormat = DEFAULT_WIRE,
    ) -> None:
        self.host = host
        self.wire = wire  # bitmap encoding and length prefix, as the terminals' [upstream]
        self.tls = tls  # a server context: TLS on every connection
        self.port = port  # the real port once started when 0 was asked for
        self.ledger_path = Path(data_dir) / LEDGER_NAME
        self.today_yymm = today_yymm
        self.advice_policy = advice_policy
        self._chaos = _Chaos(chaos or ChaosPlan())
        self._max_frame = max_frame
        self._mode = Mode.UP
        self._server: asyncio.Task[asyncio.Server] | None = None  # serving on a listening socket
        self._ledger = _Ledger(self.ledger_path)
        self._seen: dict[DedupKey, Decision] = {}
        self._approved_sales: set[DedupKey] = set()  # approved and not reversed
        self._sale_amounts: dict[DedupKey, int] = {}
        self._sale_sent: dict[DedupKey, DedupKey] = {}  # (terminal, STAN, field 7) -> dedup key
        self._serial = 0  # for RRNs and auth codes
        self._sun_used: dict[str, set[int]] = {}  # SUN counters each card has used (replays)
        self._sun_sales: dict[DedupKey, tuple[str, int]] = {}  # sale -> its card and counter
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self.counts: Counter[str] = Counter()
        self.reconciliations: list[dict[str, Any]] = []  # 0500s answered (end of day)

    # --- lifecycle ---

    async def start(self) -> None:
        """Reload the ledger and listen (unless the mode is already "down")."""
        for entry in self._ledger.open():
            self._remember(entry)
        if self._mode is not Mode.DOWN:
            self._listen()
            assert self._server is not None
            await self._server

    async def close(self) -> None:
        """Stop listening, drop connections and close the ledger; start() may follow."""
        await asyncio.gather(*self._go_down(), return_exceptions=True)
        self._ledger.close()

    async def __aenter__(self) -> AcquirerHost:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def mode(self) -> Mode:
        return self._mode

    def set_mode(self, mode: Mode | str) -> None:
        """Switch between up, down and blackhole, in effect when this returns (call it on the
        host's loop): after "down" a connect is refused, after "up" it is accepted.
        """
        try:
            new = Mode(mode)
        except ValueError:
            known = ", ".join(m.value for m in Mode)
            raise ConfigError(f"acquirer mode {mode!r} is unknown; modes: {known}") from None
        self._mode = new
        if new is Mode.DOWN:
            self._go_down()
        elif self._server is None:
            self._listen()

    def set_chaos(self, plan: ChaosPlan | None) -> None:
        """Replace the fault plan (None: no faults); the random stream restarts from its seed."""
        self._chaos = _Chaos(plan or ChaosPlan())

    @property
    def chaos(self) -> ChaosPlan:
        return self._chaos.plan

    def ledger(self) -> list[dict[str, Any]]:
        return read_ledger(self.ledger_path)

    # --- sockets ---

    def _listen(self) -> None:
        """Bind and listen now (the kernel accepts from here on), serve from the next tick."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.create_server((self.host, self.port), family=family, backlog=128)
        self.port = sock.getsockname()[1]
        self._server = asyncio.get_running_loop().create_task(
            asyncio.start_server(self._serve, sock=sock, ssl=self.tls)
        )

    def _go_down(self) -> list[asyncio.Task[Any]]:
        """Stop listening (new connects are refused) and drop every open connection.

        Returns the tasks that are still winding down, for close() to await.
        """
        server, self._server = self._server, None
        if server is not None:
            if server.done():
                server.result().close()  # removes and closes the listening socket at once
            else:  # listened in this same tick: close as soon as it serves
                server.add_done_callback(lambda task: task.result().close())
        handlers = list(self._connections)
        for writer in self._connections.values():
            writer.transport.abort()  # at once, unsent answers discarded, as a killed host
        for handler in handlers:
            handler.cancel()
        return [*handlers, *([server] if server is not None else [])]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        self.counts["connections"] += 1
        try:
            await self._serve_frames(reader, writer)
        except (OSError, ProtocolError) as exc:
            log.info("acquirer connection ended: %s", exc)
        except asyncio.CancelledError:
            # Only _go_down cancels these tasks (one may sleep in a chaos delay). Ending quietly
            # spares asyncio's start_server callback a CancelledError it would log as an error.
            pass
        finally:
            del self._connections[task]
            if not writer.is_closing():
                await close_stream(writer)

    async def _serve_frames(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            payload = await read_frame(reader, self._max_frame, self.wire)
            if payload is None:
                return
            if self._mode is not Mode.UP:
                self.counts["blackholed"] += 1
                continue
            try:
                message = decode(payload, self.wire)
            except ProtocolError as exc:
                self.counts["garbage"] += 1
                log.warning("acquirer dropped an undecodable frame: %s", exc)
                continue
            mti = message.get("t", "")
            if self._chaos.hits(self._chaos.plan.drop_request, mti):
                self.counts["dropped_requests"] += 1
                continue
            answer = self.process(message)
            if answer is None:
                continue
            if self._chaos.hits(self._chaos.plan.drop_reply, mti):
                self.counts["dropped_replies"] += 1
                continue
            copies = 2 if self._chaos.hits(self._chaos.plan.duplicate_reply, mti) else 1
            delay_s = self._chaos.delay_s(mti)
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            if self._mode is not Mode.UP:  # went silent while we waited
                continue
            data = frame(encode(answer, self.wire), self._max_frame, self.wire) * copies
            latency_s = self._chaos.latency_s()
            if latency_s > 0:  # a WAN: the answer is on its way while the next request is read
                asyncio.get_running_loop().call_later(latency_s, self._deliver, writer, data)
                continue
            writer.write(data)
            await writer.drain()

    def _deliver(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        """An answer arriving after its latency, unless the host went down or silent meanwhile."""
        if self._mode is Mode.UP and not writer.is_closing():
            writer.write(data)

    # --- processing ---

    def process(self, message: Message) -> Message | None:
        """The answer to one decoded request (ledgered first when financial), or None to drop."""
        mti = message.get("t", "")
        if mti not in RESPONSE_MTI:
            self.counts["unknown_mti"] += 1
            log.warning("acquirer ignores MTI %r", mti)
            return None
        try:
            request = parse_request(message) if mti != RECONCILIATION else None
            broken = field_problems(message)
            if broken:
                raise ProtocolError("; ".join(broken) + " (see docs/iso8583.md)")
        except ProtocolError as exc:
            self.counts["format_errors"] += 1
            log.warning("acquirer answers %s with format error: %s", mti, exc)
            return build_response(message, FORMAT_ERROR) if "11" in message else None
        if mti == ECHO_REQUEST:
            self.counts["echoes"] += 1
            return build_response(message, APPROVED)
        if mti == RECONCILIATION:
            return self._reconcile(message)
        assert request is not None
        decision = self._decide(request)
        return build_response(message, decision.response_code, decision.auth_code, decision.rrn)

    def _reconcile(self, message: Message) -> Message:
        """0510 to an 0500: this host's own totals for that terminal's day, from its ledger;
        field 39 00 when they equal the terminal's, 95 (reconcile error) when they do not."""
        try:
            batch = parse_batch(message)
            theirs = reconciliation_of(message)
        except ProtocolError as exc:
            self.counts["format_errors"] += 1
            log.warning("acquirer answers 0500 with format error: %s", exc)
            return build_response(message, FORMAT_ERROR)
        terminal_id = message.get("41", "")
        ours = day_totals(self.ledger(), terminal_id, batch)
        agrees = ours == theirs
        self.counts["reconciled" if agrees else "reconcile_errors"] += 1
        self.reconciliations.append(
            {"terminal_id": terminal_id, "day": batch.day, "agrees": agrees, "ours": ours}
        )
        if not agrees:
            log.warning(
                "acquirer disagrees with %s day %d: %s",
                terminal_id,
                batch.day,
                "; ".join(theirs.differences(ours)),
            )
        return build_reconciliation_response(message, agrees, ours)

    def _decide(self, request: Request) -> Decision:
        key = _dedup_key(request)
        duplicate = key in self._seen
        entry: dict[str, Any] = {
            "mti": request.mti,
            "stan": request.stan,
            "terminal_id": request.terminal_id,
            "local_datetime": request.local_datetime,
            "transmission": request.transmission,  # field 7 (UTC): a reversal's field 90 names it
            "amount_minor": request.amount_minor or 0,
            "currency": request.currency_numeric,
            "duplicate": duplicate,
            "processing_code": request.processing_code,  # 20xxxx: a refund (ledger.py)
        }
        if request.reason:
            entry["reason"] = request.reason  # a reversal's: 17 voided, 68 answer lost
        if self._chaos.hits(self._chaos.plan.retry, request.mti):
            decision = Decision(self._chaos.plan.retry_code)  # not processed: no dedup key
        elif duplicate:
            decision = self._seen[key]
        else:
            decision = self._decide_new(request, entry)
        entry.update(
            response_code=decision.response_code, auth_code=decision.auth_code, rrn=decision.rrn
        )
        self._ledger.append(entry)  # durable before anyone hears the answer
        if not duplicate:
            self._remember(entry)
        self.counts["duplicates" if duplicate else "financial"] += 1
        return decision

    def _decide_new(self, request: Request, entry: dict[str, Any]) -> Decision:
        self._serial += 1
        rrn = f"{self._serial:012d}"
        klass = MESSAGE_CLASS[request.mti]
        if klass is not MessageClass.REVERSAL and request.card_data:
            card_code = self._check_nfc_card(request.card_data, entry)
            if card_code != APPROVED:
                return Decision(card_code, "", rrn)  # a forged or replayed tap, after the fact too
        if klass is MessageClass.SALE:
            code = decide_sale(request, self.today_yymm())
            approved = classify(code, AnswerKind.SALE) is ResponseClass.APPROVED
            auth = f"{self._serial % 1_000_000:06d}" if approved else ""
            return Decision(code, auth, rrn)
        if klass is MessageClass.ADVICE:
            return Decision(self.advice_policy(request, self.today_yymm()), "", rrn)
        original = request.original
        assert original is not None  # parse_request requires field 90 on reversals
        # It names an online sale (0200) or an offline one already advised (0220: a void of a
        # forwarded offline sale).
        named_class = MESSAGE_CLASS.get(original.mti, MessageClass.SALE)
        named = _sale_key(request.terminal_id, original.stan, original.transmission, named_class)
        key = self._sale_sent.get(named, named)  # the sale's dedup key (local date/time)
        if original.transmission == UNKNOWN_TRANSMISSION:
            key = self._by_stan_alone(request, original.stan) or key
            entry["amount_minor"] = self._sale_amounts.get(key, 0)  # the amount it gives back
        entry["original"] = f"{original.mti}:{original.stan:06d}:{key[3]}"
        entry["reversed"] = key in self._approved_sales
        return Decision(APPROVED, "", rrn)  # also for a sale never seen: nobody is charged

    def _by_stan_alone(self, request: Request, stan: int) -> DedupKey | None:
        """A reversal whose original time the terminal lost (a power cut took the row): the
        latest approved sale with that STAN from that terminal, no older than the lower bound
        the reversal carries as its own local date/time (MMDDhhmmss; a year's turn is not
        handled in this sandbox)."""
        candidates = [
            key
            for key in self._approved_sales
            if key[1:3] == (request.terminal_id, stan) and key[3] >= request.local_datetime
        ]
        return max(candidates, key=lambda key: key[3], default=None)

    def _check_nfc_card(self, card_data: str, entry: dict[str, Any]) -> str:
        """The program's check of an NFC card (field 48): a UID, or a SUN message to verify.

        A SUN tap is genuine when its SDMMAC verifies with the card's diversified key and its
        counter was never used before by that card (a replay repeats one). Not "higher than the
        last": an offline sale's advice may arrive after a later online tap of the same card.
        """
        if card_data.partition(":")[0] not in (CardTier.UID_ONLY.value, CardTier.SUN.value):
            return FORMAT_ERROR
        try:
            tap = check_nfc_card_data(card_data, SANDBOX_META_KEY, SANDBOX_MASTER_KEY)
        except SunError as exc:
            log.warning("acquirer declines a SUN tap: %s", exc)
            return SECURITY_VIOLATION
        except ValueError:
            return INVALID_CARD
        if tap.counter is None:
            return APPROVED
        uid = tap.uid
        entry.update(sun_uid=uid, sun_counter=tap.counter)
        if tap.counter in self._sun_used.get(uid, set()):
            log.warning("acquirer declines card %s: SUN counter %d replayed", uid, tap.counter)
            entry["sun_replay"] = True
            return SECURITY_VIOLATION
        return APPROVED

    def _remember(self, entry: dict[str, Any]) -> None:
        """What a first (non-duplicate) ledger entry teaches the host, live or on reload."""
        rrn = entry.get("rrn", "")
        if rrn.isdigit():
            self._serial = max(self._serial, int(rrn))
        if entry["duplicate"] or answer_class(entry) is ResponseClass.RETRY:
            return  # a retry answer did not process the message: it may come again as new
        key = _dedup_key(entry)
        if key[0] is MessageClass.ADVICE and advice_held(entry["response_code"]):
            return  # nor did a 30 to an advice (responses.advice_held): sent again, it is new
        self._seen[key] = Decision(entry["response_code"], entry["auth_code"], rrn)
        klass = key[0]
        if klass in (MessageClass.SALE, MessageClass.ADVICE):
            # A reversal names its sale by field 7 (UTC); a ledger from before lacks it.
            sent = entry.get("transmission", entry["local_datetime"])
            named = _sale_key(entry["terminal_id"], entry["stan"], sent, MessageClass(klass))
            self._sale_sent[named] = key
        if "sun_uid" in entry and not entry.get("sun_replay"):
            self._sun_used.setdefault(entry["sun_uid"], set()).add(entry["sun_counter"])
            if klass is MessageClass.SALE:
                self._sun_sales[key] = (entry["sun_uid"], entry["sun_counter"])
        if klass in (MessageClass.SALE, MessageClass.ADVICE) and accepted(entry):
            self._approved_sales.add(key)
            self._sale_amounts[key] = int(entry["amount_minor"])
        if klass is MessageClass.REVERSAL:
            mti, stan, transmission = entry["original"].split(":")
            named_class = MESSAGE_CLASS.get(mti, MessageClass.SALE)
            sale = _sale_key(entry["terminal_id"], int(stan), transmission, named_class)
            if entry.get("reversed"):
                self._approved_sales.discard(sale)
            # A reversed sale never happened: its tap may come again in the offline advice.
            uid, counter = self._sun_sales.pop(sale, ("", -1))
            self._sun_used.get(uid, set()).discard(counter)
