"""A PN532 on a real pty pair, speaking the PN532 host frame protocol, with virtual tags.

The terminal's reader code (nfcpy's own PN532 driver under drivers/pn532_reader.py) opens the
slave end of the pty as it would open /dev/ttyAMA0; this emulator answers on the master end.
Each command frame is ACKed, then answered (UM0701-02): the commands nfcpy sends at init
(GetFirmwareVersion, SAMConfiguration, SetSerialBaudrate, Diagnose line test, SetParameters,
RFConfiguration, Read/WriteRegister) and to poll and talk to a tag (InListPassiveTarget,
InCommunicateThru, InRelease, PowerDown). A frame with a bad checksum gets no answer, as on the
chip; an unknown command gets the error frame.

Virtual tags: `UidTag` (an NTAG215 sticker or any UID-only tag), `Ntag424Tag` (a Type 4 tag whose
NDEF URL carries a fresh SUN message computed with its keys on every read, the same code the tests
check against NXP's examples) and `ClonedTag` (a Type 4 tag replaying a recorded URL, what a copy
of an NTAG 424 DNA can do). A tap places a tag in the field for a number of polls.
"""

from __future__ import annotations

import logging
import os
import select
import threading
from collections import Counter
from dataclasses import dataclass, field

from pitill.card.model import SunMessage
from pitill.card.pn532_frame import (
    ACK,
    ERROR_FRAME,
    TFI_HOST_TO_PN532,
    TFI_PN532_TO_HOST,
    Ack,
    Dropped,
    Frame,
    FrameReader,
    Nack,
    encode_frame,
)
from pitill.card.sun import card_file_key, make_sun, sun_url

log = logging.getLogger(__name__)

FIRMWARE_VERSION = bytes((0x32, 0x01, 0x06, 0x07))  # PN532, v1.6, ISO 14443 A and B, ISO 18092
NFC_APP_AID = bytes.fromhex("D2760000850101")
CC_FILE = bytes.fromhex("E103")
NDEF_FILE = bytes.fromhex("E104")
ATS_NTAG424 = bytes.fromhex("067777710280")  # FSCI 7 (128 bytes), FWI 7, as the real tag
STATUS_OK = 0x00
STATUS_TIMEOUT = 0x01  # "the target has not answered": the tag left the field
CIU_FIFO_DATA = 0x6339
SENS_REQ = 0x26
_SW_OK = b"\x90\x00"
_SW_NOT_FOUND = b"\x6a\x82"
_SW_BAD_P1P2 = b"\x6b\x00"
_SW_UNKNOWN_INS = b"\x6d\x00"


def _uri_record(url: str) -> bytes:
    """One short NDEF URI record (https:// abbreviated), MB and ME set."""
    prefix = "https://"
    body = url.removeprefix(prefix).encode("ascii")
    payload = (b"\x04" if url.startswith(prefix) else b"\x00") + body
    if len(payload) > 255:
        raise ValueError("a short NDEF record holds at most 255 bytes of payload")
    return bytes((0xD1, 0x01, len(payload))) + b"U" + payload


@dataclass
class UidTag:
    """A tag the terminal identifies by UID only (NTAG215: ATQA 0044, SAK 00)."""

    uid: bytes
    sens_res: bytes = b"\x00\x44"
    sel_res: int = 0x00

    def thru(self, data: bytes) -> bytes | None:
        return None  # the reader only lists it; nothing talks to a Type 2 tag here

    def reset(self) -> None:
        pass


@dataclass
class Type4Tag:
    """An ISO 14443-4 tag with the NFC Forum Type 4 NDEF application (ATQA 0344, SAK 20)."""

    uid: bytes
    sens_res: bytes = b"\x03\x44"
    sel_res: int = 0x20
    _selected: bytes = b""
    _ndef: bytes = b""
    _active: bool = False
    _block: int = 0

    def ndef_message(self) -> bytes:
        raise NotImplementedError

    def reset(self) -> None:
        self._selected, self._active, self._block = b"", False, 0

    def thru(self, data: bytes) -> bytes | None:
        """One ISO 14443-4 exchange: RATS, I-blocks with APDUs, R-blocks, DESELECT."""
        if not data:
            return None
        if data[0] == 0xE0:  # RATS
            self._active, self._block = True, 0
            return ATS_NTAG424
        if not self._active:
            return None
        pcb = data[0]
        if pcb & 0xE2 == 0x02 and not pcb & 0x10:  # I-block, no chaining
            return bytes([0x02 | (pcb & 1)]) + self._apdu(data[1:])
        if pcb & 0xE6 == 0xA2:  # R-block (ACK or NAK): "I am here", as a presence check
            return bytes([0xA2 | (pcb & 1)])
        if pcb & 0xF7 == 0xC2:  # S(DESELECT)
            self._active = False
            return data[:1]
        return None

    def _apdu(self, apdu: bytes) -> bytes:
        if len(apdu) < 4:
            return _SW_BAD_P1P2
        ins, p1, p2, rest = apdu[1], apdu[2], apdu[3], apdu[4:]
        if ins == 0xA4:  # SELECT
            name = rest[1 : 1 + rest[0]] if rest else b""
            if p1 == 0x04 and name == NFC_APP_AID:
                self._selected = NFC_APP_AID
                return _SW_OK
            if p1 == 0x00 and self._selected and name in (CC_FILE, NDEF_FILE):
                self._selected = name
                if name == NDEF_FILE:
                    message = self.ndef_message()  # SDM: a new message per read of the file
                    self._ndef = len(message).to_bytes(2, "big") + message
                return _SW_OK
            return _SW_NOT_FOUND
        if ins == 0xB0:  # READ BINARY
            offset, length = (p1 << 8) | p2, (rest[0] or 256) if rest else 256
            if self._selected == CC_FILE:
                content = bytes.fromhex("000F20007F007F0406E104010000FF")
            elif self._selected == NDEF_FILE:
                content = self._ndef
            else:
                return _SW_NOT_FOUND
            if offset > len(content):
                return _SW_BAD_P1P2
            return content[offset : offset + length] + _SW_OK
        return _SW_UNKNOWN_INS


