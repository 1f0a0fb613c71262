"""tools/install-pi against a fake Raspberry Pi OS root in tmp_path.

`--root DIR` makes the installer read and write every system path under DIR. The commands that
change a real system (raspi-config, apt-get, useradd, systemctl, ...) are replaced by stubs on
PATH that append their arguments to a log and emulate just enough (raspi-config edits the fake
config.txt as the real one does, apt-get records packages that dpkg-query then reports, pip
builds in the directory it is given as setuptools does) for a second run to see the first one's
work. File tools (install, cmp, awk, sed, tar) are the real ones, acting on the fake root.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
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
    # raspi-config's own logic (RPi-Distro/raspi-config, 2024): the boot directory, the Pi 5 test
    # (it reads /proc/cpuinfo; the model name stands in here) and set_config_var, which rewrites
    # every line "#?KEY=..." to KEY=VALUE, or appends that line when there is none.
    "raspi-config": r"""
        boot="$FAKE_ROOT/boot"; [ -e "$boot/firmware/config.txt" ] && boot="$boot/firmware"
        cfg="$boot/config.txt"; cmdline="$boot/cmdline.txt"
        set_config_var() {
            if grep -Eq "^#?[[:space:]]*$1=" "$cfg"; then
                sed -Ei "s/^#?[[:space:]]*$1=.*/$1=$2/" "$cfg"
            else
                echo "$1=$2" >>"$cfg"
            fi
        }
        case "$2 $3" in
        "do_i2c 0") set_config_var dtparam=i2c_arm on ;;
        "do_serial_hw 0")
            if grep -Eq 'Raspberry Pi (5|500|Compute Module 5)' "$FAKE_ROOT/proc/device-tree/model"
            then set_config_var dtparam=uart0 on
            else set_config_var enable_uart 1
            fi ;;
        "do_serial_cons 1") sed -Ei 's/console=(serial0|ttyAMA0),[0-9]+ //' "$cmdline" ;;
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
    "usermod": r"""
        # usermod --append --groups a,b,c pitill: add the user to each group's member list
        for group in $(echo "$3" | tr , ' '); do
            sed -Ei "/^$group:/{s/:$/:$4/;t;s/$/,$4/}" "$FAKE_ROOT/etc/group"
        done
    """,
    "runuser": r"""
        shift 3  # runuser -u pitill -- COMMAND...
        echo "cwd=$PWD" >"$STUB_STATE/doctor-cwd"
        exec "$@"
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
        start | restart)
            if [ -n "$STUB_START_FAILS" ]; then
                echo "Job for pitill.service failed: the control process exited with an error" >&2
                exit 1
            fi
            touch "$STUB_STATE/active" ;;
        stop) rm -f "$STUB_STATE/active" ;;
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
        # pip install --no-cache-dir DIR[usb] builds in DIR, as setuptools does
        for source; do :; done
        source="${source%\[usb\]}"
        echo "$source" >"$STUB_STATE/pip-source"
        mkdir -p "$source/build/lib/pitill" "$source/firmware/pitill.egg-info"
        touch "$source/build/lib/pitill/__init__.py" "$source/firmware/pitill.egg-info/PKG-INFO"
        cp "$STUB_DIR/.venv-pitill" "$(dirname "$0")/pitill"
    """,
    ".venv-pitill": r"""
        exit "${STUB_DOCTOR_RC:-0}"
    """,
    "chgrp": "",
    "udevadm": "",
}
READ_ONLY_COMMANDS = ("dpkg-query ", "systemctl is-active ", "systemctl is-enabled ")
REBOOT_MARKER = "run/pitill-install-reboot-pending"


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
        (self.root / "run/systemd/system").mkdir(parents=True)  # systemd is PID 1
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
        self,
        *args: str,
        doctor_rc: int = 0,
        apt_fails: bool = False,
        start_fails: bool = False,
        cwd: Path | None = None,
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
            "STUB_START_FAILS": "1" if start_fails else "",
        }
        return subprocess.run(
            [str(INSTALLER), "--root", str(self.root), "--source", str(REPO), *args],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def reboot(self) -> None:
        """What a reboot changes for the installer: /run is empty, an enabled pitill runs."""
        (self.root / REBOOT_MARKER).unlink(missing_ok=True)
        if (self.state / "enabled").exists():
            (self.state / "active").touch()

    def groups_of(self, user: str) -> set[str]:
        groups = set()
        for line in self.read("etc/group").splitlines():
            name, _, _, members = line.split(":")
            if user in members.split(","):
                groups.add(name)
        return groups

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
        "would run: usermod --append --groups gpio,i2c,spi,dialout,input pitill",
        f"would run: python3 -m venv --system-site-packages {root}/opt/pitill/venv",
        "would copy pyproject.toml, README.md and firmware/ to ",
        f"would run: {root}/opt/pitill/venv/bin/pip install --no-cache-dir '/",
        "/pitill-build.XXXXXX[usb]'\n",
        f"would run: install -D -m 0644 {REPO}/systemd/pitill.service "
        f"{root}/etc/systemd/system/pitill.service",
        "would run: systemctl daemon-reload",
        f"would run: install -D -m 0644 {REPO}/systemd/99-pitill.rules "
        f"{root}/etc/udev/rules.d/99-pitill.rules",
        "would run: udevadm control --reload",
        f"would run: install -d -m 0750 {root}/etc/pitill",
        f"would run: install -m 0640 {REPO}/hw/pitill.example.toml {root}/etc/pitill/pitill.toml",
        "would run: systemctl enable pitill.service",
        "pitill.service starts at the reboot that applies the config.txt changes",
        f"would run: runuser -u pitill -- {root}/opt/pitill/venv/bin/pitill doctor "
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
    assert "do_serial_hw" not in result.stdout  # enable_uart=1 is the debug connector's on a Pi 5


def doctor_commands(pi: FakePi) -> list[str]:
    """The doctor as the installer runs it: as the pitill user (runuser), then pitill itself."""
    config = f"--config {pi.root}/etc/pitill/pitill.toml"
    return [
        f"runuser -u pitill -- {pi.root}/opt/pitill/venv/bin/pitill doctor {config}",
        f"pitill doctor {config}",
    ]


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
        "systemctl enable pitill.service",
        *doctor_commands(pi),
    ):
        assert expected in commands, f"{expected!r} not run: {commands}"
    # I2C and the UART are not on before the reboot: the service starts then, not now.
    assert not any(c.startswith(("systemctl start", "systemctl enable --now")) for c in commands)
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
    second = pi.run()  # before the reboot
    assert second.returncode == 0, second.stdout + second.stderr
    assert pi.changing_commands() == doctor_commands(pi)
    assert "nothing to change" in second.stdout
    assert "reboot to apply" in second.stdout  # still true: it has not happened
    assert pi.snapshot() == after_first

    pi.reboot()
    after_reboot = pi.snapshot()
    third = pi.run()
    assert third.returncode == 0, third.stdout + third.stderr
    # The doctor runs with the service stopped (the service holds the pins), then it restarts.
    assert pi.changing_commands() == [
        "systemctl stop pitill.service",
        *doctor_commands(pi),
        "systemctl start pitill.service",
    ]
    assert "nothing to change: pitill is installed and running" in third.stdout
    assert "reboot" not in third.stdout
    assert pi.snapshot() == after_reboot


