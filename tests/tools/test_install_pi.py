"""tools/install-pi against a fake Raspberry Pi OS root in tmp_path.

`--root DIR` makes the installer read and write every system path under DIR. The commands that
change a real system (raspi-config, apt-get, useradd, systemctl, ...) are replaced by stubs on
PATH that append their arguments to a log and emulate just enough (raspi-config edits the fake
config.txt, apt-get records packages that dpkg-query then reports) for a second run to see the
first one's work. File tools (install, cmp, awk, sed) are the real ones, acting on the fake root.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from pitill.config import load_config

REPO = Path(__file__).resolve().parents[2]
INSTALLER = REPO / "tools" / "install-pi"
I2C_LINE = "dtparam=i2c_arm=on,i2c_arm_baudrate=400000"

# Raspberry Pi OS Bookworm's own files, shortened.
CONFIG_TXT = """\
# For more options and information see
# http://rptl.io/configtxt

# Uncomment some or all of these to enable the optional hardware interfaces
#dtparam=i2c_arm=on
#dtparam=i2s=on
#dtparam=spi=on

# Enable audio (loads snd_bcm2835)
dtparam=audio=on
dtoverlay=vc4-kms-v3d
arm_64bit=1

[cm4]
otg_mode=1

[cm5]
dtoverlay=dwc2,dr_mode=host

