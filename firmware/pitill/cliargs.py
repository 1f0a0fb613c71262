"""What every `pitill` subcommand shares for its arguments: one line for each bad input.

`OneLineParser` prints an argparse error as one line (not the usage block); `number(bound)` is
the `type=` of every numeric option, with its range written as the config writes it (a
pitill.config.Bound), so NaN, infinity and out-of-range values stop at the command line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

from pitill.config import Bound
from pitill.upstream.wireformat import BITMAP_ENCODINGS, DEFAULT_WIRE, LENGTH_PREFIXES, WireFormat

if TYPE_CHECKING:
    from _typeshed import SupportsWrite


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: what is wrong, and where help is."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}; see `{self.prog} --help`\n")

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        # argparse drops write errors; a closed pipe must reach pitill.cli.main (exit 141).
        if message:
            (file or sys.stderr).write(message)


def number(bound: Bound, *, integer: bool = False) -> Callable[[str], float]:
    """An argparse `type=`: a finite number within `bound` (a whole one when `integer`)."""

    def parse(text: str) -> float:
        kind = "a whole number" if integer else "a number"
        try:
            value: float = int(text, 10) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {kind}; give {bound.text()}"
            ) from None
        if not bound.allows(value):
            raise argparse.ArgumentTypeError(f"{text!r} is outside {bound.text()}")
        return value

    parse.__name__ = "whole number" if integer else "number"
    return parse


def add_wire_options(parser: argparse.ArgumentParser) -> None:
    """--bitmap and --length-prefix of a host (`pitill acquirer`, `pitill host serve`): the same
    choices and defaults as a terminal's [upstream] bitmap and length_prefix."""
    wire = parser.add_argument_group("wire format (as the terminals' [upstream] section)")
    wire.add_argument(
        "--bitmap",
        choices=BITMAP_ENCODINGS,
        default=DEFAULT_WIRE.bitmap,
        help="bitmap encoding: ascii (16 hex characters, the default) or binary (8 bytes)",
    )
    wire.add_argument(
        "--length-prefix",
        choices=LENGTH_PREFIXES,
        default=DEFAULT_WIRE.length_prefix,
        help="before each message: 2-byte-binary (big-endian, the default), 4-digit-ascii or "
        "4-byte-binary",
    )


def wire_of(args: argparse.Namespace) -> WireFormat:
    """The WireFormat that add_wire_options' arguments name."""
    return WireFormat(args.bitmap, args.length_prefix)