@dataclass
class Ntag424Tag(Type4Tag):
    """An NTAG 424 DNA personalised with SUN: each read mirrors a new counter and SDMMAC."""

    meta_key: bytes = bytes(16)
    file_key: bytes = bytes(16)
    counter: int = 0
    last_url: str = ""

    @classmethod
    def enrolled(cls, uid: bytes, meta_key: bytes, master_key: bytes) -> Ntag424Tag:
        """A tag personalised by a program: its file key diversified from the master key."""
        return cls(uid=uid, meta_key=meta_key, file_key=card_file_key(master_key, uid))

    def ndef_message(self) -> bytes:
        self.counter += 1
        padding = os.urandom(5)  # the tag's random padding: no two messages look alike
        message = make_sun(self.meta_key, self.file_key, self.uid, self.counter, padding)
        self.last_url = sun_url(message)
        return _uri_record(self.last_url)

    def last_message(self) -> SunMessage | None:
        from pitill.card.sun import sun_from_url

        return sun_from_url(self.last_url) if self.last_url else None


@dataclass
class ClonedTag(Type4Tag):
    """A copy of a tag: same UID, and the URL (SUN message) it read last, replayed forever."""

    url: str = ""

    def ndef_message(self) -> bytes:
        return _uri_record(self.url)


Tag = UidTag | Ntag424Tag | ClonedTag


@dataclass
class _InField:
    tag: Tag
    polls_left: int  # InListPassiveTarget answers it still gives before it leaves the field
    thru_left: int | None  # exchanges before it is pulled away mid-read (None: never)


@dataclass
class EmulatorStats:
    commands: Counter[str] = field(default_factory=Counter)
    dropped: int = 0
    errors: int = 0


COMMAND_NAMES = {
    0x00: "Diagnose",
    0x02: "GetFirmwareVersion",
    0x06: "ReadRegister",
    0x08: "WriteRegister",
    0x10: "SetSerialBaudrate",
    0x12: "SetParameters",
    0x14: "SAMConfiguration",
    0x16: "PowerDown",
    0x32: "RFConfiguration",
    0x42: "InCommunicateThru",
    0x4A: "InListPassiveTarget",
    0x52: "InRelease",
}