[all]
"""
CMDLINE_TXT = (
    "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 "
    "fsck.repair=yes rootwait quiet\n"
)
PROC_MOUNTS = (
    "/dev/mmcblk0p2 / ext4 rw,noatime 0 0\n"
    "/dev/mmcblk0p1 /boot/firmware vfat rw,relatime 0 0\n"
    "tmpfs /run tmpfs rw,nosuid,nodev 0 0\n"
)
FSTAB = (
    "proc /proc proc defaults 0 0\n"
    "PARTUUID=4e639091-01 /boot/firmware vfat defaults 0 2\n"
    "PARTUUID=4e639091-02 / ext4 defaults,noatime 0 1\n"
)
PI4 = "Raspberry Pi 4 Model B Rev 1.5"
PI5 = "Raspberry Pi 5 Model B Rev 1.0"

STUBS = {
    "raspi-config": r"""
        cfg="$FAKE_ROOT/boot/firmware/config.txt"; cmdline="$FAKE_ROOT/boot/firmware/cmdline.txt"
        case "$2 $3" in
        "do_i2c 0")
            sed -i 's/^#dtparam=i2c_arm=on$/dtparam=i2c_arm=on/' "$cfg"
            grep -q '^dtparam=i2c_arm=on' "$cfg" || echo dtparam=i2c_arm=on >>"$cfg" ;;
        "do_serial_hw 0") echo enable_uart=1 >>"$cfg" ;;
        "do_serial_cons 1") sed -i 's/console=serial0,115200 //' "$cmdline" ;;
        esac
    """,
    "apt-get": r"""
        if [ "$1" = install ]; then
            [ -z "$STUB_APT_FAILS" ] || exit 100
            for arg in "$@"; do
                case "$arg" in install | -*) ;; *) echo "$arg" >>"$STUB_STATE/installed" ;; esac
            done
        fi
    """,
    "dpkg-query": r"""
        for package; do :; done
        grep -qx "$package" "$STUB_STATE/installed" 2>/dev/null || exit 1
        printf 'install ok installed'
    """,
    "useradd": r"""
        echo "pitill:x:999:999::/nonexistent:/usr/sbin/nologin" >>"$FAKE_ROOT/etc/passwd"
        echo "pitill:x:999:" >>"$FAKE_ROOT/etc/group"
    """,
    "groupadd": r"""
        for group; do :; done
        echo "$group:x:990:" >>"$FAKE_ROOT/etc/group"
    """,
    "systemctl": r"""
        case "$1" in
        is-active) [ -e "$STUB_STATE/active" ] ;;
        is-enabled) [ -e "$STUB_STATE/enabled" ] ;;
        enable) touch "$STUB_STATE/enabled"; [ "$2" != --now ] || touch "$STUB_STATE/active" ;;
        esac
    """,
    "python3": r"""
        for venv; do :; done  # python3 -m venv --system-site-packages DIR
        mkdir -p "$venv/bin"
        cp "$STUB_DIR/.venv-python" "$venv/bin/python"
        cp "$STUB_DIR/.venv-pip" "$venv/bin/pip"
    """,
    ".venv-python": "",
    ".venv-pip": r"""
        cp "$STUB_DIR/.venv-pitill" "$(dirname "$0")/pitill"
    """,
    ".venv-pitill": r"""
        exit "${STUB_DOCTOR_RC:-0}"
    """,
    "chgrp": "",
    "udevadm": "",
}
READ_ONLY_COMMANDS = ("dpkg-query ", "systemctl is-active ", "systemctl is-enabled ")


class FakePi:
    """A fake root file system, stubs on PATH, and a way to run the installer against them."""

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path / "root"
        self.stubs = tmp_path / "stubs"
        self.state = tmp_path / "state"
        self.log = tmp_path / "commands.log"
        for directory in (self.root, self.stubs, self.state):
            directory.mkdir()
        self.write("etc/os-release", "VERSION_CODENAME=bookworm\nID=debian\n")
        self.write("boot/firmware/config.txt", CONFIG_TXT)
        self.write("boot/firmware/cmdline.txt", CMDLINE_TXT)
        self.write("proc/mounts", PROC_MOUNTS)
        self.write("proc/device-tree/model", PI4 + "\0")
        self.write("etc/fstab", FSTAB)
        self.write("etc/passwd", "root:x:0:0:root:/root:/bin/bash\n")
        # Raspberry Pi OS has all of these but spi is left out to see it created.
        self.write("etc/group", "root:x:0:\ndialout:x:20:\ni2c:x:998:\ngpio:x:997:\ninput:x:105:\n")
        for name, body in STUBS.items():
            stub = self.stubs / name
            stub.write_text(
                f'#!/bin/bash\necho "{name.removeprefix(".venv-")} $*" >>"$STUB_LOG"\n{body}'
            )
            stub.chmod(0o755)

    def write(self, relative: str, text: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def read(self, relative: str) -> str:
        return (self.root / relative).read_text()

    def run(
        self, *args: str, doctor_rc: int = 0, apt_fails: bool = False
    ) -> subprocess.CompletedProcess[str]:
        if self.log.exists():
            self.log.unlink()
        env = {
            **os.environ,
            "PATH": f"{self.stubs}:{os.environ['PATH']}",
            "FAKE_ROOT": str(self.root),
            "STUB_DIR": str(self.stubs),
            "STUB_STATE": str(self.state),
            "STUB_LOG": str(self.log),
            "STUB_DOCTOR_RC": str(doctor_rc),
            "STUB_APT_FAILS": "1" if apt_fails else "",
        }
        return subprocess.run(
            [str(INSTALLER), "--root", str(self.root), "--source", str(REPO), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def commands(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def changing_commands(self) -> list[str]:
        return [c for c in self.commands() if not c.startswith(READ_ONLY_COMMANDS)]

    def snapshot(self) -> dict[str, tuple[int, bytes]]:
        """Every path under the root with its mode and (for files) its content."""
        tree = {}
        for path in sorted(self.root.rglob("*")):
            info = path.lstat()
            content = path.read_bytes() if stat.S_ISREG(info.st_mode) else b""
            tree[str(path.relative_to(self.root))] = (info.st_mode, content)
        return tree


@pytest.fixture
def pi(tmp_path: Path) -> FakePi:
    return FakePi(tmp_path)


def test_dry_run_lists_every_change_and_changes_nothing(pi: FakePi) -> None:
    before = pi.snapshot()
    result = pi.run("--dry-run")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    root = pi.root
    for expected in (
        "would run: raspi-config nonint do_i2c 0",
        "would run: raspi-config nonint do_serial_hw 0",
        "would run: raspi-config nonint do_serial_cons 1",
        f"would set '{I2C_LINE}' in /boot/firmware/config.txt",
        "would run: apt-get update",
        "would run: apt-get install -y --no-install-recommends python3-venv python3-dev gcc "
        "i2c-tools python3-lgpio",
        "would run: groupadd --system spi",
        "would run: useradd --system --user-group",
        f"would run: python3 -m venv --system-site-packages {root}/opt/pitill/venv",
        f"would run: {root}/opt/pitill/venv/bin/pip install --no-cache-dir",
        f"would run: install -D -m 0644 {REPO}/systemd/pitill.service "
        f"{root}/etc/systemd/system/pitill.service",
        "would run: systemctl daemon-reload",
        f"would run: install -D -m 0644 {REPO}/systemd/99-pitill.rules "
        f"{root}/etc/udev/rules.d/99-pitill.rules",
        "would run: udevadm control --reload",
        f"would run: install -d -m 0750 {root}/etc/pitill",
        f"would run: install -m 0640 {REPO}/hw/pitill.example.toml {root}/etc/pitill/pitill.toml",
        "would run: systemctl enable --now pitill.service",
        f"would run: {root}/opt/pitill/venv/bin/pitill doctor "
        f"--config {root}/etc/pitill/pitill.toml",
        "nothing was changed",
    ):
        assert expected in out, f"missing {expected!r} in:\n{out}"
    assert "uart0" not in out  # a Pi 4 keeps its UART setup
    assert not any(line.startswith(("+ ", "==> ")) for line in out.splitlines())
    assert pi.snapshot() == before
    assert pi.changing_commands() == []  # only queries ran: dpkg-query, systemctl is-*


def test_a_pi_5_gets_its_header_uart(pi: FakePi) -> None:
    pi.write("proc/device-tree/model", PI5 + "\0")
    result = pi.run("--dry-run")
    assert result.returncode == 0, result.stderr
    assert "would set 'dtparam=uart0=on' in /boot/firmware/config.txt" in result.stdout


def test_install_then_again_changes_nothing_the_second_time(pi: FakePi) -> None:
    first = pi.run()
    assert first.returncode == 0, first.stdout + first.stderr
    commands = pi.changing_commands()
    for expected in (
        "raspi-config nonint do_i2c 0",
        "raspi-config nonint do_serial_hw 0",
        "raspi-config nonint do_serial_cons 1",
        "apt-get update",
        "groupadd --system spi",
        "systemctl daemon-reload",
        "udevadm control --reload",
        "systemctl enable --now pitill.service",
        f"pitill doctor --config {pi.root}/etc/pitill/pitill.toml",
    ):
        assert expected in commands, f"{expected!r} not run: {commands}"
    assert any(c.startswith("useradd --system") for c in commands)
    assert any(c.startswith("pip install --no-cache-dir") and c.endswith("[usb]") for c in commands)
    config = pi.read("boot/firmware/config.txt").splitlines()
    assert config.count(I2C_LINE) == 1
    assert "dtparam=i2c_arm=on" not in config  # raspi-config's line became ours, not a second one
    assert config.index(I2C_LINE) == CONFIG_TXT.splitlines().index("#dtparam=i2c_arm=on")
    assert "enable_uart=1" in config
    assert "console=serial0" not in pi.read("boot/firmware/cmdline.txt")
    assert (
        pi.read("etc/systemd/system/pitill.service")
        == (REPO / "systemd/pitill.service").read_text()
    )
    assert (
        pi.read("etc/udev/rules.d/99-pitill.rules")
        == (REPO / "systemd/99-pitill.rules").read_text()
    )
    assert pi.read("etc/pitill/pitill.toml") == (REPO / "hw/pitill.example.toml").read_text()
    assert stat.S_IMODE((pi.root / "etc/pitill/pitill.toml").stat().st_mode) == 0o640
    assert "reboot to apply" in first.stdout

    after_first = pi.snapshot()
    second = pi.run()
    assert second.returncode == 0, second.stdout + second.stderr
    # The doctor runs with the service stopped (the service holds the pins), then it restarts.
    assert pi.changing_commands() == [
        "systemctl stop pitill.service",
        f"pitill doctor --config {pi.root}/etc/pitill/pitill.toml",
        "systemctl start pitill.service",
    ]
    assert "nothing to change" in second.stdout
    assert pi.snapshot() == after_first


def test_a_changed_checkout_is_reinstalled_and_the_service_restarted(
    pi: FakePi, tmp_path: Path
) -> None:
    source = tmp_path / "checkout"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPO / "firmware" / "pitill", source / "firmware" / "pitill", ignore=ignore)
    for part in ("pyproject.toml", "systemd", "hw"):
        copy = shutil.copytree if (REPO / part).is_dir() else shutil.copy
        copy(REPO / part, source / part)
    args = ("--source", str(source))
    assert pi.run(*args).returncode == 0
    (source / "firmware" / "pitill" / "__init__.py").write_text('__version__ = "0.1.1"\n')
    result = pi.run(*args)
    assert result.returncode == 0, result.stderr
    commands = pi.changing_commands()
    assert any(c.startswith("pip install") for c in commands)
    assert "systemctl restart pitill.service" in commands
    assert not any(c.startswith(("raspi-config", "apt-get", "useradd")) for c in commands)


def test_an_existing_config_is_never_overwritten(pi: FakePi) -> None:
    mine = '[terminal]\nterminal_id = "SHOP0001"\n'
    pi.write("etc/pitill/pitill.toml", mine)
    dry = pi.run("--dry-run")
    assert "pitill.toml exists: kept as it is" in dry.stdout
    assert "pitill.example.toml" not in dry.stdout
    result = pi.run()
    assert result.returncode == 0, result.stderr
    assert pi.read("etc/pitill/pitill.toml") == mine


def test_i2c_lines_are_merged_not_duplicated(pi: FakePi) -> None:
    pi.write(
        "boot/firmware/config.txt",
        "dtparam=audio=on\ndtparam=i2c_arm=on\ndtparam=i2c_arm_baudrate=100000\n"
        "enable_uart=1\n[cm5]\ndtoverlay=dwc2\n",
    )
    result = pi.run()
    assert result.returncode == 0, result.stderr
    assert not any(c.startswith("raspi-config nonint do_i2c") for c in pi.commands())
    assert pi.read("boot/firmware/config.txt") == (
        f"dtparam=audio=on\n{I2C_LINE}\nenable_uart=1\n[cm5]\ndtoverlay=dwc2\n"
    )


def test_a_line_in_a_model_section_moves_under_all(pi: FakePi) -> None:
    pi.write(
        "boot/firmware/config.txt",
        "dtparam=audio=on\nenable_uart=1\n[cm5]\ndtoverlay=dwc2\ndtparam=i2c_arm=on\n",
    )
    result = pi.run()
    assert result.returncode == 0, result.stderr
    assert pi.read("boot/firmware/config.txt") == (
        f"dtparam=audio=on\nenable_uart=1\n[cm5]\ndtoverlay=dwc2\n[all]\n{I2C_LINE}\n"
    )


OVERLAY_CMDLINE = "overlayroot=tmpfs " + CMDLINE_TXT
STATE_PARTITION = "LABEL=pitill-data /var/lib/pitill ext4 defaults,noatime 0 2\n"


@pytest.mark.parametrize(
    ("cmdline", "mounts", "fstab", "reason"),
    [
        (OVERLAY_CMDLINE, PROC_MOUNTS, FSTAB, "no separate writable partition"),
        ("boot=overlay " + CMDLINE_TXT, PROC_MOUNTS, FSTAB, "no separate writable partition"),
        (
            CMDLINE_TXT,
            "overlayroot / overlay rw,lowerdir=/media/root-ro 0 0\n" + PROC_MOUNTS,
            FSTAB + STATE_PARTITION,
            "mounted as an overlay right now",
        ),
        (OVERLAY_CMDLINE, PROC_MOUNTS, FSTAB + STATE_PARTITION, "add :recurse=0"),
        (
            "overlayroot=tmpfs:recurse=0 " + CMDLINE_TXT,
            PROC_MOUNTS,
            FSTAB + "tmpfs /var/lib/pitill tmpfs defaults 0 0\n",  # RAM again
            "no separate writable partition",
        ),
    ],
    ids=["overlayroot", "boot-overlay", "overlay-active", "recurse", "tmpfs-state"],
)
def test_an_overlay_root_that_keeps_the_journal_in_ram_is_refused(
    pi: FakePi, cmdline: str, mounts: str, fstab: str, reason: str
) -> None:
    pi.write("boot/firmware/cmdline.txt", cmdline)
    pi.write("proc/mounts", mounts)
    pi.write("etc/fstab", fstab)
    before = pi.snapshot()
    result = pi.run()
    assert result.returncode == 3
    assert reason in result.stderr
    assert "/var/lib/pitill" in result.stderr
    assert "lost at power-off" in result.stderr
    assert "LABEL=pitill-data  /var/lib/pitill  ext4" in result.stderr  # how to fix it
    assert pi.snapshot() == before
    assert pi.changing_commands() == []


def test_an_overlay_root_with_a_journal_partition_is_accepted(pi: FakePi) -> None:
    pi.write("boot/firmware/cmdline.txt", "overlayroot=tmpfs:recurse=0 " + CMDLINE_TXT)
    pi.write("etc/fstab", FSTAB + STATE_PARTITION)
    result = pi.run("--dry-run")
    assert result.returncode == 0, result.stderr
    assert "the journal has its own partition: LABEL=pitill-data /var/lib/pitill" in result.stdout


def test_other_releases_are_refused(pi: FakePi) -> None:
    pi.write("etc/os-release", "VERSION_CODENAME=bullseye\n")
    result = pi.run("--dry-run")
    assert result.returncode == 1
    assert "needs Raspberry Pi OS Bookworm (found 'bullseye')" in result.stderr


def test_doctor_problems_fail_the_install_when_no_reboot_is_pending(pi: FakePi) -> None:
    assert pi.run().returncode == 0
    result = pi.run(doctor_rc=1)
    assert result.returncode == 4
    assert "pitill doctor found problems" in result.stderr


def test_a_failing_step_stops_the_install(pi: FakePi) -> None:
    result = pi.run(apt_fails=True)
    assert result.returncode == 100
    commands = pi.changing_commands()
    assert commands[-1].startswith("apt-get install")
    assert not any(c.startswith(("useradd", "pip", "systemctl enable")) for c in commands)


def test_help_and_bad_usage(pi: FakePi) -> None:
    helped = subprocess.run([str(INSTALLER), "--help"], capture_output=True, text=True, check=False)
    assert helped.returncode == 0
    assert "sudo tools/install-pi --dry-run" in helped.stdout
    bad = pi.run("--frobnicate")
    assert bad.returncode == 2
    assert "unknown option '--frobnicate'" in bad.stderr


def test_the_example_config_it_installs_loads() -> None:
    load_config(REPO / "hw" / "pitill.example.toml")


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shellcheck() -> None:
    result = subprocess.run(
        ["shellcheck", str(INSTALLER)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout
