"""`pitill host load` against a real `pitill host serve` on each store: the figures come with a
check of the host's own books, and a host that loses a sale fails it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from host_messages import serving_hosts
from pitill.host.load import LoadResult, check_books, load_pan
from pitill.host.store import HostStore
from pitill_cli import PITILL

from .conftest import db_args


def test_load_figures_and_the_books_check(tmp_path: Path, database: str | None) -> None:
    store_args = ["--data-dir", str(tmp_path), *db_args(database)]
    with serving_hosts(*store_args) as (port,):
        done = subprocess.run(
            [*PITILL, "host", "load", *store_args, "--connect", f"127.0.0.1:{port}",
             "--terminals", "6", "--sales", "4", "--advices", "5", "--jitter", "0.2"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(done.stdout)
    assert figures["sales"] == 24 and figures["problems"] == []
    assert figures["answered"]["00"] >= 24 + 30

    # the check is real: an approval the books do not hold, or a charge nobody was told of
    store = HostStore.open(tmp_path, database)
    try:
        told = {("LOAD0003", "sale"): {1, 2, 3, 4, 99}, ("LOAD0003", "offline_sale"): {5, 6}}
        problems = check_books(store, LoadResult(6, 4, 5, 0.0, approved=told))
        assert "LOAD0003: 1 approved sale(s) not charged" in problems
        assert "LOAD0003: 3 offline_sale(s) charged, never approved" in problems
    finally:
        store.close()
    assert load_pan(7).startswith("628")
