"""The config loader under misuse: every number bounded, every rule between keys, each bad file.

Each failure is one ConfigError line naming the key (or the file), the value and what is allowed;
the real `pitill run/sim/doctor --config` processes print it on one line, without a traceback.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pitill.config import (
    BOUNDS,
    ORDERS,
    Config,
    TerminalConfig,
    config_from_dict,
    load_config,
)
from pitill.errors import ConfigError
from pitill_cli import PITILL

SECTIONS = {f.name: type(getattr(Config(), f.name)) for f in dataclasses.fields(Config)}
NUMERIC = [
    (section, name, bound)
    for section, cls in SECTIONS.items()
    for name, bound in BOUNDS.get(cls, {}).items()
]


def numeric_fields(cls: type[Any]) -> set[str]:
    hints = {f.name: f.type for f in dataclasses.fields(cls)}
    return {
        name
        for name, hint in hints.items()
        if hint in ("int", "float", "tuple[int, ...]") or hint in (int, float)
    }


def test_every_number_of_every_section_has_its_bound() -> None:
    for section, cls in SECTIONS.items():
        assert set(BOUNDS.get(cls, {})) == numeric_fields(cls), f"[{section}]"


def test_every_default_is_within_its_bound() -> None:
    for section, name, bound in NUMERIC:
        value = getattr(getattr(Config(), section), name)
        for item in value if isinstance(value, tuple) else (value,):
            assert bound.allows(item), f"{section}.{name} = {item}"


def _raw(section: str, name: str, value: object) -> dict[str, Any]:
    default = getattr(getattr(Config(), section), name)
    if isinstance(default, tuple):  # a list of pins: the bad one among the defaults
        return {section: {name: [*default[:-1], value]}}
    return {section: {name: value}}


def _one_line_error(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as error:
        config_from_dict(raw)
    message = str(error.value)
    assert "\n" not in message
    return message


OUTSIDE = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, -1e308, 1e308, -1.0, 10**30, -(10**30)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(NUMERIC), OUTSIDE)
def test_a_number_outside_its_bound_names_key_value_and_range(
    entry: tuple[str, str, Any], value: float
) -> None:
    section, name, bound = entry
    default = getattr(getattr(Config(), section), name)
    is_int = isinstance(default[0] if isinstance(default, tuple) else default, int)
    if is_int and isinstance(value, float):
        value = value if not value.is_integer() else value + 0.5  # stays a non-integer
    finite = not isinstance(value, float) or math.isfinite(value)
    inside = finite and (bound.low <= value <= bound.high or value in {v for v, _ in bound.special})
    if inside and not (is_int and isinstance(value, float)):
        return  # inside: the next test's business
    message = _one_line_error(_raw(section, name, value))
    assert message.startswith(f"{section}.{name}")
    if is_int and isinstance(value, float):
        assert "must be an integer" in message
        return
    shown = repr(value if is_int else float(value))
    assert bound.text() in message and f"got {shown}"[:20] in message


def test_a_number_too_large_for_a_float_is_an_error_not_a_crash() -> None:
    message = _one_line_error({"upstream": {"request_timeout_s": 10**400}})
    assert message.startswith("upstream.request_timeout_s: 1000000")
    assert message.endswith("... is too large for a number")
    message = _one_line_error({"upstream": {"port": 10**400}})
    assert message.startswith("upstream.port: must be 1..65535, got 1000000")


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(NUMERIC), st.data())
def test_a_number_inside_its_bound_is_taken_unless_a_rule_pairs_it(
    entry: tuple[str, str, Any], data: st.DataObject
) -> None:
    section, name, bound = entry
    default = getattr(getattr(Config(), section), name)
    if isinstance(default[0] if isinstance(default, tuple) else default, int):
        value: float = data.draw(st.integers(int(bound.low), int(bound.high)))
    else:
        value = data.draw(st.floats(bound.low, bound.high))
    key = f"{section}.{name}"
    try:
        config_from_dict(_raw(section, name, value))
    except ConfigError as exc:
        paired = {order.low_key for order in ORDERS} | {order.high_key for order in ORDERS}
        structural = ("is already used by", "must differ from")  # pin clashes
        assert key in paired or any(s in str(exc) for s in structural), str(exc)


def test_nan_and_inf_in_a_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "pitill.toml"
    path.write_text("[upstream]\nrequest_timeout_s = nan\n", encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"^upstream\.request_timeout_s: must be 0\.05\.\.120 s, got nan$"
    ):
        load_config(path)
    path.write_text("[timeouts]\nresult_s = inf\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^timeouts\.result_s: must be 0\.1\.\.3600 s, got inf$"):
        load_config(path)


# One violating config per rule between two keys, and the key the message starts with.
BROKEN_ORDERS: dict[tuple[str, str], dict[str, Any]] = {
    ("upstream.request_timeout_s", "timeouts.authorizing_s"): {
        "upstream": {"request_timeout_s": 15.0},
        "timeouts": {"authorizing_s": 15.0},
    },
    ("upstream.probe_interval_s", "upstream.echo_interval_s"): {
        "upstream": {"probe_interval_s": 61.0, "echo_interval_s": 60.0}
    },
    ("upstream.forward_retry_s", "upstream.forward_retry_max_s"): {
        "upstream": {"forward_retry_s": 31.0, "forward_retry_max_s": 30.0}
    },
    ("upstream.forward_retry_max_s", "offline.age_alarm_s"): {
        "upstream": {"forward_retry_max_s": 7200.0},
        "offline": {"age_alarm_s": 7200.0},
    },
    ("offline.uid_only_floor_limit_minor", "offline.floor_limit_minor"): {
        "offline": {"uid_only_floor_limit_minor": 1001, "floor_limit_minor": 1000}
    },
    ("offline.refund_floor_limit_minor", "offline.floor_limit_minor"): {
        "offline": {"refund_floor_limit_minor": 1001, "floor_limit_minor": 1000}
    },
    ("offline.refund_floor_limit_minor", "offline.refund_max_total_minor"): {
        "offline": {"refund_floor_limit_minor": 1001, "refund_max_total_minor": 1000}
    },
    ("offline.age_alarm_s", "offline.max_age_s"): {
        "offline": {"age_alarm_s": 3601.0, "max_age_s": 3600.0}
    },
    ("display.dim_contrast", "display.contrast"): {
        "display": {"contrast": 100, "dim_contrast": 101}
    },
    ("keypad.scan_interval_s", "keypad.idle_scan_interval_s"): {
        "keypad": {"scan_interval_s": 0.05, "idle_scan_interval_s": 0.02}
    },
}


def test_every_rule_has_its_case() -> None:
    assert set(BROKEN_ORDERS) == {(o.low_key, o.high_key) for o in ORDERS}


@pytest.mark.parametrize("order", ORDERS, ids=lambda o: f"{o.low_key}<{o.high_key}")
def test_each_rule_between_two_keys(order: Any) -> None:
    raw = BROKEN_ORDERS[(order.low_key, order.high_key)]
    message = _one_line_error(raw)
    assert message.startswith(f"{order.low_key}: ")
    assert order.high_key in message and order.why in message
    # Moving the low key just inside the rule makes the same config valid.
    low_section, low_name = order.low_key.split(".")
    high_section, high_name = order.high_key.split(".")
    high = raw.get(high_section, {}).get(
        high_name, getattr(getattr(Config(), high_section), high_name)
    )
    fixed = {section: dict(values) for section, values in raw.items()}
    fixed.setdefault(low_section, {})[low_name] = high - 1 if isinstance(high, int) else high / 2
    config_from_dict(fixed)


def test_the_request_timeout_rule_in_words() -> None:
    message = _one_line_error({"upstream": {"request_timeout_s": 20.0}})
    assert message == (
        "upstream.request_timeout_s: 20.0 must be less than timeouts.authorizing_s (15.0): the "
        "AUTHORIZING screen must outlast the request, or it gives up before the answer (or the "
        "reversal) is known; change one of them"
    )


@pytest.mark.parametrize(
    ("name", "value", "stored"),
    [
        ("terminal_id", "PITILL01", "PITILL01"),
        ("terminal_id", "T1", "T1      "),
        ("terminal_id", "A-1 /.~", "A-1 /.~ "),
        ("merchant_id", "SHOP 42", "SHOP 42        "),
    ],
)
def test_shorter_ids_are_padded_with_spaces_on_the_right(
    name: str, value: str, stored: str
) -> None:
    terminal = config_from_dict({"terminal": {name: value}}).terminal
    assert getattr(terminal, name) == stored
    assert len(stored) == {"terminal_id": 8, "merchant_id": 15}[name]
    assert TerminalConfig(**{name: value}) == terminal  # the same padding built in code


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("terminal_id", ""),
        ("terminal_id", "PITILL012"),  # 9
        ("terminal_id", "PITILLÉ1"),
        ("terminal_id", "PI\nTILL"),
        ("terminal_id", "TAB\t1"),
        ("terminal_id", " LEADING"),
        ("terminal_id", "\x7f"),
        ("merchant_id", "M" * 16),
        ("merchant_id", "shop\x00"),
    ],
)
def test_ids_must_be_printable_ascii_of_their_iso_length(name: str, value: str) -> None:
    message = _one_line_error({"terminal": {name: value}})
    length = {"terminal_id": 8, "merchant_id": 15}[name]
    assert message.startswith(f"terminal.{name}: must be 1..{length} printable ASCII characters")
    assert repr(value) in message


def test_unknown_keys_stay_errors_and_odd_names_stay_on_one_line() -> None:
    assert _one_line_error({"upstream": {"prot": 1}}).startswith(
        "upstream.prot: unknown key; known keys here: bitmap, cache_resolved, "
    )
    assert _one_line_error({"a\nb": 1}).startswith("'a\\nb': unknown key")


def test_every_problem_is_kept_for_the_doctor() -> None:
    with pytest.raises(ConfigError) as error:
        config_from_dict(
            {"upstream": {"port": 0, "probe_timeout_s": math.nan}, "display": {"contrast": 999}}
        )
    assert error.value.problems == (
        "upstream.port: must be 1..65535, got 0",
        "upstream.probe_timeout_s: must be 0.01..120 s, got nan",
        "display.contrast: must be 0..255, got 999",
    )
    assert str(error.value) == (
        "upstream.port: must be 1..65535, got 0 (and 2 more; `pitill doctor --config FILE` "
        "lists each)"
    )


# --- the file itself ----------------------------------------------------------------------------


@pytest.fixture
def bad_files(tmp_path: Path) -> dict[str, Path]:
    """Config files with each problem a file can have, made for real on disk."""
    files = {
        "directory": tmp_path / "conf.d",
        "missing": tmp_path / "nope.toml",
        "bom": tmp_path / "bom.toml",
        "utf16": tmp_path / "utf16.toml",
        "latin1": tmp_path / "latin1.toml",
        "under_a_file": tmp_path / "bom.toml" / "pitill.toml",
        "fifo": tmp_path / "fifo.toml",
        "huge": tmp_path / "huge.toml",
        "bad_toml": tmp_path / "bad.toml",
    }
    files["directory"].mkdir()
    files["bom"].write_bytes(b'\xef\xbb\xbf[terminal]\ncurrency = "EUR"\n')
    files["utf16"].write_bytes('[terminal]\ncurrency = "EUR"\n'.encode("utf-16"))
    files["latin1"].write_bytes('# café\n[terminal]\ncurrency = "EUR"\n'.encode("latin-1"))
    os.mkfifo(files["fifo"])
    files["huge"].write_bytes(b"#" * (2 << 20))
    files["bad_toml"].write_text("[upstream]\nport = \n", encoding="utf-8")
    return files


EXPECTED = {
    "directory": "is a directory; pass the file in it",
    "missing": "does not exist; copy hw/pitill.example.toml there",
    "bom": "starts with a byte-order mark (BOM); save it as UTF-8 without BOM",
    "utf16": "is UTF-16 (it starts with a byte-order mark); save it as UTF-8",
    "latin1": "is not UTF-8 text (byte 0xE9 on line 1); save it as UTF-8",
    "under_a_file": ": a part of the path is a file, not a directory",
    "fifo": "is not a regular file; pass a text file",
    "huge": "is larger than 1024 KiB; pass the right file",
    "bad_toml": "is not valid TOML: Invalid value (at line 2, column 8); fix that line",
}


@pytest.mark.parametrize("problem", sorted(EXPECTED))
def test_each_file_problem_is_one_line_naming_the_file(
    bad_files: dict[str, Path], problem: str
) -> None:
    path = bad_files[problem]
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert message.startswith(f"config file {path}") and EXPECTED[problem] in message
    assert "\n" not in message


def _run(*argv: str, user: tuple[int, int] | None = None) -> subprocess.CompletedProcess[str]:
    prefix: tuple[str, ...] = ()
    if user is not None:
        setpriv = shutil.which("setpriv")
        assert setpriv is not None
        prefix = (setpriv, f"--reuid={user[0]}", f"--regid={user[1]}", "--clear-groups")
    return subprocess.run(
        [*prefix, *PITILL, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def assert_one_line(done: subprocess.CompletedProcess[str], stream: str = "stderr") -> str:
    text = done.stderr if stream == "stderr" else done.stdout
    assert done.returncode != 0, done
    assert "Traceback" not in done.stdout + done.stderr
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        (("run", "--data-dir", "{tmp}/data"), "directory"),
        (("run", "--data-dir", "{tmp}/data"), "fifo"),
        (("sim", "--script", "{tmp}/none.pitill", "--data-dir", "{tmp}/data"), "latin1"),
        (("sim", "--script", "{tmp}/none.pitill", "--data-dir", "{tmp}/data"), "bom"),
        (("drill", "--data-dir", "{tmp}/data"), "huge"),
    ],
)
def test_pitill_commands_say_it_in_one_line(
    tmp_path: Path, bad_files: dict[str, Path], command: tuple[str, ...], problem: str
) -> None:
    argv = [part.format(tmp=tmp_path) for part in command]
    done = _run(*argv[:1], "--config", str(bad_files[problem]), *argv[1:])
    line = assert_one_line(done)
    assert line.startswith(f"pitill: config file {bad_files[problem]} ")
    assert EXPECTED[problem] in line
    assert not (tmp_path / "data").exists()  # nothing written before the config was good


def test_pitill_doctor_lists_every_config_problem_one_line_each(tmp_path: Path) -> None:
    path = tmp_path / "pitill.toml"
    path.write_text(
        "[upstream]\nport = 0\nprobe_timeout_s = nan\n[display]\ncontrast = 999\n",
        encoding="utf-8",
    )
    done = _run("doctor", "--config", str(path), "--data-dir", str(tmp_path / "data"))
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    # every config problem on its own line, then its fix (other checks may add their lines)
    lines = done.stdout.splitlines()
    assert [x for x in lines if x.startswith("FAIL  config:")] == [
        "FAIL  config: upstream.port: must be 1..65535, got 0",
        "FAIL  config: upstream.probe_timeout_s: must be 0.01..120 s, got nan",
        "FAIL  config: display.contrast: must be 0..255, got 999",
    ]
    fix = f"      fix: correct it in {path}; hw/pitill.example.toml lists every key with its " + (
        "default"
    )
    assert lines[lines.index("FAIL  config: display.contrast: must be 0..255, got 999") + 1] == fix
    assert lines[-1].endswith("problem(s) found")
    run = _run("run", "--config", str(path), "--data-dir", str(tmp_path / "d"))
    assert assert_one_line(run) == (
        "pitill: upstream.port: must be 1..65535, got 0 (and 2 more; `pitill doctor --config "
        "FILE` lists each)"
    )


def test_pitill_doctor_reports_a_bom_file(bad_files: dict[str, Path]) -> None:
    done = _run("doctor", "--config", str(bad_files["bom"]))
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    assert (
        done.stdout.splitlines()[0]
        == f"FAIL  config: config file {bad_files['bom']} " + (EXPECTED["bom"])
    )


@pytest.fixture
def unreadable_config() -> Iterator[tuple[Path, tuple[int, int] | None]]:
    """A config file this test's pitill process cannot read, and the user to run it as.

    chmod 000 does not stop root, so as root the process runs as nobody (setpriv) on a file only
    root may read; as any other user, chmod 000 does it.
    """
    folder = Path(tempfile.mkdtemp(prefix="pitill-unreadable-"))
    folder.chmod(0o755)
    path = folder / "pitill.toml"
    path.write_text('[terminal]\ncurrency = "EUR"\n', encoding="utf-8")
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: cannot make a file unreadable")
        path.chmod(0o600)
        user: tuple[int, int] | None = (65534, 65534)
    else:
        path.chmod(0o000)
        user = None
    yield path, user
    path.chmod(0o600)
    shutil.rmtree(folder)


def test_an_unreadable_config_is_one_line_for_run_and_doctor(
    unreadable_config: tuple[Path, tuple[int, int] | None],
) -> None:
    path, user = unreadable_config
    data_dir = path.parent / "data"
    done = _run("run", "--config", str(path), "--data-dir", str(data_dir), user=user)
    line = assert_one_line(done)
    assert line.startswith(f"pitill: config file {path} cannot be read by user ")
    assert "(permission denied); run as a user that may read it" in line
    doctor = _run("doctor", "--config", str(path), user=user)
    assert doctor.returncode == 1 and "Traceback" not in doctor.stdout + doctor.stderr
    assert doctor.stdout.splitlines()[0].startswith(
        f"FAIL  config: config file {path} cannot be read by user "
    )


def test_the_example_config_is_still_valid_toml() -> None:
    example = Path(__file__).resolve().parents[1] / "hw" / "pitill.example.toml"
    assert tomllib.loads(example.read_text(encoding="utf-8"))


# --- config is a leaf -----------------------------------------------------------------------------

HARDWARE_LIBRARIES = ("PIL", "luma", "gpiozero", "serial", "evdev", "smbus2", "pitill.drivers")


@pytest.mark.parametrize("module", ["pitill.config", "pitill.upstream.messages"])
def test_importing_the_config_loads_no_driver_or_hardware_library(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in sys.argv[1:] "
        "or m.startswith('pitill.drivers'))\n"
        "print(' '.join(loaded))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *HARDWARE_LIBRARIES],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.split() == []


def test_reader_type_and_wedge_layout_are_checked() -> None:
    assert (
        config_from_dict({"reader": {"type": "usb-stripe", "layout": "de"}}).reader.layout == "de"
    )
    message = _one_line_error({"reader": {"type": "rc522"}})
    assert message == (
        "reader.type: must be one of 'serial-stripe', 'usb-stripe', 'pn532', got 'rc522'"
    )
    message = _one_line_error({"reader": {"type": "usb-stripe", "layout": "fr"}})
    assert message == "reader.layout: must be one of 'us', 'de', got 'fr'"


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("bitmap", "hex", "'ascii', 'binary'"),
        ("length_prefix", "2-byte", "'2-byte-binary', '4-digit-ascii', '4-byte-binary'"),
    ],
)
def test_the_wire_format_is_one_a_host_uses(key: str, value: str, allowed: str) -> None:
    assert _one_line_error({"upstream": {key: value}}) == (
        f"upstream.{key}: must be one of {allowed}, got {value!r}"
    )
    wire = config_from_dict(
        {"upstream": {"bitmap": "binary", "length_prefix": "4-byte-binary"}}
    ).upstream.wire
    assert (wire.bitmap, wire.length_prefix, wire.prefix_size) == ("binary", "4-byte-binary", 4)