class Pn532Emulator:
    """Answers PN532 frames on the master end of a pty pair; `slave_path` is the reader's port."""

    def __init__(self, fd: int | None = None, name: str = "") -> None:
        """On a new pty pair; or on `fd`, an open serial line called `name` (tools/pn532-emulator
        --port: a USB-serial adapter wired to a Pi's UART)."""
        if fd is None:
            from pitill.sim.reader_emulator import open_pty_pair

            self.master_fd, self.slave_path = open_pty_pair()
        else:
            self.master_fd, self.slave_path = fd, name
        self.stats = EmulatorStats()
        self._reader = FrameReader()
        self._lock = threading.Lock()
        self._field: _InField | None = None
        self._listed: Tag | None = None
        self._registers: dict[int, int] = {}
        self._last_response = b""
        self._empty_polled = threading.Event()  # a poll answered "no tag" since the last lift
        self._stop_r, self._stop_w = os.pipe()
        self._thread: threading.Thread | None = None

    # --- the hand that taps ----------------------------------------------------------------

    def tap(self, tag: Tag, polls: int = 3, pull_after_exchanges: int | None = None) -> None:
        """Hold `tag` on the reader for `polls` polls (or pull it away after some exchanges)."""
        with self._lock:
            tag.reset()
            self._field = _InField(tag, polls, pull_after_exchanges)

    def lift(self, timeout_s: float = 2.0) -> bool:
        """Take away whatever is on the reader and wait until a poll has seen the field empty
        (as a hand does between two cards), so the next tap is a new tap. False if no poll came."""
        with self._lock:
            if self._field is None and self._listed is None:
                return True
            self._field = None
            self._empty_polled.clear()
        return self._empty_polled.wait(timeout_s)

    def tag_in_field(self) -> Tag | None:
        with self._lock:
            return self._field.tag if self._field else None

    # --- running -----------------------------------------------------------------------------

    def start(self) -> Pn532Emulator:
        self._thread = threading.Thread(target=self._run, name="pn532-emulator", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._stop_w < 0:
            return
        os.write(self._stop_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        for fd in (self._stop_r, self._stop_w, self.master_fd):
            os.close(fd)
        self._stop_w = -1

    def __enter__(self) -> Pn532Emulator:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    def _run(self) -> None:
        while True:
            readable, _, _ = select.select([self.master_fd, self._stop_r], [], [])
            if self._stop_r in readable:
                return
            try:
                data = os.read(self.master_fd, 4096)
            except OSError:  # the slave end is closed between two opens: wait for the next
                if select.select([self._stop_r], [], [], 0.01)[0]:
                    return
                continue
            for reply in self.feed(data):
                os.write(self.master_fd, reply)

    def feed(self, data: bytes) -> list[bytes]:
        """What the chip sends back for these bytes from the host (for tests without a pty)."""
        replies: list[bytes] = []
        for result in self._reader.feed(data):
            if isinstance(result, Frame) and result.tfi == TFI_HOST_TO_PN532 and result.payload:
                response = self._command(result.payload[0], result.payload[1:])
                self._last_response = response
                replies += [ACK, response]
            elif isinstance(result, Nack) and self._last_response:
                replies.append(self._last_response)  # the host missed it: send it again
            elif isinstance(result, Dropped):
                self.stats.dropped += 1
            elif isinstance(result, Frame | Ack):
                pass  # a frame from the wrong side, or the host's ACK (cancel / baud switch)
        return replies

    # --- the chip ----------------------------------------------------------------------------

    def _command(self, code: int, params: bytes) -> bytes:
        name = COMMAND_NAMES.get(code)
        if name is None:
            self.stats.errors += 1
            log.debug("PN532 emulator: unknown command %#04x", code)
            return ERROR_FRAME
        self.stats.commands[name] += 1
        body = getattr(self, f"_cmd_{code:02x}")(params)
        return encode_frame(TFI_PN532_TO_HOST, bytes([code + 1]) + body)

    def _cmd_00(self, params: bytes) -> bytes:  # Diagnose: the line test echoes its data
        return params if params[:1] == b"\x00" else b"\x00"

    def _cmd_02(self, params: bytes) -> bytes:
        return FIRMWARE_VERSION

    def _cmd_06(self, params: bytes) -> bytes:
        addresses = [int.from_bytes(params[i : i + 2], "big") for i in range(0, len(params), 2)]
        return bytes(self._register(address) for address in addresses)

    def _register(self, address: int) -> int:
        if address == CIU_FIFO_DATA:
            with self._lock:  # no tag answered: the SENS_REQ is still in the FIFO
                return SENS_REQ if self._listed is None else 0
        return self._registers.get(address, 0)

    def _cmd_08(self, params: bytes) -> bytes:
        for i in range(0, len(params) - 2, 3):
            self._registers[int.from_bytes(params[i : i + 2], "big")] = params[i + 2]
        return b""

    def _cmd_10(self, params: bytes) -> bytes:  # SetSerialBaudrate: a pty takes any speed
        return b""

    def _cmd_12(self, params: bytes) -> bytes:
        return b""

    def _cmd_14(self, params: bytes) -> bytes:
        return b""

    def _cmd_16(self, params: bytes) -> bytes:
        return b"\x00"

    def _cmd_32(self, params: bytes) -> bytes:
        return b""

    def _cmd_4a(self, params: bytes) -> bytes:  # InListPassiveTarget, 106 kbps type A
        with self._lock:
            here = self._field
            if here is None or params[1:2] != b"\x00":
                self._listed = None
                self._empty_polled.set()
                return b"\x00"
            if here.polls_left <= 0:
                self._field = self._listed = None
                return b"\x00"
            here.polls_left -= 1
            tag = here.tag
            tag.reset()
            self._listed = tag
        uid = tag.uid
        return b"\x01\x01" + tag.sens_res + bytes([tag.sel_res, len(uid)]) + uid

    def _cmd_42(self, params: bytes) -> bytes:  # InCommunicateThru
        with self._lock:
            here, tag = self._field, self._listed
            if here is None or tag is None or here.tag is not tag:
                return bytes([STATUS_TIMEOUT])
            if here.thru_left is not None:
                if here.thru_left <= 0:
                    self._field = self._listed = None  # pulled away mid-read
                    return bytes([STATUS_TIMEOUT])
                here.thru_left -= 1
        answer = tag.thru(params)
        return bytes([STATUS_TIMEOUT]) if answer is None else bytes([STATUS_OK]) + answer

    def _cmd_52(self, params: bytes) -> bytes:  # InRelease
        with self._lock:
            self._listed = None
        return b"\x00"


__all__ = ["ClonedTag", "Ntag424Tag", "Pn532Emulator", "Tag", "UidTag"]
