"""Enrolled terminals: `pitill host terminal add` issues a certificate and a config that `pitill
sim --config` takes as it is; `pitill host serve --tls` lets only enrolled terminals in, each only
as itself. Real processes, real TLS on loopback."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from host_messages import PAN, request, serving_hosts
from pitill.host.cli import terminal_id_for
from pitill.upstream.framing import frame, read_frame
from pitill.upstream.messages import decode, encode
from pitill_cli import run_pitill as pitill


@pytest.fixture
def host(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    data = tmp_path / "host"
    assert pitill("host", "account", "add", PAN, "--balance", "50", "--data-dir", str(data)).stdout
    with serving_hosts("--tls", "--data-dir", str(data)) as (port,):
        yield data, port


def enroll(data: Path, name: str, out: Path, port: int) -> Path:
    done = pitill(
        "host", "terminal", "add", name, "--out", str(out), "--port", str(port),
        "--data-dir", str(data),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out / "terminal.toml"


def client_context(out: Path | None, ca: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if out is not None:
        context.load_cert_chain(str(out / "terminal.pem"), str(out / "terminal-key.pem"))
    return context


def exchange(port: int, context: ssl.SSLContext, terminal_id: str) -> str | None:
    """One sale on a fresh TLS connection: field 39 of the answer, or None when refused."""

    async def main() -> str | None:
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
            )
            writer.write(frame(encode(request("0200", 9, 100, terminal_id=terminal_id))))
            await writer.drain()
            data = await read_frame(reader)
            writer.close()
        except (ssl.SSLError, ConnectionError, OSError):
            return None
        return decode(data)["39"] if data is not None else None

    return asyncio.run(main())


def test_an_enrolled_terminal_sells_and_only_as_itself(
    tmp_path: Path, host: tuple[Path, int]
) -> None:
    data, port = host
    config = enroll(data, "till-1", tmp_path / "till-1", port)
    assert 'terminal_id = "TILL1000"' in config.read_text()
    script = tmp_path / "sale.pitill"
    script.write_text(
        f'expect link online\npress 1 0 0 0 OK\nswipe {PAN} 3012\nexpect screen "APPROVED"\n',
        encoding="utf-8",
    )
    sold = pitill(
        "sim", "--config", str(config), "--script", str(script),
        "--data-dir", str(tmp_path / "t1"), "--expect-timeout", "15",
    )  # fmt: skip
    assert sold.returncode == 0, sold.stdout + sold.stderr
    assert "balance 40.00" in pitill("host", "account", "show", PAN, "--data-dir", str(data)).stdout

    ca = data / "ca.pem"
    till = tmp_path / "till-1"
    assert exchange(port, client_context(till, ca), "TILL1000") == "00"
    assert exchange(port, client_context(till, ca), "TILL2000") == "58"  # not as another
    listed = pitill("host", "terminal", "list", "--data-dir", str(data)).stdout
    assert "TILL1000  till-1" in listed and "last seen" in listed


def test_strangers_and_revoked_terminals_are_refused(
    tmp_path: Path, host: tuple[Path, int]
) -> None:
    data, port = host
    ca = data / "ca.pem"
    assert exchange(port, client_context(None, ca), "TILL1000") is None  # no certificate
    other = tmp_path / "other-program"
    enroll(other, "till-1", tmp_path / "stranger", port)  # the same name, another program's CA
    assert exchange(port, client_context(tmp_path / "stranger", ca), "TILL1000") is None
    enroll(data, "till-1", tmp_path / "till-1", port)
    assert exchange(port, client_context(tmp_path / "till-1", ca), "TILL1000") == "00"
    enroll(data, "till-1", tmp_path / "again", port)  # re-enrolled: the old certificate is out
    assert exchange(port, client_context(tmp_path / "till-1", ca), "TILL1000") is None
    assert exchange(port, client_context(tmp_path / "again", ca), "TILL1000") == "00"
    assert pitill("host", "terminal", "revoke", "TILL1000", "--data-dir", str(data)).returncode == 0
    assert exchange(port, client_context(tmp_path / "again", ca), "TILL1000") is None


def test_terminal_ids() -> None:
    assert terminal_id_for("till-1", None) == "TILL1000"
    assert terminal_id_for("Canteen North Till", None) == "CANTEENN"
    assert terminal_id_for("x", "KIOSK007") == "KIOSK007"


def test_enrolment_refuses_an_id_taken_by_another_terminal_and_a_bad_host(tmp_path: Path) -> None:
    data = tmp_path / "host"
    enroll(data, "till-1", tmp_path / "till-1", 8583)
    taken = pitill("host", "terminal", "add", "till1", "--out", str(tmp_path / "t"),
                   "--data-dir", str(data))  # fmt: skip
    assert taken.returncode == 2 and "belongs to the enrolled terminal 'till-1'" in taken.stderr
    assert "TILL1000  till-1" in pitill("host", "terminal", "list", "--data-dir", str(data)).stdout
    by_name = pitill("host", "terminal", "revoke", "till-1", "--data-dir", str(data))
    assert by_name.returncode == 2 and "the 8-character id" in by_name.stderr, by_name.stderr
    for bad_host in ("", "a b", 'x"\ny = 1'):
        done = pitill("host", "terminal", "add", "till-2", "--out", str(tmp_path / "t2"),
                      "--host", bad_host, "--data-dir", str(data))  # fmt: skip
        assert done.returncode == 2 and "upstream.host" in done.stderr, done.stderr
        assert done.stderr.count("\n") == 1 and not (tmp_path / "t2").exists()
    odd = tmp_path / 'out "quoted" \\ dir'
    config = enroll(data, "till-3", odd, 8583)
    assert pitill("doctor", "--config", str(config)).stdout.startswith("ok    config")
