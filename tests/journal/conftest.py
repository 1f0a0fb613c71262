"""Fixtures for the journal tests: journals on real SQLite files in tmp_path."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from pitill.journal.seal import KEY_FILE_NAME, Sealer
from pitill.journal.store import Journal

# --import-mode=importlib puts no test directory on sys.path; the plain helpers of this
# directory (journal_helpers.py) are imported by name from here and from the test modules.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from journal_helpers import OpenJournal, StepClock


@pytest.fixture
def open_journal(tmp_path: Path) -> Iterator[OpenJournal]:
    """Open a journal in tmp_path/data (again after a close, as a restart does)."""
    opened: list[Journal] = []

    def _open(data_dir: Path | None = None, clock: Callable[[], datetime] | None = None) -> Journal:
        data_dir = data_dir or tmp_path / "data"
        sealer = Sealer.load_or_create(data_dir / KEY_FILE_NAME)
        journal = Journal.open(data_dir, sealer, clock=clock or StepClock())
        opened.append(journal)
        return journal

    yield _open
    for journal in opened:
        journal.close()


@pytest.fixture
def journal(open_journal: OpenJournal) -> Journal:
    return open_journal()
