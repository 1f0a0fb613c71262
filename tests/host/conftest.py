"""Every host test runs against both stores: SQLite in the data dir, and a real PostgreSQL
(tests/pg_server.py) with a fresh database per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pg_server import fresh_database, pg_cluster


@pytest.fixture(scope="session")
def pg_base() -> Iterator[str]:
    with pg_cluster() as base:
        yield base


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> str | None:
    """None for SQLite in the data dir, else the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    return fresh_database(request.getfixturevalue("pg_base"))


def db_args(database: str | None) -> list[str]:
    return ["--database", database] if database else []