def test_a_changed_checkout_is_reinstalled_and_the_service_restarted(
    pi: FakePi, tmp_path: Path
) -> None:
    source = copy_checkout(tmp_path / "checkout")
    args = ("--source", str(source))
    assert pi.run(*args).returncode == 0
    pi.reboot()
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
    pending = pi.run(doctor_rc=1)  # expected until the reboot turns I2C on
    assert pending.returncode == 0, pending.stderr
    assert "after the reboot check again with: sudo -u pitill " in pending.stdout
    pi.reboot()
    result = pi.run(doctor_rc=1)
    assert result.returncode == 4
    assert "pitill doctor found problems" in result.stderr


def test_a_failing_step_stops_the_install(pi: FakePi) -> None:
    result = pi.run(apt_fails=True)
    assert result.returncode == 100
    commands = pi.changing_commands()
    assert commands[-1].startswith("apt-get install")
    assert not any(c.startswith(("useradd", "pip", "systemctl enable")) for c in commands)


def copy_checkout(source: Path) -> Path:
    """A copy of the files the installer reads from a checkout."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for part in ("firmware/pitill", "systemd", "hw", "tools"):
        shutil.copytree(REPO / part, source / part, ignore=ignore)
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / part, source / part)
    return source


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


# --- A Pi install that settles (issue 10) --------------------------------------------------------

# config.txt as it is once I2C and the serial console are done, for the UART cases below.
SETTLED_CONFIG = "dtparam=audio=on\n" + I2C_LINE + "\n"
SETTLED_CMDLINE = CMDLINE_TXT.replace("console=serial0,115200 ", "")
MODELS = {
    "zero2w": "Raspberry Pi Zero 2 W Rev 1.0",
    "pi3": "Raspberry Pi 3 Model B Plus Rev 1.3",
    "pi4": PI4,
    "pi400": "Raspberry Pi 400 Rev 1.0",
    "pi5": PI5,
    "pi500": "Raspberry Pi 500 Rev 1.0",
    "cm5": "Raspberry Pi Compute Module 5 Rev 1.0",
}
PI5_FAMILY = ("pi5", "pi500", "cm5")


@pytest.mark.parametrize("boot", ["boot/firmware", "boot"])
@pytest.mark.parametrize("model", MODELS)
def test_a_second_run_reports_nothing_to_change_on_every_model(
    pi: FakePi, model: str, boot: str
) -> None:
    pi.write("proc/device-tree/model", MODELS[model] + "\0")
    if boot == "boot":  # upgraded in place from Bullseye: the FAT partition is still at /boot
        shutil.rmtree(pi.root / "boot/firmware")
        pi.write("boot/config.txt", CONFIG_TXT)
        pi.write("boot/cmdline.txt", CMDLINE_TXT)
    first = pi.run()
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"in /{boot}/config.txt" in first.stdout
    config = pi.read(f"{boot}/config.txt").splitlines()
    if model in PI5_FAMILY:
        assert config.count("dtparam=uart0=on") == 1
        assert "enable_uart=1" not in config
    else:
        assert config.count("enable_uart=1") == 1
        assert not any("uart0" in line for line in config)
    pi.reboot()
    settled = pi.snapshot()
    second = pi.run()
    assert second.returncode == 0, second.stdout + second.stderr
    assert "nothing to change" in second.stdout
    assert "reboot" not in second.stdout
    assert not any(c.startswith("raspi-config") for c in pi.commands())
    assert pi.snapshot() == settled


@pytest.mark.parametrize(
    ("model", "uart_line"),
    [
        ("pi5", "dtparam=uart0=on"),  # what raspi-config writes on a Pi 5
        ("pi5", "dtparam=uart0"),  # a bare dtparam means on
        ("pi5", "dtparam=audio=on,uart0=on"),
        ("pi5", "  dtoverlay=uart0-pi5"),
        ("cm5", "dtparam=uart0=on"),
        ("pi4", "enable_uart=1"),
        ("zero2w", "enable_uart=1"),
    ],
)
def test_the_uart_as_raspi_config_or_the_owner_enabled_it_is_recognised(
    pi: FakePi, model: str, uart_line: str
) -> None:
    pi.write("proc/device-tree/model", MODELS[model] + "\0")
    pi.write("boot/firmware/config.txt", SETTLED_CONFIG + uart_line + "\n")
    pi.write("boot/firmware/cmdline.txt", SETTLED_CMDLINE)
    before = pi.read("boot/firmware/config.txt")
    result = pi.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "config.txt" not in result.stdout
    assert "reboot" not in result.stdout
    assert not any(c.startswith("raspi-config") for c in pi.commands())
    assert pi.read("boot/firmware/config.txt") == before


def test_raspi_config_then_the_installer_on_a_pi_5(pi: FakePi) -> None:
    """The owner turned the UART on with raspi-config first: the installer sees it."""
    pi.write("proc/device-tree/model", PI5 + "\0")
    pi.write("boot/firmware/config.txt", SETTLED_CONFIG)
    pi.write("boot/firmware/cmdline.txt", SETTLED_CMDLINE)
    env = {**os.environ, "FAKE_ROOT": str(pi.root), "STUB_LOG": str(pi.log)}
    raspi_config = [str(pi.stubs / "raspi-config"), "nonint", "do_serial_hw", "0"]
    subprocess.run(raspi_config, env=env, check=True, timeout=10)
    assert pi.read("boot/firmware/config.txt") == SETTLED_CONFIG + "dtparam=uart0=on\n"
    result = pi.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "uart0" not in result.stdout
    assert "reboot" not in result.stdout


@pytest.mark.parametrize("model", ["pi5", "pi4"])
def test_a_uart_switched_off_is_switched_on(pi: FakePi, model: str) -> None:
    pi.write("proc/device-tree/model", MODELS[model] + "\0")
    off = "dtparam=uart0=off" if model == "pi5" else "enable_uart=0"
    pi.write("boot/firmware/config.txt", SETTLED_CONFIG + off + "\n")
    pi.write("boot/firmware/cmdline.txt", SETTLED_CMDLINE)
    result = pi.run()
    assert result.returncode == 0, result.stdout + result.stderr
    on = "dtparam=uart0=on" if model == "pi5" else "enable_uart=1"
    assert pi.read("boot/firmware/config.txt") == SETTLED_CONFIG + on + "\n"
    assert "reboot to apply" in result.stdout


def test_a_boot_config_that_only_points_to_the_firmware_partition_is_refused(pi: FakePi) -> None:
    shutil.rmtree(pi.root / "boot/firmware")
    pi.write("boot/config.txt", "DO NOT EDIT THIS FILE\n\nThe file you are looking for has moved\n")
    pi.write("boot/cmdline.txt", CMDLINE_TXT)
    result = pi.run("--dry-run")
    assert result.returncode == 1
    assert "mount the boot partition at /boot/firmware" in result.stderr


def test_a_service_that_cannot_start_still_gets_the_doctor(pi: FakePi) -> None:
    """The display is not wired yet: pitill exits at start. The install still finishes."""
    pi.write("boot/firmware/config.txt", SETTLED_CONFIG + "enable_uart=1\n")
    pi.write("boot/firmware/cmdline.txt", SETTLED_CMDLINE)
    result = pi.run(start_fails=True, doctor_rc=1)
    assert result.returncode == 4, result.stdout + result.stderr
    commands = pi.changing_commands()
    start = commands.index("systemctl start pitill.service")
    # Its restart loop is stopped (it would take the pins the doctor checks), then the doctor runs.
    # Its failed starts are forgotten, so the owner's restart after the fix is not refused.
    assert commands[start + 1 :] == [
        "systemctl stop pitill.service",
        "systemctl reset-failed pitill.service",
        *doctor_commands(pi),
    ]
    for installed in ("etc/systemd/system/pitill.service", "etc/pitill/pitill.toml"):
        assert (pi.root / installed).exists()
    assert (pi.root / "opt/pitill/venv/bin/pitill").exists()
    assert "pitill.service did not start; the doctor below checks why" in result.stdout
    assert result.stderr.splitlines()[-4:] == [
        "install-pi: installed, but pitill needs attention:",
        "  - pitill.service did not start: systemctl status pitill; journalctl -u pitill -b -n 30",
        "  - pitill doctor found problems: each FAIL line above says what to fix",
        "  then: sudo systemctl restart pitill    check again: sudo -u pitill "
        "/opt/pitill/venv/bin/pitill doctor --config /etc/pitill/pitill.toml",
    ]
    # Once it is wired, the next run starts it and says all is well.
    fixed = pi.run()
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "systemctl start pitill.service" in pi.changing_commands()


def test_the_pitill_user_gets_the_device_groups(pi: FakePi) -> None:
    assert pi.run().returncode == 0
    assert pi.groups_of("pitill") >= {"gpio", "i2c", "spi", "dialout", "input"}
    assert pi.run().returncode == 0
    assert not any(c.startswith("usermod") for c in pi.commands())


def test_an_existing_pitill_user_gets_only_the_groups_it_lacks(pi: FakePi) -> None:
    pi.write("etc/passwd", pi.read("etc/passwd") + "pitill:x:999:999::/nonexistent:/bin/false\n")
    groups = pi.read("etc/group").replace("dialout:x:20:", "dialout:x:20:pi,pitill")
    pi.write("etc/group", groups + "pitill:x:999:\n")
    assert pi.run().returncode == 0
    assert [c for c in pi.commands() if c.startswith(("usermod", "useradd"))] == [
        "usermod --append --groups gpio,i2c,spi,input pitill"
    ]
    assert "dialout:x:20:pi,pitill" in pi.read("etc/group").splitlines()


def test_the_checkout_stays_clean(pi: FakePi, tmp_path: Path) -> None:
    """sudo tools/install-pi from the owner's checkout leaves no build files there."""
    checkout = copy_checkout(tmp_path / "checkout")
    before = sorted(str(p.relative_to(checkout)) for p in checkout.rglob("*"))
    result = pi.run("--source", str(checkout), cwd=checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(str(p.relative_to(checkout)) for p in checkout.rglob("*")) == before
    built_in = Path((pi.state / "pip-source").read_text().strip())
    assert not built_in.is_relative_to(checkout)
    assert not built_in.exists()  # the copy is removed after pip
    assert (pi.state / "doctor-cwd").read_text() == "cwd=/\n"


def test_without_systemd_it_installs_what_it_can(pi: FakePi) -> None:
    """Building an SD card image in a chroot: no systemd, no udev, no pins to check."""
    shutil.rmtree(pi.root / "run/systemd")
    result = pi.run()
    assert result.returncode == 0, result.stdout + result.stderr
    notes = [line for line in result.stdout.splitlines() if "systemd is not running" in line]
    assert notes == [
        "install-pi: systemd is not running (a chroot?): installing without starting pitill, "
        "reloading systemd and udev, or running the doctor; pitill starts at the Pi's next boot"
    ]
    commands = pi.changing_commands()
    assert "systemctl enable pitill.service" in commands
    assert any(c.startswith("pip install") for c in commands)
    assert not [
        c
        for c in commands
        if c.startswith(("systemctl", "udevadm", "runuser", "pitill"))
        and c != "systemctl enable pitill.service"
    ]
    assert not any(c.startswith("systemctl is-active") for c in pi.commands())
    for installed in ("etc/systemd/system/pitill.service", "etc/udev/rules.d/99-pitill.rules"):
        assert (pi.root / installed).exists()
    assert "sudo -u pitill /opt/pitill/venv/bin/pitill doctor" in result.stdout
    # The image may boot on any model (this machine is not that Pi): the UART lines of each.
    config = pi.read("boot/firmware/config.txt").splitlines()
    assert config.count("enable_uart=1") == config.count("dtparam=uart0=on") == 1
    assert not any(c.startswith("raspi-config nonint do_serial_hw") for c in commands)
    second = pi.run()
    assert "nothing to change" in second.stdout
    assert "reboot" not in second.stdout + second.stderr


def test_no_start_installs_and_enables_without_starting(pi: FakePi) -> None:
    pi.write("boot/firmware/config.txt", SETTLED_CONFIG + "enable_uart=1\n")
    pi.write("boot/firmware/cmdline.txt", SETTLED_CMDLINE)
    result = pi.run("--no-start")
    assert result.returncode == 0, result.stdout + result.stderr
    commands = pi.changing_commands()
    assert "systemctl enable pitill.service" in commands
    assert "systemctl daemon-reload" in commands  # systemd runs: it learns of the new unit
    assert not any(c.startswith(("systemctl start", "systemctl restart")) for c in commands)
    assert commands[-2:] == doctor_commands(pi)  # nothing holds the pins: the doctor runs


def test_the_doctor_needs_no_writable_working_directory(tmp_path: Path) -> None:
    """lgpio makes its notification pipe in LG_WD, by default the working directory, on import.

    A stand-in lgpio records where; `pitill doctor` run from a checkout must not put it there.
    """
    fake = tmp_path / "fake-lgpio"
    fake.mkdir()
    (fake / "lgpio.py").write_text(
        "import os\n"
        "workdir = os.environ.get('LG_WD', '.')\n"
        "open(os.path.join(workdir, '.lgd-nfy-3'), 'w').close()\n"
        "SET_PULL_NONE = SET_PULL_UP = SET_PULL_DOWN = BOTH_EDGES = 0\n"
        "def gpiochip_open(chip):\n"
        "    raise OSError('stand-in lgpio: no GPIO chip')\n"
    )
    config = tmp_path / "pitill.toml"
    config.write_text('[gpio]\npin_factory = "lgpio"\n')
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "LG_WD"}
    env["PYTHONPATH"] = os.pathsep.join([str(fake), env.get("PYTHONPATH", "")])
    env["TMPDIR"] = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "pitill.cli", "doctor", "--config", str(config)],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "stand-in lgpio" in result.stdout or "pin factory" in result.stdout, result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert list(checkout.iterdir()) == []
    assert list((tmp_path / "tmp").iterdir()) == []  # its private directory is gone at exit


