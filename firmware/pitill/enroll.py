"""`pitill card enroll`: personalise a blank NTAG 424 DNA on the PN532 for the program.

Through nfcpy (the reader's own driver, on the configured port), on the tag on the reader:

1. select the NDEF application and write the NDEF file: a URL with room for the SUN message;
2. authenticate with the factory key 0 (AuthenticateEV2First);
3. turn on Secure Dynamic Messaging for the NDEF file (ChangeFileSettings, CommMode.FULL):
   UID and counter mirrored, encrypted with key 1, MACed with key 2; the file readable by all
   and writable only with key 0 from now on;
4. set key 2 (the card's SDMFileReadKey, diversified from the program master key, AN10922),
   key 1 (the program's SDM meta read key) and last key 0 (the application master key,
   diversified too): the tag is locked to the program.

Each step is printed. The master key is needed here and on the host, never on a terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Callable
from typing import Any

from pitill.card.ntag424_ev2 import (
    SdmSettings,
    authenticate_part1,
    authenticate_part2,
    change_key_data,
)
from pitill.card.sun import card_app_key, card_file_key, sun_template
from pitill.errors import HardwareError, PitillError, SunError

FACTORY_KEY = bytes(16)
NDEF_AID = bytes.fromhex("D2760000850101")
KEY_VERSION = 1
_CHUNK = 0x70  # UPDATE BINARY data per command (under the tag's MLc)


class EnrollError(PitillError, RuntimeError):
    """The tag could not be personalised; the message says at which step and what to do."""


def _open_default(port: str) -> Any:
    from pitill.drivers.pn532_reader import open_nfcpy

    return open_nfcpy(port)


def enroll(
    port: str,
    master_key: bytes,
    meta_key: bytes,
    *,
    say: Callable[[str], None] = print,
    open_frontend: Callable[[str], Any] = _open_default,
) -> str:
    """Personalise the tag on the reader at `port`; its UID in hex."""
    try:
        frontend = open_frontend(port)
    except ImportError:
        raise EnrollError("card enroll needs nfcpy: pip install 'pitill[nfc]'") from None
    except Exception as exc:
        raise HardwareError(f"no PN532 answers on {port}: {exc}; check the reader") from None
    try:
        return _enroll(frontend, master_key, meta_key, say)
    finally:
        with contextlib.suppress(Exception):
            frontend.close()


def _enroll(frontend: Any, master_key: bytes, meta_key: bytes, say: Callable[[str], None]) -> str:
    import nfc.clf
    import nfc.tag

    target = frontend.sense(nfc.clf.RemoteTarget("106A"))
    if target is None:
        raise EnrollError("no tag on the reader: hold a blank NTAG 424 DNA on it and run again")
    uid = bytes(target.sdd_res)
    uid_hex = uid.hex().upper()
    if len(uid) != 7 or not (target.sel_res and target.sel_res[0] & 0x20):
        raise EnrollError(f"tag {uid_hex} is not an NTAG 424 DNA (a 7-byte UID, ISO 14443-4)")
    tag = nfc.tag.activate(frontend, target)
    if tag is None:
        raise EnrollError(f"tag {uid_hex} did not answer its activation: hold it still, again")
    say(f"tag {uid_hex}: an ISO 14443-4 tag")

    def apdu(data: bytes, what: str, ok: bytes = b"\x91\x00") -> bytes:
        try:
            answer = bytes(tag.transceive(data))
        except Exception as exc:  # nfcpy's communication and tag errors
            raise EnrollError(f"{what}: the tag stopped answering ({exc}); hold it still") from None
        if answer[-2:] != ok:
            raise EnrollError(
                f"{what}: the tag answered {answer[-2:].hex().upper()}; is it blank (factory "
                "keys)? A tag enrolled before is locked to its program"
            )
        return answer[:-2]

    apdu(b"\x00\xa4\x04\x00\x07" + NDEF_AID + b"\x00", "select the NDEF application", b"\x90\x00")
    apdu(b"\x00\xa4\x00\x0c\x02\xe1\x04", "select the NDEF file", b"\x90\x00")
    file, picc_offset, mac_offset = sun_template()
    for offset in range(0, len(file), _CHUNK):
        chunk = file[offset : offset + _CHUNK]
        header = b"\x00\xd6" + offset.to_bytes(2, "big") + bytes([len(chunk)])
        apdu(header + chunk, "write the NDEF file", b"\x90\x00")
    say(f"wrote the NDEF file: {len(file)} bytes, a URL with room for the SUN message")

    rnda = os.urandom(16)
    first = apdu(b"\x90\x71\x00\x00\x02\x00\x00\x00", "authenticate with key 0", b"\x91\xaf")
    try:
        answer, rndb = authenticate_part1(FACTORY_KEY, first, rnda)
        second = apdu(b"\x90\xaf\x00\x00\x20" + answer + b"\x00", "authenticate with key 0")
        session = authenticate_part2(FACTORY_KEY, rnda, rndb, second)
    except SunError as exc:
        raise EnrollError(f"authenticate with the factory key 0: {exc}; not a blank tag") from None
    say("authenticated with the factory key 0")

    def full(cmd: int, header: bytes, data: bytes, what: str, *, mac: bool = True) -> None:
        body = session.full_command(cmd, header, data)
        answer = apdu(bytes((0x90, cmd, 0, 0, len(body))) + body + b"\x00", what)
        if mac:
            try:
                session.check_response(0x00, answer)
            except SunError as exc:
                raise EnrollError(f"{what}: {exc}") from None

    settings = SdmSettings(picc_offset, mac_offset)
    full(0x5F, b"\x02", settings.data(), "turn on SUN for the NDEF file")
    say(
        f"SUN on: PICCData at byte {picc_offset} (key {settings.meta_key_no}), SDMMAC at byte "
        f"{mac_offset} (key {settings.file_key_no}); NDEF file read-only without key 0"
    )
    file_key = card_file_key(master_key, uid)
    data = change_key_data(2, file_key, KEY_VERSION, old_key=FACTORY_KEY)
    full(0xC4, b"\x02", data, "set key 2 (SDM file read key)")
    say("set key 2: the card's SDM file read key (diversified from the master key, AN10922)")
    data = change_key_data(1, meta_key, KEY_VERSION, old_key=FACTORY_KEY)
    full(0xC4, b"\x01", data, "set key 1 (SDM meta read key)")
    say("set key 1: the program's SDM meta read key")
    data = change_key_data(0, card_app_key(master_key, uid), KEY_VERSION)
    full(0xC4, b"\x00", data, "set key 0 (application master key)", mac=False)
    say("set key 0: the card's application master key (diversified): the tag is locked")
    return uid_hex


def _read_key(path: str, what: str, holds: str) -> bytes:
    from pitill.drivers.pn532_reader import load_meta_key

    try:
        key = load_meta_key(path, what, holds)
    except HardwareError as exc:
        raise EnrollError(str(exc)) from None
    assert key is not None  # path is required by the parser
    return key


def _enroll_command(args: argparse.Namespace) -> int:
    master_key = _read_key(args.master_key_file, "--master-key-file", "the program master key")
    meta_key = _read_key(args.meta_key_file, "--meta-key-file", "the SDM meta read key")
    uid = enroll(args.port, master_key, meta_key)
    print(f"enrolled tag {uid}: its taps now read as tier sun")
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    card = commands.add_parser(
        "card",
        help="NFC cards of a closed-loop program (NTAG 424 DNA)",
        description="NFC cards of a closed-loop program; see docs/cards.md.",
    )
    actions = card.add_subparsers(dest="card_command", metavar="ACTION", required=True)
    enroll_parser = actions.add_parser(
        "enroll",
        help="personalise a blank NTAG 424 DNA on the PN532 for the program",
        description=(
            "Personalise the blank NTAG 424 DNA held on the PN532: write the NDEF URL, turn on "
            "Secure Unique NFC (SUN), set its keys from the program's (key 2 diversified from "
            "the master key, key 1 the meta read key, key 0 diversified: locked), printing each "
            "step. Key files hold 32 hex digits. The master key belongs on the host and on the "
            "enrolling machine only, never on a terminal."
        ),
        epilog="example:\n  pitill card enroll --port /dev/ttyUSB0 --master-key-file master.key "
        "--meta-key-file sun-meta.key",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    enroll_parser.add_argument("--port", required=True, help="the PN532's serial port (HSU)")
    enroll_parser.add_argument("--master-key-file", required=True, help="the program master key")
    enroll_parser.add_argument("--meta-key-file", required=True, help="the SDM meta read key")
    enroll_parser.set_defaults(handler=_enroll_command)
