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
from pitill.card.ntag424_ev2 import (
    SdmSettings,
    Session,
    cbc_zero_iv,
    jamcrc32,
    rotl,
    session_for,
)
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
from pitill.card.sun import card_app_key, card_file_key, make_sun, sun_template, sun_url
from pitill.errors import SunError

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
_AUTH_ERROR = b"\x91\xae"
_INTEGRITY_ERROR = b"\x91\x1e"


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

    def ndef_file(self) -> bytes:
        """The NDEF file as a read finds it: NLEN and the message."""
        message = self.ndef_message()
        return len(message).to_bytes(2, "big") + message

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
                    self._ndef = self.ndef_file()  # SDM: a new message per read of the file
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
    """An NTAG 424 DNA: five AES keys, file 2 holding the NDEF data, and SDM once it is set.

    Blank (`blank`), all keys are zero, file 2 is writable by anyone and SDM is off; `pitill card
    enroll` authenticates (AuthenticateEV2First), sets SDM (ChangeFileSettings) and the keys
    (ChangeKey) in CommMode.FULL, as on the chip. With SDM on, every read of file 2 mirrors a new
    SUN message (counter + 1) into the written template at the configured offsets.
    """

    keys: list[bytes] = field(default_factory=lambda: [bytes(16)] * 5)
    sdm: SdmSettings | None = None
    file2: bytes = b"\x00\x00"
    counter: int = 0
    last_url: str = ""
    _auth: tuple[int, bytes] | None = None  # key number and RndB while authenticating
    _session: Session | None = None
    _session_key_no: int = 0

    @classmethod
    def enrolled(cls, uid: bytes, meta_key: bytes, master_key: bytes) -> Ntag424Tag:
        """A tag as `pitill card enroll` leaves it (keys from the program's master key)."""
        file, picc_offset, mac_offset = sun_template()
        keys = [card_app_key(master_key, uid), meta_key, card_file_key(master_key, uid)]
        return cls(
            uid=uid,
            keys=[*keys, bytes(16), bytes(16)],
            sdm=SdmSettings(picc_offset, mac_offset),
            file2=file,
        )

    @classmethod
    def blank(cls, uid: bytes) -> Ntag424Tag:
        """A tag as it comes from the factory."""
        return cls(uid=uid)

    def ndef_file(self) -> bytes:
        if self.sdm is None:
            return self.file2
        self.counter += 1
        meta, file_key = self.keys[self.sdm.meta_key_no], self.keys[self.sdm.file_key_no]
        padding = os.urandom(5)  # the tag's random padding: no two messages look alike
        message = make_sun(meta, file_key, self.uid, self.counter, padding)
        self.last_url = sun_url(message)
        mirrored = bytearray(self.file2)
        picc, mac = self.sdm.picc_offset, self.sdm.mac_offset
        mirrored[picc : picc + 32] = message.picc_data.hex().upper().encode("ascii")
        mirrored[mac : mac + 16] = message.sdmmac.hex().upper().encode("ascii")
        return bytes(mirrored)

    def last_message(self) -> SunMessage | None:
        from pitill.card.sun import sun_from_url

        return sun_from_url(self.last_url) if self.last_url else None

    def reset(self) -> None:
        super().reset()
        self._auth, self._session = None, None  # a new activation ends any session

    def _apdu(self, apdu: bytes) -> bytes:
        if apdu[:1] == b"\x90" and len(apdu) >= 5:
            data = apdu[5 : 5 + apdu[4]]
            return self._native(apdu[1], data)
        if apdu[1:2] == b"\xd6" and self._selected == NDEF_FILE:  # UPDATE BINARY
            if self.sdm is not None:
                return b"\x69\x82"  # security status not satisfied: write needs key 0 now
            offset, data = (apdu[2] << 8) | apdu[3], apdu[5 : 5 + apdu[4]]
            content = bytearray(self.file2.ljust(offset + len(data), b"\x00"))
            content[offset : offset + len(data)] = data
            self.file2 = self._ndef = bytes(content)
            return _SW_OK
        return super()._apdu(apdu)

    def _native(self, ins: int, data: bytes) -> bytes:
        """NTAG 424 DNA native commands wrapped in ISO 7816 (CLA 90, status 91xx)."""
        if ins == 0x71 and data:  # AuthenticateEV2First, part 1
            rndb = os.urandom(16)
            self._auth, self._session = (data[0], rndb), None
            return cbc_zero_iv(self.keys[data[0]], rndb) + b"\x91\xaf"
        if ins == 0xAF and self._auth is not None and len(data) == 32:  # part 2
            key_no, rndb = self._auth
            self._auth = None
            plain = cbc_zero_iv(self.keys[key_no], data, decrypt=True)
            if plain[16:] != rotl(rndb):
                return _AUTH_ERROR
            rnda, ti = plain[:16], os.urandom(4)
            self._session = session_for(self.keys[key_no], rnda, rndb, ti)
            self._session_key_no = key_no
            answer = ti + rotl(rnda) + bytes(12)
            return cbc_zero_iv(self.keys[key_no], answer) + b"\x91\x00"
        session = self._session
        if session is None or not data:
            return _AUTH_ERROR
        if ins == 0xC4:  # ChangeKey
            key_no = data[0]
            key_data = session.tag_check_command(ins, data[:1], data[1:])
            if key_data is None or len(key_data) < 17 or key_no >= len(self.keys):
                return _INTEGRITY_ERROR
            if key_no == self._session_key_no:
                self.keys[key_no] = key_data[:16]
                self._session = None  # the session's own key changed: it ends, no MAC
                return b"\x91\x00"
            new = bytes(a ^ b for a, b in zip(key_data[:16], self.keys[key_no], strict=True))
            if key_data[17:21] != jamcrc32(new):
                return _INTEGRITY_ERROR
            self.keys[key_no] = new
            return session.tag_response_mac() + b"\x91\x00"
        if ins == 0x5F and data[0] == 0x02:  # ChangeFileSettings of the NDEF file
            settings = session.tag_check_command(ins, data[:1], data[1:])
            if settings is None:
                return _INTEGRITY_ERROR
            try:
                self.sdm = SdmSettings.parse(settings)
            except SunError:
                return b"\x91\x9e"  # parameter error
            return session.tag_response_mac() + b"\x91\x00"
        return b"\x91\x1c"  # illegal command code


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
