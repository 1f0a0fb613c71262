"""Reading a small text file a user names (a config, a script, a timeline): one line per problem.

A missing file, a directory, a FIFO or device, a file too large, no permission, a byte-order
mark or bytes that are not UTF-8 each raise the caller's PitillError subclass with a message
naming the file and what to do; a FIFO or /dev/zero never hangs the command.
"""

from __future__ import annotations

import codecs
import os
import stat
from pathlib import Path

from pitill.errors import PitillError

MAX_TEXT_BYTES = 1 << 20  # a config, script or timeline is a few kB


def path_text(path: Path) -> str:
    """The path for a message: as is, or quoted when it holds a newline or other control."""
    text = str(path)
    return text if text.isprintable() else repr(text)


def read_text(
    path: Path,
    what: str,
    error: type[PitillError],
    *,
    missing_hint: str = "check the path",
    max_bytes: int = MAX_TEXT_BYTES,
) -> str:
    """The UTF-8 text of `path`; else `error` naming "`what` `path`", the problem and a fix."""
    where = f"{what} {path_text(path)}"
    try:
        # O_NONBLOCK: a FIFO given by mistake must not hang; fstat then tells what it is.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{where} does not exist; {missing_hint}") from None
    except IsADirectoryError:
        raise error(_directory(where)) from None
    except PermissionError:
        raise error(
            f"{where} cannot be read by user {_user()} (permission denied); run as a user "
            "that may read it (the installed one: sudo -u pitill pitill ...) or change its "
            "owner or mode"
        ) from None
    except NotADirectoryError:
        raise error(f"{where}: a part of the path is a file, not a directory") from None
    except OSError as exc:
        raise error(f"{where} cannot be opened: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise error(_directory(where))
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{where} is not a regular file; pass a text file")
        chunks: list[bytes] = []
        size = 0
        while size <= max_bytes:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise error(f"{where} cannot be read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if size > max_bytes:
        raise error(f"{where} is larger than {max_bytes // 1024} KiB; pass the right file")
    return _decode(b"".join(chunks), where, error)


def _directory(where: str) -> str:
    return f"{where} is a directory; pass the file in it"


def _decode(data: bytes, where: str, error: type[PitillError]) -> str:
    if data.startswith(codecs.BOM_UTF8):
        raise error(f"{where} starts with a byte-order mark (BOM); save it as UTF-8 without BOM")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise error(f"{where} is UTF-16 (it starts with a byte-order mark); save it as UTF-8")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise error(
            f"{where} is not UTF-8 text (byte 0x{data[exc.start]:02X} on line {line}); "
            "save it as UTF-8"
        ) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise error(f"{where} is binary, not text (a NUL byte on line {line})")
    return text


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return str(os.geteuid())
