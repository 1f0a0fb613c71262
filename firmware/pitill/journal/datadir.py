"""The data directory: one terminal at a time, and no journal started over unnoticed.

`pitill run`, `pitill sim` and `pitill drill` hold DataDirLock for as long as they run: an
exclusive flock on DATA_DIR/pitill.lock, which holds the holder's PID. The kernel drops the lock
when the process dies (kill -9, power loss), so a stale file never blocks a restart; the file
itself stays (deleting a lock file races with the next locker). Readers (`journal list`,
`report`) take no lock: SQLite's WAL lets them read while the terminal writes.

check_journal_present refuses to start a new, empty journal where sales were evidently written
before (the lock file says a journal was opened here; the seal key, a WAL, a moved-aside journal
or remembered host addresses are left over):
the operator must say so with `pitill journal init --force`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType

from pitill.errors import StorageError
from pitill.journal.seal import KEY_FILE_NAME
from pitill.journal.store import JOURNAL_FILE_NAME

LOCK_FILE_NAME = "pitill.lock"
# Left in a data dir by a terminal that has run there. resolved-hosts.json is the name owned by
# upstream/resolver_cache.py (spelled here: the journal does not import upstream; a test checks).
EVIDENCE_NAMES = (KEY_FILE_NAME, f"{JOURNAL_FILE_NAME}-wal", "resolved-hosts.json")
JOURNAL_OPENED = "journal-opened"  # the lock file's history: a terminal opened a journal here
MOVED_ASIDE_GLOB = f"{JOURNAL_FILE_NAME}.corrupt-*"


class DataDirBusy(StorageError):
    """Another process holds the data directory's lock."""


class JournalMissing(StorageError):
    """The journal is gone from a data directory where a terminal has written sales."""


class DataDirLock:
    """An exclusive flock on DATA_DIR/pitill.lock; `release()` (or the process's death) frees it."""

    def __init__(self, data_dir: Path, fd: int) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_FILE_NAME
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, data_dir: Path) -> DataDirLock:
        """Lock `data_dir` (created owner-only when missing) or raise DataDirBusy / StorageError.

        A refused caller writes nothing: the lock file is only truncated once the lock is ours.
        """
        path = data_dir / LOCK_FILE_NAME
        try:
            data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StorageError(
                f"data directory {data_dir}: cannot create its lock file {path} ({exc.strerror}); "
                "check --data-dir and that this user may write there"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise DataDirBusy(
                f"data directory {data_dir} is in use by another pitill (PID {holder}); stop it "
                "first, or give this one its own --data-dir"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise StorageError(
                f"data directory {data_dir}: cannot lock {path} ({exc.strerror}); put the data "
                "directory on a local file system"
            ) from exc
        try:
            opened_before = JOURNAL_OPENED in _read_lines(fd)
            history = f"{JOURNAL_OPENED}\n" if opened_before else ""
            _overwrite(fd, f"{os.getpid()}\n{history}")
        except OSError as exc:
            os.close(fd)
            raise StorageError(f"cannot write the lock file {path}: {exc.strerror}") from exc
        return cls(data_dir, fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Unlock (the PID stays in the file; harmless: only the flock counts). Idempotent."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> DataDirLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_lines(fd: int) -> list[str]:
    return os.pread(fd, 256, 0).decode("ascii", "replace").split()


def _overwrite(fd: int, text: str) -> None:
    # Write first, then cut: a refused starter reading the file meanwhile sees a PID, never
    # the empty file that truncating first left for a moment ("PID unknown").
    data = text.encode()
    os.pwrite(fd, data, 0)
    os.ftruncate(fd, len(data))


def _read_pid(fd: int) -> str:
    try:
        lines = _read_lines(fd)
    except OSError:
        return "unknown"
    return lines[0] if lines and lines[0].isdigit() else "unknown"


def note_journal_opened(data_dir: Path) -> None:
    """Remember in the lock file that a terminal opened a journal here (evidence for later:
    an online-only shop has no seal key). Best effort: the start does not depend on it."""
    path = data_dir / LOCK_FILE_NAME
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            lines = _read_lines(fd)
            if JOURNAL_OPENED not in lines:
                pid = lines[0] if lines and lines[0].isdigit() else str(os.getpid())
                _overwrite(fd, f"{pid}\n{JOURNAL_OPENED}\n")
        finally:
            os.close(fd)


def _lock_history(data_dir: Path) -> bool:
    try:
        fd = os.open(data_dir / LOCK_FILE_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return JOURNAL_OPENED in _read_lines(fd)
    except OSError:
        return False
    finally:
        os.close(fd)


def moved_aside_files(data_dir: Path) -> list[Path]:
    """Journals moved aside as damaged (journal.sqlite3.corrupt-<n>, not their -wal/-shm)."""
    return sorted(
        (p for p in data_dir.glob(MOVED_ASIDE_GLOB) if not p.name.endswith(("-wal", "-shm"))),
        key=lambda p: (len(p.name), p.name),
    )


def earlier_sales_evidence(data_dir: Path) -> list[Path]:
    """Files that show a terminal wrote sales in `data_dir` before (empty for a new one)."""
    found = [data_dir / name for name in EVIDENCE_NAMES if (data_dir / name).is_file()]
    if _lock_history(data_dir):
        found.append(data_dir / LOCK_FILE_NAME)
    return found + moved_aside_files(data_dir)


def check_journal_present(data_dir: Path) -> None:
    """Raise JournalMissing when the journal is missing but a terminal evidently ran here.

    Starting an empty journal there would silently drop the offline sales still owed to the
    host and restart the STANs: the operator decides, with `pitill journal init --force`.
    """
    journal = data_dir / JOURNAL_FILE_NAME
    if journal.exists():
        return
    evidence = earlier_sales_evidence(data_dir)
    if evidence:
        names = ", ".join(
            f"{p.name} (a journal was opened here before)" if p.name == LOCK_FILE_NAME else p.name
            for p in evidence
        )
        raise JournalMissing(
            f"journal {journal} is missing, but {data_dir} holds {names} from a terminal that "
            "wrote sales there; refusing to start an empty journal. Put the journal back (or "
            f"salvage it: `pitill journal salvage --data-dir {data_dir} FILE`), or start a new "
            f"one on purpose with `pitill journal init --force --data-dir {data_dir}`"
        )
