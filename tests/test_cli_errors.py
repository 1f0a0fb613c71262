"""No traceback reaches a user: the real `pitill` process, given what a hostile user would give it.

Each bad input ends in one line on stderr (or, for a reader that closed the pipe, silence, as every
Unix filter does) and a non-zero exit; none shows "Traceback".
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pitill.cli import build_parser
from pitill_cli import PITILL

SCRIPTS = Path(__file__).resolve().parent / "scenarios"
NOBODY = (65534, 65534)


def pitill(
    *argv: str, user: tuple[int, int] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    prefix: tuple[str, ...] = ()
    if user is not None:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("setpriv is needed to run pitill as an unprivileged user")
        prefix = (setpriv, f"--reuid={user[0]}", f"--regid={user[1]}", "--clear-groups")
    return subprocess.run(
        [*prefix, *PITILL, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The one stderr line of a failed command (and nothing else anywhere that looks broken)."""
    assert done.returncode not in (0, None), done
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory an unprivileged user can reach (pytest's tmp_path is root's 0700 tree)."""
    folder = Path(tempfile.mkdtemp(prefix="pitill-cli-errors-"))
    folder.chmod(0o755)
    yield folder
    for path in folder.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o700)
    shutil.rmtree(folder)


def _as_non_root_can_be_tested() -> tuple[int, int] | None:
    """Who to run as so that a permission bit stops the process: nobody when we are root."""
    return NOBODY if os.geteuid() == 0 else None


# --- output into a closed pipe ------------------------------------------------------------------


def run_into_closed_pipe(*argv: str) -> subprocess.CompletedProcess[bytes]:
    """Run pitill with stdout a pipe whose reader is already gone (`| head -1` that has quit)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [*PITILL, *argv],
            stdout=write_end,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)


