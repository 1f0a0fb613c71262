"""Where a web page listens: the --web ADDR and [web] listen syntax (no aiohttp here: the config
checks addresses with this without loading the web stack)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from pitill.errors import ConfigError

DEFAULT_PORT = 8580


@dataclass(frozen=True)
class BindAddress:
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def url(self, port: int | None = None) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{port if port is not None else self.port}/"


def parse_bind(text: str | None, what: str = "--web") -> BindAddress:
    """ADDR as given to --web: HOST:PORT, [V6]:PORT, HOST or PORT; default 127.0.0.1:8580."""
    if text is None or text == "":
        return BindAddress("127.0.0.1", DEFAULT_PORT)
    raw = text.strip()
    host, port_text = "127.0.0.1", ""
    if raw.startswith("["):
        end = raw.find("]")
        if end < 0 or raw[end + 1 : end + 2] not in ("", ":"):
            raise ConfigError(f"{what} {text!r}: write an IPv6 address as [::1]:8580")
        host, port_text = raw[1:end], raw[end + 2 :]
    elif raw.count(":") == 1:
        host, port_text = raw.split(":")
    elif raw.isdigit():
        port_text = raw
    else:
        host = raw
    if not port_text:
        port = DEFAULT_PORT
    elif port_text.isdigit() and 0 <= int(port_text) <= 65535:
        port = int(port_text)
    else:
        raise ConfigError(f"{what} {text!r}: the port must be 0-65535, e.g. 127.0.0.1:8580")
    if not host or any(c.isspace() or c in "/?#@" for c in host):
        raise ConfigError(f"{what} {text!r}: not an address; e.g. 127.0.0.1:8580 or 0.0.0.0:8580")
    return BindAddress(host, port)
