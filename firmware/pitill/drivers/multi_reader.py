"""Several card readers as one: each hands its cards to the same sink (the simulator's stripe
reader and PN532 side by side; a Pi with a stripe reader and an NFC board)."""

from __future__ import annotations

from collections.abc import Sequence

from pitill.drivers.protocols import CardReader, CardSink


class MultiReader:
    def __init__(self, readers: Sequence[CardReader]) -> None:
        self.readers = tuple(readers)

    def start(self, sink: CardSink) -> None:
        for reader in self.readers:
            reader.start(sink)

    def close(self) -> None:
        for reader in reversed(self.readers):
            reader.close()
