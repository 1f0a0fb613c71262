"""NTAG 424 DNA secure messaging (AES, "EV2"): authenticate, then MAC or encrypt commands.

What `pitill card enroll` (pitill/enroll.py) and the emulated tag (sim/pn532_emulator.py) speak:
AuthenticateEV2First, the CommMode.MAC / CommMode.FULL wrapping of commands and responses (NXP
NT4H2421Gx sections 9.1.7-9.1.11, AN12196 chapters 5-7), ChangeKey data and the SDM settings of
ChangeFileSettings. Pure functions over bytes; the random RndA is an argument.

- Authenticate: the tag sends E(K, RndB); the reader answers E(K, RndA || RndB rotated left by
  one byte); the tag answers E(K, TI || RndA rotated || PDcap2 || PCDcap2). Session keys are
  CMACs under K of SV1 (ENC) and SV2 (MAC), which mix RndA and RndB.
- MAC mode: MACt (bytes 1, 3 .. 15 of a CMAC) over Cmd || CmdCtr || TI || header || data.
- FULL mode: data padded (80 00..) and AES-CBC encrypted with IV = E(KSesAuthENC, A55A || TI ||
  CmdCtr || 0..), then MACed; a response's IV starts 5AA5 and uses the counter after the command.
"""

from __future__ import annotations

import hmac
import zlib
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from pitill.card.sun import aes_cmac
from pitill.errors import SunError

BLOCK = 16
_ZERO_IV = bytes(BLOCK)


def _cbc(key: bytes, iv: bytes, data: bytes, *, decrypt: bool = False) -> bytes:
    cipher = Cipher(algorithms.AES(key), modes.CBC(iv))
    context = cipher.decryptor() if decrypt else cipher.encryptor()
    return context.update(data) + context.finalize()


def cbc_zero_iv(key: bytes, data: bytes, *, decrypt: bool = False) -> bytes:
    """AES-CBC with a zero IV, as authentication uses it."""
    return _cbc(key, _ZERO_IV, data, decrypt=decrypt)


def rotl(data: bytes) -> bytes:
    """Rotated left by one byte (RndA', RndB')."""
    return data[1:] + data[:1]


def _rotl(data: bytes) -> bytes:
    return data[1:] + data[:1]


def mact(key: bytes, data: bytes) -> bytes:
    """The 8-byte truncated MAC of NTAG 424 DNA: the odd-numbered bytes of AES-CMAC."""
    return aes_cmac(key, data)[1::2]


def pad(data: bytes) -> bytes:
    """ISO/IEC 9797-1 padding method 2, always at least one byte (80 00 .. to a block)."""
    data += b"\x80"
    return data + bytes(-len(data) % BLOCK)


def unpad(data: bytes) -> bytes:
    end = data.rstrip(b"\x00")
    if not end.endswith(b"\x80"):
        raise SunError("decrypted response data is not padded 80 00..: wrong session key?")
    return end[:-1]


def authenticate_part1(key: bytes, encrypted_rndb: bytes, rnda: bytes) -> tuple[bytes, bytes]:
    """(the reader's answer E(K, RndA || RndB'), RndB) to the tag's first response."""
    if len(encrypted_rndb) != BLOCK or len(rnda) != BLOCK:
        raise SunError("AuthenticateEV2First part 1 takes 16 bytes from the tag and a 16-byte RndA")
    rndb = _cbc(key, _ZERO_IV, encrypted_rndb, decrypt=True)
    return _cbc(key, _ZERO_IV, rnda + _rotl(rndb)), rndb