@pytest.fixture(scope="module")
def data_dir_with_sales(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("sales") / "data"
    done = pitill(
        "sim", "--script", str(SCRIPTS / "offline_cash_change.pitill"), "--data-dir", str(data_dir)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return data_dir


@pytest.mark.parametrize(
    "argv",
    [
        ("--help",),
        ("--version",),
        ("sim", "--help"),
        ("diagram",),
        ("journal", "list", "--data-dir", "{data}"),
        ("journal", "list", "--json", "--data-dir", "{data}"),
        ("report", "--data-dir", "{data}"),
    ],
    ids=lambda argv: " ".join(argv[:3]),
)
def test_output_into_a_closed_pipe_ends_quietly_with_141(
    data_dir_with_sales: Path, argv: tuple[str, ...]
) -> None:
    done = run_into_closed_pipe(*(a.format(data=data_dir_with_sales) for a in argv))
    assert done.stderr == b""  # no traceback, no "Exception ignored in ... BrokenPipeError"
    assert done.returncode == 141  # 128 + SIGPIPE, what the shell shows for `yes | head -1`


# --- numeric options ---------------------------------------------------------------------------


def _options() -> tuple[list[tuple[str, str]], list[str]]:
    """(subcommand, option) of every option that takes a number through the one helper, and
    every option that takes one through a bare int or float instead."""
    found: list[tuple[str, str]] = []
    bare: list[str] = []

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    walk(sub, f"{name} {sub_name}".strip())
            elif action.type in (int, float):
                bare.append(f"pitill {name} {action.option_strings or action.dest}")
            # The one helper's parsers are named "number" and "whole number".
            elif getattr(action.type, "__name__", "") in ("number", "whole number"):
                found.append((name, action.option_strings[-1]))

    walk(build_parser(), "")
    return found, bare


def numeric_options() -> list[tuple[str, str]]:
    return _options()[0]


def test_every_numeric_option_uses_the_one_helper() -> None:
    found, bare = _options()
    assert bare == [], (
        "give these options type=pitill.cliargs.number(Bound(low, high)) so NaN, inf and "
        f"out-of-range values are one line: {bare}"
    )
    assert {("sim", "--expect-timeout"), ("acquirer", "--port"), ("drill", "--speed")} <= set(found)


REQUIRED = {"acquirer": ("--data-dir", "{tmp}/d"), "drill": ("--data-dir", "{tmp}/d")}


@pytest.mark.parametrize("value", ["nan", "inf", "-1e999", "1e999", "-5", "ten", "1e30"])
@pytest.mark.parametrize("command_option", numeric_options(), ids="{0[0]} {0[1]}".format)
def test_a_bad_number_is_refused_in_one_line_by_the_parser(
    command_option: tuple[str, str], value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    command, option = command_option
    parser = build_parser()
    with pytest.raises(SystemExit) as exited:
        parser.parse_args([*command.split(), f"{option}={value}", "--data-dir", "d"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"pitill {command}: argument {option}: ")
    assert repr(value) in err


@pytest.mark.parametrize("command_option", numeric_options(), ids="{0[0]} {0[1]}".format)
def test_nan_on_the_real_command_line(command_option: tuple[str, str], tmp_path: Path) -> None:
    command, option = command_option
    done = pitill(*command.split(), option, "nan", "--data-dir", str(tmp_path / "d"))
    assert done.returncode == 2
    line = one_line(done)
    assert line.startswith(f"pitill {command}: argument {option}: 'nan' is ")
    assert "is outside" in line or "is not a whole number" in line
    assert not (tmp_path / "d").exists()


def test_other_argument_mistakes_are_one_line(tmp_path: Path) -> None:
    assert one_line(pitill()) == (
        "pitill: the following arguments are required: COMMAND; see `pitill --help`"
    )
    assert one_line(pitill("run", "--config", "x.toml", "--log-level", "LOUD")).startswith(
        "pitill run: argument --log-level: invalid choice: 'LOUD'"
    )
    assert one_line(pitill("diagram", "--frobnicate")).startswith(
        "pitill: unrecognized arguments: --frobnicate"
    )


# --- data directories ----------------------------------------------------------------------------


LOCK_HINT = "check --data-dir and that this user may write there"
LEDGER_HINT = "check the data directory and that this user may write there"


def test_sim_refuses_a_data_dir_it_cannot_write(shared_tmp: Path) -> None:
    read_only = shared_tmp / "read-only"
    read_only.mkdir(mode=0o555)
    read_only.chmod(0o555)
    script = str(SCRIPTS / "offline_cash_change.pitill")
    user = _as_non_root_can_be_tested()
    for data_dir in (read_only, read_only / "sub"):
        done = pitill("sim", "--script", script, "--data-dir", str(data_dir), user=user)
        assert one_line(done) == (
            f"pitill: data directory {data_dir}: cannot create its lock file "
            f"{data_dir / 'pitill.lock'} (Permission denied); {LOCK_HINT}"
        )
    assert list(read_only.iterdir()) == []


def test_sim_refuses_a_file_as_its_data_dir(tmp_path: Path) -> None:
    a_file = tmp_path / "data"
    a_file.write_text("not a directory\n")
    script = str(SCRIPTS / "offline_cash_change.pitill")
    for data_dir, reason in ((a_file, "File exists"), (a_file / "sub", "Not a directory")):
        done = pitill("sim", "--script", script, "--data-dir", str(data_dir))
        assert one_line(done) == (
            f"pitill: data directory {data_dir}: cannot create its lock file "
            f"{data_dir / 'pitill.lock'} ({reason}); {LOCK_HINT}"
        )


def test_sim_refuses_a_ledger_it_cannot_write(shared_tmp: Path) -> None:
    script = str(SCRIPTS / "offline_cash_change.pitill")
    # A directory where the sandbox host's ledger file belongs.
    in_the_way = shared_tmp / "in-the-way"
    (in_the_way / "acquirer-ledger.jsonl").mkdir(parents=True)
    done = pitill("sim", "--script", script, "--data-dir", str(in_the_way))
    assert one_line(done) == (
        f"pitill: the host's ledger {in_the_way / 'acquirer-ledger.jsonl'} cannot be opened: "
        f"is a directory; {LEDGER_HINT}"
    )
    # A ledger this user may not write, in a data dir it may.
    locked = shared_tmp / "locked"
    locked.mkdir()
    locked.chmod(0o777)
    ledger = locked / "acquirer-ledger.jsonl"
    ledger.write_text("")
    ledger.chmod(0o444 if os.geteuid() != 0 else 0o644)
    user = _as_non_root_can_be_tested()
    done = pitill("sim", "--script", script, "--data-dir", str(locked), user=user)
    assert one_line(done) == (
        f"pitill: the host's ledger {ledger} cannot be opened: permission denied; {LEDGER_HINT}"
    )
    assert not (locked / "journal.sqlite3").exists()  # the host starts before the journal


def test_the_acquirer_refuses_a_file_as_its_data_dir(tmp_path: Path) -> None:
    a_file = tmp_path / "data"
    a_file.write_text("")
    done = pitill("acquirer", "--port", "0", "--data-dir", str(a_file))
    assert one_line(done) == (
        f"acquirer: the host's ledger {a_file / 'acquirer-ledger.jsonl'} cannot be opened: "
        f"file exists; {LEDGER_HINT}"
    )


def test_journal_commands_on_a_journal_they_cannot_read(
    shared_tmp: Path, data_dir_with_sales: Path
) -> None:
    data_dir = shared_tmp / "data"
    shutil.copytree(data_dir_with_sales, data_dir)
    data_dir.chmod(0o700)  # root's: nobody may not enter
    for argv in (("journal", "list"), ("report",)):
        done = pitill(*argv, "--data-dir", str(data_dir), user=_as_non_root_can_be_tested())
        line = one_line(done)
        assert line.startswith("pitill: ") and str(data_dir) in line


# --- scripts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"press 1 OK\n\xff\xfe\n", "is not UTF-8 text (byte 0xFF on line 2); save it as UTF-8"),
        (b"press 1 OK\x00\x01\x02", "is binary, not text (a NUL byte on line 1)"),
        (
            b"\xef\xbb\xbfpress 1 OK\n",
            "starts with a byte-order mark (BOM); save it as UTF-8 without BOM",
        ),
    ],
    ids=["latin-1", "binary", "bom"],
)
def test_a_script_that_is_not_text(tmp_path: Path, content: bytes, expected: str) -> None:
    script = tmp_path / "bad.pitill"
    script.write_bytes(content)
    done = pitill("sim", "--script", str(script), "--data-dir", str(tmp_path / "d"))
    assert one_line(done) == f"pitill: script {script} {expected}"
    assert not (tmp_path / "d").exists()


def test_a_script_that_is_a_directory_or_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.pitill"
    os.mkfifo(fifo)
    done = pitill("sim", "--script", str(fifo), "--data-dir", str(tmp_path / "d"))
    assert one_line(done) == f"pitill: script {fifo} is not a regular file; pass a text file"
    done = pitill("sim", "--script", str(tmp_path), "--data-dir", str(tmp_path / "d"))
    assert one_line(done) == f"pitill: script {tmp_path} is a directory; pass the file in it"


def test_an_unreadable_script(shared_tmp: Path) -> None:
    script = shared_tmp / "secret.pitill"
    script.write_text("press 1 OK\n")
    script.chmod(0o600 if os.geteuid() == 0 else 0o000)
    done = pitill(
        "sim",
        "--script",
        str(script),
        "--data-dir",
        str(shared_tmp / "d"),
        user=_as_non_root_can_be_tested(),
    )
    assert one_line(done).startswith(f"pitill: script {script} cannot be read by user ")


def test_a_script_error_masks_the_card_number(tmp_path: Path) -> None:
    script = tmp_path / "pan.pitill"
    script.write_text("press 1 0 0 OK\nswipe 4111111111111111 30122\n")
    done = pitill("sim", "--script", str(script), "--data-dir", str(tmp_path / "d"))
    line = one_line(done)
    assert line == (
        f"pitill: script {script}, line 2: the expiry must be YYMM, four digits 0-9: "
        "'swipe 411111******1111 30122'"
    )
    assert "4111111111111111" not in done.stdout + done.stderr


def test_a_failed_expect_quotes_its_line_without_the_card_number(tmp_path: Path) -> None:
    script = tmp_path / "pan.pitill"
    script.write_text('press 1 0 0 OK\nexpect screen "NEVER 4111111111111111"\n')
    done = pitill(
        "sim", "--script", str(script), "--data-dir", str(tmp_path / "d"), "--expect-timeout", "0.2"
    )
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    assert 'FAILED line 2: expect screen "NEVER 411111******1111"' in done.stdout
    assert "4111111111111111" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("swipe ٤١١١١١١١١١١١١١١١ 3012", "the PAN must be 12 to 19 digits 0-9"),
        ("swipe 4111111111111111 ٣٠١٢", "the expiry must be YYMM, four digits 0-9"),
        ("expect pending ²", "expect pending takes a whole number"),
        ("wait nan", "wait must be between 0 and 3600 seconds"),
        ("wait 1e999", "wait must be between 0 and 3600 seconds"),
    ],
)
def test_script_numbers_are_ascii_and_finite(tmp_path: Path, line: str, expected: str) -> None:
    script = tmp_path / "odd.pitill"
    script.write_text(f"press 1 0 0 OK\n{line}\n", encoding="utf-8")
    done = pitill("sim", "--script", str(script), "--data-dir", str(tmp_path / "d"))
    assert one_line(done).startswith(f"pitill: script {script}, line 2: {expected}: ")
    assert not (tmp_path / "d").exists()  # refused before the terminal started


