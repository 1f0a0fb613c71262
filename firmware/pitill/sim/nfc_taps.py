"""Tapping virtual NFC cards in the simulator: a PN532 emulator, the real reader, named cards.

`tap uid 04A1B2C3D4E5F6` holds a UID-only tag (an NTAG215) on the reader; `tap ntag424 NAME`
an NTAG 424 DNA of the sandbox program (sim/sun_program.py), made on first use with its keys
diversified from the program's master key and a fresh SUN message on every tap; `tap clone NAME`
a copy of that card replaying the SUN message it sent last. The terminal reads them through
nfcpy's PN532 driver over a pty (drivers/pn532_reader.py), as it would a board on its UART.
"""

from __future__ import annotations

import logging

from pitill.config import ReaderConfig
from pitill.drivers.pn532_reader import Pn532Reader
from pitill.errors import ScriptError
from pitill.sim.pn532_emulator import ClonedTag, Ntag424Tag, Pn532Emulator, UidTag
from pitill.sim.sun_program import SANDBOX_MASTER_KEY, SANDBOX_META_KEY, virtual_uid

log = logging.getLogger(__name__)

TAP_KINDS = ("uid", "ntag424", "clone")
POLL_S = 0.05  # the simulator's reader polls faster than a Pi's default: taps feel instant
TAP_POLLS = 3  # a tap stays in the field for this many polls (one tap, however long it rests)


class NfcTaps:
    def __init__(
        self, emulator: Pn532Emulator, reader: Pn532Reader | None, *, nfcpy_missing: bool = False
    ) -> None:
        self.emulator = emulator
        self.reader = reader  # None in tools/pn532-emulator: the reader is another process
        self.nfcpy_missing = nfcpy_missing
        self.cards: dict[str, Ntag424Tag] = {}

    @classmethod
    def start(cls) -> NfcTaps:
        """The emulator running, and the reader for it (None when nfcpy is not installed)."""
        emulator = Pn532Emulator().start()
        try:
            import nfc  # noqa: F401  (the optional extra `nfc`)
        except ImportError:
            log.warning("nfcpy is not installed (pip install 'pitill[nfc]'): no NFC taps")
            return cls(emulator, None, nfcpy_missing=True)
        config = ReaderConfig(port=emulator.slave_path, type="pn532", nfc_poll_s=POLL_S)
        return cls(emulator, Pn532Reader(config, meta_key=SANDBOX_META_KEY))

    def tap(self, kind: str, arg: str) -> str:
        """Put a tag on the reader (blocking: it waits a poll for the last one to be lifted);
        what was tapped, for the simulator's log line."""
        if self.nfcpy_missing:
            raise ScriptError("NFC taps need nfcpy: pip install 'pitill[nfc]'")
        self.emulator.lift()  # the card before is taken away first: a new tap, even of it
        if kind == "uid":
            try:
                uid = bytes.fromhex(arg)
            except ValueError:
                uid = b""
            if len(uid) not in (4, 7, 10):
                raise ScriptError(f"tap uid takes 4, 7 or 10 bytes of hex, got {arg!r}")
            self.emulator.tap(UidTag(uid), polls=TAP_POLLS)
            return f"UID-only tag {uid.hex().upper()}"
        if kind == "ntag424":
            card = self.card(arg)
            self.emulator.tap(card, polls=TAP_POLLS)
            return f"NTAG 424 DNA {arg!r} (read counter {card.counter + 1})"
        if kind == "clone":
            original = self.cards.get(arg)
            if original is None or not original.last_url:
                raise ScriptError(f"tap clone {arg}: tap ntag424 {arg} first (nothing to copy)")
            self.emulator.tap(ClonedTag(uid=original.uid, url=original.last_url), polls=TAP_POLLS)
            return f"a clone of {arg!r} replaying read counter {original.counter}"
        raise ScriptError(f"tap takes {', '.join(TAP_KINDS)}, got {kind!r}")

    def card(self, name: str) -> Ntag424Tag:
        """The sandbox program's virtual NTAG 424 DNA called `name`, made on first use."""
        card = self.cards.get(name)
        if card is None:
            card = Ntag424Tag.enrolled(virtual_uid(name), SANDBOX_META_KEY, SANDBOX_MASTER_KEY)
            self.cards[name] = card
        return card

    def close(self) -> None:
        self.emulator.close()
