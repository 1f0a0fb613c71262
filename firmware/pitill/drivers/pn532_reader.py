"""A PN532 NFC reader on a UART (HSU), through nfcpy's own PN532 driver: taps -> cards.

nfcpy is opened on the configured port only (`nfc.clf.transport.TTY(port)` and
`nfc.clf.pn532.init`): never a `--search-tty`, which can hang on a Pi (nfcpy #104). One thread
polls for a type A tag every poll interval and only hands cards to the sink:

- a tag that stays on the reader is one tap: its UID must leave the field before it counts again;
- a Type 4 tag whose NDEF URL carries a SUN message (NTAG 424 DNA) is decrypted with the program's
  meta read key: tier `sun` with its UID and read counter (the host checks the CMAC);
- any other tag is tier `uid_only`; a random UID (4 bytes starting 08h: a bank card or a phone)
  identifies nothing and is refused;
- a tag pulled away mid-read, or whose SUN data does not fit, is "tap again" (`sink.unreadable`).

When the port fails the sink hears `reader_status(False, ...)` and the thread reopens it with a
bounded backoff. nfcpy is imported lazily: it is an optional extra (`pip install 'pitill[nfc]'`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pitill.card.model import Card, SunMessage
from pitill.card.sun import decrypt_picc_data, sun_from_url
from pitill.config import ReaderConfig
from pitill.drivers.protocols import CardSink
from pitill.errors import HardwareError, SunError

log = logging.getLogger(__name__)

REOPEN_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)
RANDOM_UID_FIRST_BYTE = 0x08  # ISO 14443-3: a 4-byte UID starting 08h is random per activation


def load_meta_key(
    path: str,
    setting: str = "reader.sun_meta_key_file",
    holds: str = "the program's SDM meta read key",
) -> bytes | None:
    """An AES-128 key from `path` (32 hex digits; by default the SDM meta read key that
    `setting` names); None when path is ""."""
    if not path:
        return None
    try:
        text = Path(path).read_text(encoding="ascii").strip()
        key = bytes.fromhex(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise HardwareError(
            f"{setting} {path}: cannot read a key from it ({exc}); it must hold {holds} as 32 "
            "hex digits"
        ) from None
    if len(key) != 16:
        raise HardwareError(
            f"{setting} {path}: holds {len(key)} bytes, an AES-128 key is 16 (32 hex digits)"
        )
    return key


def open_nfcpy(port: str) -> Any:
    """An nfcpy ContactlessFrontend on a PN532 at `port`; IOError/OSError when it is not there."""
    import nfc
    import nfc.clf.pn532
    import nfc.clf.transport

    transport = nfc.clf.transport.TTY(port)
    try:
        device = nfc.clf.pn532.init(transport)
    except BaseException:
        transport.close()
        raise
    device._path = port  # nfcpy's connect() sets it; str(device) needs it
    frontend = nfc.ContactlessFrontend()
    frontend.device = device
    return frontend


class Pn532Reader:
    """CardReader for `[reader] type = "pn532"`."""

    def __init__(
        self,
        config: ReaderConfig,
        *,
        meta_key: bytes | None = None,
        open_frontend: Callable[[str], Any] = open_nfcpy,
    ) -> None:
        self.config = config
        self._meta_key = meta_key
        self._open = open_frontend
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._present = ""  # UID of the tag in the field that was already handled
        self.firmware = ""  # e.g. "PN532v1.6", once opened
        self.taps = 0
        self.unreadable = 0

    def start(self, sink: CardSink) -> None:
        if self._thread is not None:
            raise RuntimeError("Pn532Reader.start() was already called")
        self._thread = threading.Thread(
            target=self._run, args=(sink,), name="pitill-pn532", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # --- the thread ------------------------------------------------------------------------

    def _run(self, sink: CardSink) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                frontend = self._open(self.config.port)
            except Exception as exc:  # nfcpy raises IOError, OSError or its own errors
                detail = f"no PN532 on {self.config.port}: {exc}; check HSU mode and wiring"
                _notify(sink.reader_status, False, detail)
                self._stop.wait(REOPEN_BACKOFF_S[min(failures, len(REOPEN_BACKOFF_S) - 1)])
                failures += 1
                continue
            failures = 0
            self.firmware = str(frontend.device).split(" at ")[0]
            _notify(sink.reader_status, True, f"{self.firmware} on {self.config.port}")
            try:
                self._poll(frontend, sink)
            except Exception as exc:
                if self._stop.is_set():
                    break
                log.warning("PN532 on %s lost: %s", self.config.port, exc)
                _notify(sink.reader_status, False, f"PN532 on {self.config.port} lost: {exc}")
            finally:
                with contextlib.suppress(Exception):
                    frontend.close()

    def _poll(self, frontend: Any, sink: CardSink) -> None:
        import nfc.clf

        target_106a = nfc.clf.RemoteTarget("106A")
        while not self._stop.wait(self.config.nfc_poll_s):
            target = frontend.sense(target_106a)
            if target is None:
                self._present = ""  # the field is empty: the next tag is a new tap
                continue
            uid = bytes(target.sdd_res).hex().upper()
            if uid == self._present:
                continue  # still held on the reader: one tap is one sale
            self._present = uid
            outcome = self._read(frontend, target, uid)
            if isinstance(outcome, Card):
                self.taps += 1
                _notify(sink.card, outcome)
            else:
                self.unreadable += 1
                self._present = "" if outcome.startswith("Card moved") else uid
                log.warning("unreadable tap: %s", outcome)
                _notify(sink.unreadable, outcome)

    def read_once(self, frontend: Any) -> str:
        """One poll on an opened reader, in words (the doctor's test tap)."""
        import nfc.clf

        target = frontend.sense(nfc.clf.RemoteTarget("106A"))
        if target is None:
            return "no card (hold one on it and run the doctor again for a test tap)"
        outcome = self._read(frontend, target, bytes(target.sdd_res).hex().upper())
        if isinstance(outcome, str):
            return outcome
        counter = f", read counter {outcome.sun_counter}" if outcome.sun is not None else ""
        return f"a {outcome.tier.value} card {outcome.masked_pan}{counter}"

    def _read(self, frontend: Any, target: Any, uid: str) -> Card | str:
        """The card on the reader, or why it cannot be used (as the log and screen say it)."""
        if len(uid) == 8 and int(uid[:2], 16) == RANDOM_UID_FIRST_BYTE:
            return "Card has a random UID (a bank card or a phone?): not a card of this program"
        is_type4 = bool(target.sel_res and target.sel_res[0] & 0x20)
        if not is_type4 or self._meta_key is None:
            return Card.from_uid(uid)
        message, broke_off = self._sun_message(frontend, target)
        if broke_off:
            return "Card moved away too soon: tap again"
        if message is None:
            return Card.from_uid(uid)  # a Type 4 tag without a SUN URL
        try:
            picc = decrypt_picc_data(self._meta_key, message.picc_data)
        except SunError as exc:
            return f"SUN data this program cannot read: {exc}"
        if picc.uid.hex().upper() != uid:
            return "SUN data of another card (a copied message): not accepted"
        return Card.from_sun(uid, picc.counter, message)

    def _sun_message(self, frontend: Any, target: Any) -> tuple[SunMessage | None, bool]:
        """(the tag's SUN message or None when it has none, whether the read broke off)."""
        import nfc.tag

        try:
            tag = nfc.tag.activate(frontend, target)
            ndef = tag.ndef if tag is not None else None
            if ndef is None:
                return None, not (tag is not None and tag.is_present)
            for record in ndef.records:
                message = sun_from_url(getattr(record, "iri", ""))
                if message is not None:
                    return message, False
        except Exception as exc:  # nfcpy's CommunicationError, TagCommandError, ndef errors
            log.debug("tag read broke off: %s", exc)
            return None, True
        return None, False


def _notify(method: Callable[..., object], *args: object) -> None:
    """Call a sink method; a failing sink is logged and must not kill the reader thread."""
    try:
        method(*args)
    except Exception:
        log.exception("card sink raised; the PN532 reader keeps running")