# --- the last nets in cli.main ------------------------------------------------------------------


def test_an_os_error_is_the_file_and_the_reason(tmp_path: Path) -> None:
    config = tmp_path / "pitill.toml"
    config.write_text(
        f'[log]\nfile = "{tmp_path}/no/such/dir/pitill.log"\n'
        '[gpio]\npin_factory = "mock"\n[display]\ndriver = "dummy"\n'
    )
    done = pitill("run", "--config", str(config), "--data-dir", str(tmp_path / "d"))
    assert done.returncode == 1
    assert one_line(done) == (
        f"pitill: {tmp_path}/no/such/dir/pitill.log: no such file or directory; check the path"
    )


def test_a_bug_is_one_line_unless_asked_for_the_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import pitill.cli

    def broken(args: argparse.Namespace) -> int:
        raise KeyError("nobody expected this\nat all")

    monkeypatch.setattr(pitill.cli, "_diagram", broken)
    monkeypatch.delenv("PITILL_TRACEBACK", raising=False)
    assert pitill.cli.main(["diagram"]) == 70
    err = capsys.readouterr().err
    assert err == (
        "pitill: unexpected KeyError: 'nobody expected this\\nat all' (a bug: please report it "
        "with the command; PITILL_TRACEBACK=1 shows where it happened)\n"
    )
    monkeypatch.setenv("PITILL_TRACEBACK", "1")
    with pytest.raises(KeyError):
        pitill.cli.main(["diagram"])
