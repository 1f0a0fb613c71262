"""A whole drill, end to end: the short-flap timeline against the real terminal and host.

The shop is five times busier than the default so that about forty customers meet three outages
in about twenty seconds. The report must say nothing was lost or charged twice, and its numbers
must agree with `pitill journal list --json`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from PIL import Image

from pitill.drill import cli as drill_cli
from pitill.drill.play import check_data_dir
from pitill.drill.plot import HEIGHT_PX, WIDTH_PX
from pitill.errors import ConfigError
from pitill_cli import journal_rows


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pitill")
    drill_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


class Drilled(NamedTuple):
    code: int
    report: dict[str, Any]
    base: Path
    text: str


@pytest.fixture(scope="module")
def drilled(tmp_path_factory: pytest.TempPathFactory) -> Drilled:
    """One short-flap drill through the CLI handler, in this process."""
    base = tmp_path_factory.mktemp("drill")
    args = parse(
        [
            *("drill", "--timeline", "short-flap", "--speed", "60", "--seed", "3", "--busy", "5"),
            *("--data-dir", str(base / "data"), "--report", str(base / "report.json")),
            *("--plot", str(base / "timeline.png")),
        ]
    )
    text = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(text):
        # The handler sets up logging for a terminal; leave pytest's logging alone.
        mp.setattr("pitill.logs.configure_logging", lambda *args, **kwargs: None)
        code = args.handler(args)
    report = json.loads((base / "report.json").read_text())
    return Drilled(code, report, base, text.getvalue())


def test_nothing_is_lost_or_charged_twice(drilled: Drilled) -> None:
    code, report, _, text = drilled
    assert code == 0, text
    assert report["check"]["lost"] == 0 and report["check"]["duplicated"] == 0
    assert report["backlog"]["drained"]
    assert report["check"]["host_net_minor"] == report["check"]["journal_charged_minor"]
    assert "PASS: 0 lost, 0 duplicated" in text


def test_every_customer_is_accounted_for(drilled: Drilled) -> None:
    sales = drilled.report["sales"]
    assert sales["attempted"] == sales["customers_planned"] >= 20
    kinds = ("approved_online", "approved_offline", "cash", "declined", "refused", "failed")
    assert sum(sales[k] for k in kinds) == sales["attempted"]
    assert sales["failed"] == 0, sales["failures"]
    assert sales["approved_online"] > 0 and sales["approved_offline"] > 0


def test_the_report_agrees_with_the_journal_listing(
    drilled: Drilled,
) -> None:
    _, report, base, _ = drilled
    rows = journal_rows(base / "data")
    by = Counter((r["kind"], r["mode"], r["status"]) for r in rows)
    card = Counter(r["status"] for r in rows if r["kind"] == "card")
    assert len(rows) == report["check"]["journal_rows"]
    assert card["APPROVED"] == report["sales"]["approved_online"]
    offline = sum(by[("card", "offline", s)] for s in ("PENDING", "FORWARDED", "DECLINED_AFTER"))
    assert offline == report["sales"]["approved_offline"]
    assert card["PENDING"] == card["REVERSAL_PENDING"] == card["AUTHORIZING"] == 0
    cash = sum(1 for r in rows if r["kind"] == "cash" and r["status"] == "COMPLETED")
    assert cash == report["sales"]["cash_rung"]
    assert report["consistent"], report["mismatches"]


def test_each_outage_was_noticed(drilled: Drilled) -> None:
    changes = drilled.report["changes"]
    assert [c["label"] for c in changes] == [
        "healthy",
        "down",
        "up",
        "down",
        "up",
        "down",
        "healthy",
    ]
    for change in changes[1:]:
        if change["mode"] == "down":  # refused connects are seen within a second or so
            assert (change["noticed"], change["reason"]) == ("OFFLINE", "REFUSED"), change
        else:  # two good probes: an up of 2 real seconds is seen unless the machine crawls
            assert change["noticed"] in ("ONLINE", None), change
        if change["noticed"] is not None:
            assert change["notice_sim_s"] == pytest.approx(change["notice_real_s"] * 60, abs=0.2)
    assert changes[-1]["noticed"] == "ONLINE"
    assert drilled.report["backlog"]["peak"] > 0


def test_the_plot_is_a_png_of_the_timeline(drilled: Drilled) -> None:
    with Image.open(drilled.base / "timeline.png") as image:
        assert image.format == "PNG" and image.size == (WIDTH_PX, HEIGHT_PX)
        # The three outages are drawn in the "upstream down" red somewhere on the band.
        band = [image.getpixel((x, 73)) for x in range(image.size[0])]
        assert (215, 70, 60) in band


def test_a_used_data_dir_is_refused(drilled: Drilled) -> None:
    with pytest.raises(ConfigError, match="new, empty directory"):
        check_data_dir(drilled.base / "data")


def test_the_cli_has_defaults_and_an_example() -> None:
    args = parse(["drill", "--data-dir", "d"])
    assert args.timeline == "aws-2025-10" and args.speed is None and args.seed == 1
    with pytest.raises(SystemExit):
        parse(["drill", "--data-dir", "d", "--speed", "0"])