@dataclass
class Session:
    """An authenticated session: its transaction identifier, keys and command counter."""

    ti: bytes
    k_enc: bytes
    k_mac: bytes
    cmd_counter: int = 0

    def _iv(self, label: bytes, counter: int) -> bytes:
        block = label + self.ti + counter.to_bytes(2, "little") + bytes(8)
        encryptor = Cipher(algorithms.AES(self.k_enc), modes.ECB()).encryptor()
        return encryptor.update(block) + encryptor.finalize()

    def mac_command(self, cmd: int, header: bytes = b"", data: bytes = b"") -> bytes:
        """CommMode.MAC: the command's header and data followed by their MACt."""
        body = header + data
        counter = self.cmd_counter.to_bytes(2, "little")
        return body + mact(self.k_mac, bytes([cmd]) + counter + self.ti + body)

    def full_command(self, cmd: int, header: bytes = b"", data: bytes = b"") -> bytes:
        """CommMode.FULL: the header in clear, the data encrypted, then the MACt of both."""
        encrypted = _cbc(self.k_enc, self._iv(b"\xa5\x5a", self.cmd_counter), pad(data))
        return self.mac_command(cmd, header, encrypted) if data else self.mac_command(cmd, header)

    def check_response(self, status: int, data_and_mac: bytes) -> bytes:
        """The response data after its MACt checks out; counts the command. SunError if not."""
        self.cmd_counter += 1
        data, mac = data_and_mac[:-8], data_and_mac[-8:]
        counter = self.cmd_counter.to_bytes(2, "little")
        expected = mact(self.k_mac, bytes([status]) + counter + self.ti + data)
        if len(data_and_mac) < 8 or not hmac.compare_digest(expected, mac):
            raise SunError("the tag's response MAC does not match: not the session's tag?")
        return data

    def tag_check_command(self, cmd: int, header: bytes, data_and_mac: bytes) -> bytes | None:
        """The tag's side of a FULL command: its decrypted data, or None when the MAC is wrong."""
        data, mac = data_and_mac[:-8], data_and_mac[-8:]
        if len(data_and_mac) < 8 or not hmac.compare_digest(
            self.mac_command(cmd, header, data)[-8:], mac
        ):
            return None
        if not data:
            return b""
        plain = _cbc(self.k_enc, self._iv(b"\xa5\x5a", self.cmd_counter), data, decrypt=True)
        try:
            return unpad(plain)
        except SunError:
            return None

    def tag_response_mac(self, data: bytes = b"") -> bytes:
        """The tag's side of a response: counts the command, returns data and its MACt."""
        self.cmd_counter += 1
        counter = self.cmd_counter.to_bytes(2, "little")
        return data + mact(self.k_mac, b"\x00" + counter + self.ti + data)

    def decrypt_response(self, data: bytes) -> bytes:
        """CommMode.FULL response data (after check_response), decrypted and unpadded."""
        if not data or len(data) % BLOCK:
            raise SunError(f"encrypted response data must be whole blocks, got {len(data)} bytes")
        return unpad(_cbc(self.k_enc, self._iv(b"\x5a\xa5", self.cmd_counter), data, decrypt=True))


def authenticate_part2(key: bytes, rnda: bytes, rndb: bytes, encrypted: bytes) -> Session:
    """The session from the tag's second response; SunError when the tag did not prove K."""
    if len(encrypted) != 2 * BLOCK:
        raise SunError(f"AuthenticateEV2First part 2 takes 32 bytes, got {len(encrypted)}")
    plain = _cbc(key, _ZERO_IV, encrypted, decrypt=True)
    ti, rnda_rotated = plain[:4], plain[4:20]
    if not hmac.compare_digest(rnda_rotated, _rotl(rnda)):
        raise SunError("the tag did not return our RndA: it does not hold this key")
    return session_for(key, rnda, rndb, ti)


def session_for(key: bytes, rnda: bytes, rndb: bytes, ti: bytes) -> Session:
    """The session keys both sides derive once RndA and RndB are exchanged (SV1, SV2)."""
    mixed = rnda[0:2] + bytes(a ^ b for a, b in zip(rnda[2:8], rndb[0:6], strict=True))
    tail = mixed + rndb[6:16] + rnda[8:16]
    k_enc = aes_cmac(key, bytes.fromhex("A55A00010080") + tail)
    k_mac = aes_cmac(key, bytes.fromhex("5AA500010080") + tail)
    return Session(ti=ti, k_enc=k_enc, k_mac=k_mac)


