"""`pitill doctor` and the card readers: a PN532 (the emulated one, through nfcpy) and a USB
stripe reader, found or not, with what to do."""

from __future__ import annotations

from pathlib import Path

from pitill.config import ReaderConfig
from pitill.doctor import check_pn532, check_usb_stripe_reader, run_doctor
from pitill.sim.pn532_emulator import Ntag424Tag, Pn532Emulator, UidTag

META_KEY = bytes(range(16))
UID = bytes.fromhex("04A1B2C3D4E5F6")


def test_a_pn532_is_found_with_its_firmware_and_a_test_tap(tmp_path: Path) -> None:
    key_file = tmp_path / "meta.key"
    key_file.write_text(META_KEY.hex(), encoding="ascii")
    with Pn532Emulator() as emulator:
        check = check_pn532(emulator.slave_path)
        assert check.ok and check.detail.startswith(f"PN532v1.6 on {emulator.slave_path}")
        assert "UID only" in check.detail and "no card (hold one on it" in check.detail
        emulator.tap(UidTag(UID), polls=10)
        check = check_pn532(emulator.slave_path, str(key_file))
        assert check.ok and "SUN cards readable" in check.detail
        assert check.detail.endswith("on the reader: a uid_only card 04********E5F6")
        emulator.lift()
        emulator.tap(Ntag424Tag.enrolled(UID, META_KEY, bytes(16)), polls=10)
        check = check_pn532(emulator.slave_path, str(key_file))
        assert check.detail.endswith("a sun card 04********E5F6, read counter 1")


def test_no_pn532_says_how_to_wire_it(tmp_path: Path) -> None:
    check = check_pn532(str(tmp_path / "ttyNONE"))
    assert not check.ok and "no PN532 answers on" in check.detail
    assert "HSU" in check.fix and "3.3 V" in check.fix and "I2C" in check.fix
    bad_key = tmp_path / "meta.key"
    bad_key.write_text("0102", encoding="ascii")
    check = check_pn532(str(tmp_path / "ttyNONE"), str(bad_key))
    assert not check.ok and "holds 2 bytes" in check.detail


def test_usb_stripe_reader_found_or_not(tmp_path: Path) -> None:
    missing = check_usb_stripe_reader(str(tmp_path / "*-event-kbd"))
    assert not missing.ok and "reader.port" in missing.fix
    (tmp_path / "usb-MagTek-event-kbd").touch()
    found = check_usb_stripe_reader(str(tmp_path / "*-event-kbd"))
    assert found.ok and found.name == "USB stripe reader"


def test_run_doctor_checks_the_configured_reader(tmp_path: Path) -> None:
    with Pn532Emulator() as emulator:
        reader = ReaderConfig(port=emulator.slave_path, type="pn532")
        checks = run_doctor(display_i2c=None, serial_port=emulator.slave_path, reader=reader)
        assert [c.ok for c in checks if c.name == "PN532"] == [True]
    usb = ReaderConfig(port=str(tmp_path / "none"), type="usb-stripe")
    checks = run_doctor(display_i2c=None, serial_port=None, reader=usb)
    assert [c.name for c in checks if c.name.startswith("USB stripe")] == ["USB stripe reader"]
