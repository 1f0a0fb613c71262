"""The one error tree of pitill: every error we raise on purpose is a PitillError.

Each class also inherits the fitting built-in, so callers that only know Python's own
exceptions still catch them. Messages say what was wrong, with which value, and what to do.
"""

from __future__ import annotations


class PitillError(Exception):
    """Base of every error pitill raises on purpose."""


class ConfigError(PitillError, ValueError):
    """A configuration key is unknown or its value is bad; the message names the key.

    `problems` holds every problem found (one line each, for `pitill doctor`); the message is
    the first, with a count of the others.
    """

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems or (message,)

    @classmethod
    def of(cls, problems: list[str]) -> ConfigError:
        """One error for all `problems`: the first, and how many more `pitill doctor` lists."""
        if not problems:
            return cls("config: invalid")
        first, rest = problems[0], len(problems) - 1
        more = f" (and {rest} more; `pitill doctor --config FILE` lists each)" if rest else ""
        return cls(first + more, tuple(problems))


class UsageError(PitillError, ValueError):
    """A command-line value is bad; the message names the option, the value and what to give."""


class TransitionError(PitillError, RuntimeError):
    """The core got an event that its transition table does not allow in the current state."""


class CardDataError(PitillError, ValueError):
    """Track data that cannot be parsed (sentinels, separators, digits, LRC)."""


class FramingError(PitillError, ValueError):
    """A reader frame that is malformed; the frame is dropped and counted, never fatal."""


class UpstreamError(PitillError, ConnectionError):
    """The authorization host could not be reached or answered garbage."""


class UpstreamTimeout(UpstreamError, TimeoutError):
    """A request was sent but no answer came in time: its outcome is unknown."""


class ProtocolError(UpstreamError):
    """An ISO 8583 message that cannot be packed or unpacked."""


class StorageError(PitillError, OSError):
    """The journal could not make a write durable (disk full, I/O error, corruption)."""


class DataDirError(PitillError, OSError):
    """The data directory (or a file in it) cannot be created, read or written."""


class SealError(PitillError, ValueError):
    """Sealed card data cannot be opened: the key is missing or wrong, or the data was altered."""


class ScriptError(PitillError, ValueError):
    """A simulator script line that cannot be understood; the message gives the line number."""


class HardwareError(PitillError, OSError):
    """A configured device is absent or unusable; the message says what to check."""


class PrinterError(PitillError, OSError):
    """The receipt printer said it cannot print (out of paper, offline): the sale stands."""


class SunError(PitillError, ValueError):
    """An NTAG 424 DNA SUN message that does not decrypt or whose SDMMAC does not match."""


class ReentryError(PitillError, AssertionError):
    """The shell tried to step the core while another step's effects were still running (a bug:
    an effect must enqueue the event it has to report, never take it itself)."""
