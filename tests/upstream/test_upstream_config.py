"""UpstreamConfig's hosts list, TLS and failing-host keys, through the strict TOML loader."""

from __future__ import annotations

import re

import pytest

from pitill.config import UpstreamConfig, config_from_dict
from pitill.errors import ConfigError


def _upstream(**raw: object) -> UpstreamConfig:
    return config_from_dict({"upstream": raw}).upstream


def test_without_hosts_the_one_host_is_the_endpoint() -> None:
    assert UpstreamConfig().endpoints() == (("acquirer.pitill.test", 8583),)
    assert _upstream(host="bank.test", port=9000).endpoints() == (("bank.test", 9000),)


def test_hosts_in_order_with_their_ports_or_the_default_port() -> None:
    upstream = _upstream(
        port=7000, hosts=["auth1.bank.test:8583", "auth2.bank.test", "[::1]:9", "::2", "[::3]"]
    )
    assert upstream.endpoints() == (
        ("auth1.bank.test", 8583),
        ("auth2.bank.test", 7000),
        ("::1", 9),
        ("::2", 7000),
        ("::3", 7000),
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"hosts": "a.test"}, "upstream.hosts: must be a list"),
        ({"hosts": [8583]}, "upstream.hosts[0]: must be a string"),
        ({"hosts": ["a.test:x"]}, "upstream.hosts[0]: 'a.test:x' is not a host (port 'x'"),
        ({"hosts": ["a.test", "b.test:0"]}, "upstream.hosts[1]: 'b.test:0' is not a host"),
        ({"hosts": [""]}, "upstream.hosts[0]: '' is not a host"),
        ({"hosts": ["[::1"]}, "upstream.hosts[0]: '[::1' is not a host"),
        ({"hosts": [":8583"]}, "no host name"),
        ({"hosts": ["a.test", "a.test:8583"]}, "upstream.hosts[1]: 'a.test:8583' is listed twice"),
        ({"host": "bank.test", "hosts": ["a.test"]}, "upstream.host: 'bank.test' is set together"),
        ({"tls_ca_file": "/etc/ca.pem"}, "upstream.tls_ca_file: set to '/etc/ca.pem' while"),
        ({"tls": "yes"}, "upstream.tls: must be true or false"),
        ({"request_fail_threshold": 0}, "request_fail_threshold: must be 1..1000000, got 0"),
        ({"failing_hold_s": 0}, "upstream.failing_hold_s: must be 0.01..3600 s, got 0.0"),
    ],
)
def test_bad_values_name_the_key(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        _upstream(**raw)


def test_tls_and_cache_keys_load() -> None:
    upstream = _upstream(tls=True, tls_ca_file="/etc/pitill/ca.pem", cache_resolved=False)
    assert (upstream.tls, upstream.tls_ca_file, upstream.cache_resolved) == (
        True,
        "/etc/pitill/ca.pem",
        False,
    )