@pytest.mark.parametrize(
    "config_txt",
    [
        CONFIG_TXT,
        # a line of each already there, one of them somewhere else, one switched off
        "[cm4]\nenable_uart=0\n[all]\n  dtparam=uart0=off\ndtparam=audio=on\n",
    ],
    ids=["bookworm", "set-elsewhere"],
)
def test_an_unknown_model_gets_the_uart_lines_of_every_model(pi: FakePi, config_txt: str) -> None:
    (pi.root / "proc/device-tree/model").unlink()
    pi.write("boot/firmware/config.txt", config_txt)
    first = pi.run()
    assert first.returncode == 0, first.stdout + first.stderr
    assert "setting the UART lines of every model" in first.stdout
    config = pi.read("boot/firmware/config.txt").splitlines()
    assert config.count("enable_uart=1") == config.count("dtparam=uart0=on") == 1
    assert not any(line.endswith(("enable_uart=0", "uart0=off")) for line in config)
    pi.reboot()
    second = pi.run()
    assert "nothing to change" in second.stdout
    assert not any(c.startswith("raspi-config") for c in pi.commands())


def test_the_install_is_readable_by_the_pitill_user_whatever_roots_umask(pi: FakePi) -> None:
    previous = os.umask(0o077)  # a hardened root; the installer's children inherit it
    try:
        result = pi.run()
    finally:
        os.umask(previous)
    assert result.returncode == 0, result.stdout + result.stderr
    for path in ("opt/pitill", "opt/pitill/venv/bin", "opt/pitill/source.sha256"):
        others = 0o005 if (pi.root / path).is_dir() else 0o004  # r-x for a directory, r-- a file
        assert (pi.root / path).stat().st_mode & others == others, path
