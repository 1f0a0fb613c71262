"""A real PostgreSQL server for the host's tests: Debian's binaries, started by the test in a
temporary directory as the unprivileged `postgres` user, listening only on a Unix socket there.

`pg_cluster()` gives the base URL; `fresh_database(base)` a new empty database on it. Without
the binaries the tests skip locally and fail under CI=true (.ci/run installs postgresql).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PORT = 5433


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _as_postgres(*command: str) -> list[str]:
    if os.geteuid() != 0:
        return list(command)  # already unprivileged
    return ["runuser", "-u", "postgres", "--", *command]


@contextmanager
def pg_cluster(fsync: bool = False) -> Iterator[str]:
    """fsync off for tests (speed; nothing here survives a crash anyway), on for benchmarks."""
    bin_dir = _bin_dir()
    if bin_dir is None or (os.geteuid() == 0 and not _has_user("postgres")):
        if os.environ.get("CI") == "true":
            raise RuntimeError("PostgreSQL's server binaries are missing: .ci/run installs them")
        pytest.skip("PostgreSQL's server (Debian package postgresql) is not installed")
    root = Path(tempfile.mkdtemp(prefix="pitill-pg-"))
    data = root / "data"
    try:
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        subprocess.run(
            _as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "pitill",
                         "--no-sync", "-E", "UTF8"),
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        options = f"-k {root} -p {PORT} -c listen_addresses='' -c fsync={'on' if fsync else 'off'}"
        subprocess.run(
            _as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-w",
                         "-l", str(root / "log"), "start"),
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        try:
            yield f"postgresql://pitill@/postgres?host={root}&port={PORT}"
        finally:
            subprocess.run(
                _as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"),
                capture_output=True, timeout=60, check=False,
            )  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)


def fresh_database(base_url: str) -> str:
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return base_url.replace("/postgres?", f"/{name}?")


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