def jamcrc32(data: bytes) -> bytes:
    """The CRC32 NTAG 424 DNA appends to a changed key: zlib's CRC32 inverted, LSB first."""
    return (zlib.crc32(data) ^ 0xFFFFFFFF).to_bytes(4, "little")


def change_key_data(
    key_no: int, new_key: bytes, version: int, old_key: bytes | None = None, auth_key_no: int = 0
) -> bytes:
    """The plain data of ChangeKey (C4), to send in CommMode.FULL with header KeyNo.

    The key of the session itself (auth_key_no): NewKey || KeyVer. Any other key: (NewKey XOR
    OldKey) || KeyVer || CRC32(NewKey), the CRC as the tag computes it (JAMCRC, LSB first).
    """
    if len(new_key) != BLOCK:
        raise SunError(f"a new AES key is 16 bytes, got {len(new_key)}")
    if key_no == auth_key_no:
        return new_key + bytes([version])
    if old_key is None or len(old_key) != BLOCK:
        raise SunError(f"changing key {key_no} needs its old 16-byte key")
    xored = bytes(a ^ b for a, b in zip(new_key, old_key, strict=True))
    return xored + bytes([version]) + jamcrc32(new_key)


# --- Secure Dynamic Messaging settings (ChangeFileSettings, 5F) ---------------------------------

FILE_OPTION_SDM = 0x40  # bit 6 of FileOption: SDM and mirroring on (comm mode plain: bits 1-0 = 0)
SDM_OPTIONS_UID_CTR_ASCII = 0xC1  # UID mirrored, SDMReadCtr mirrored, mirrors in ASCII hex
NO_KEY = 0xF  # "no access" in an access-right nibble; 0xE is "free"


@dataclass(frozen=True)
class SdmSettings:
    """What a pitill card's NDEF file is set to: readable by all, changed only with key 0, and
    mirroring encrypted PICCData (meta read key) and an SDMMAC (file read key) at two offsets."""

    picc_offset: int  # where the 32 hex digits of PICCData go, from the file's first byte
    mac_offset: int  # where the 16 hex digits of the SDMMAC go (MAC input is empty)
    meta_key_no: int = 1
    file_key_no: int = 2
    counter_key_no: int = 1  # who may read the counter with GetFileCounters

    def data(self) -> bytes:
        """The plain data of ChangeFileSettings for file 2 (sent in CommMode.FULL)."""
        access = bytes((0x00, 0xE0))  # RW and Change: key 0; Read: free; Write: key 0
        sdm_access = bytes((0xF0 | self.counter_key_no, self.meta_key_no << 4 | self.file_key_no))
        offsets = (self.picc_offset, self.mac_offset, self.mac_offset)  # MAC input = MAC offset
        return (
            bytes((FILE_OPTION_SDM,))
            + access
            + bytes((SDM_OPTIONS_UID_CTR_ASCII,))
            + sdm_access
            + b"".join(o.to_bytes(3, "little") for o in offsets)
        )

    @classmethod
    def parse(cls, data: bytes) -> SdmSettings | None:
        """The settings in ChangeFileSettings data; None with SDM off; SunError if unsupported."""
        if not data or not data[0] & FILE_OPTION_SDM:
            return None
        if len(data) != 15 or data[3] != SDM_OPTIONS_UID_CTR_ASCII:
            raise SunError("only SDM with UID and counter mirrored in ASCII is emulated here")
        picc, mac_input, mac = (int.from_bytes(data[i : i + 3], "little") for i in (6, 9, 12))
        if mac_input != mac:
            raise SunError("only an empty SDMMAC input (input offset = MAC offset) is emulated")
        return cls(picc, mac, data[5] >> 4, data[5] & 0xF, data[4] & 0xF)
