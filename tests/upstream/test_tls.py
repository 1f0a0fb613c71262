"""TLS to the acquirer on loopback, with a CA and certificates made in the test: the host NAME is
verified even when the terminal dials an address (resolved, remembered after DNS failed)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from tls_helpers import TestCA
from upstream_helpers import HOST_TODAY, LOCAL_DATETIME, TERMINAL, sale

from pitill.config import UpstreamConfig
from pitill.errors import ConfigError
from pitill.sim.acquirer import AcquirerHost
from pitill.sim.resolver import SIM_HOST, SimResolver
from pitill.upstream.client import UpstreamClient
from pitill.upstream.failures import LinkReason, UnreachableError
from pitill.upstream.monitor import LinkMonitor
from pitill.upstream.resolver import Resolver
from pitill.upstream.resolver_cache import CachingResolver
from pitill.upstream.tls import client_context
from pitill.upstream.tracker import ProbeResult


@dataclass
class TlsRig:
    host: AcquirerHost
    config: UpstreamConfig
    resolver: SimResolver
    signals: list[LinkReason]

    def client(self, resolver: Resolver | None = None) -> UpstreamClient:
        """A client dialling the host by name, with the config's TLS context."""
        return UpstreamClient.from_config(
            self.config, TERMINAL, resolver or self.resolver, on_signal=self.signals.append
        )


@asynccontextmanager
async def tls_host(
    tmp_path: Path, cert_name: str = SIM_HOST, trusted: TestCA | None = None
) -> AsyncIterator[TlsRig]:
    """A TLS acquirer whose certificate is for `cert_name`, and a config trusting `trusted`
    (by default the CA that issued it)."""
    ca = TestCA(tmp_path)
    leaf = ca.issue(cert_name)
    host = AcquirerHost(tmp_path, today_yymm=lambda: HOST_TODAY, tls=leaf.server_context())
    ca_file = (trusted or ca).ca_file
    async with host:
        config = UpstreamConfig(
            host=SIM_HOST,
            port=host.port,
            tls=True,
            tls_ca_file=str(ca_file),
            request_timeout_s=2.0,
            probe_interval_s=0.05,
            probe_timeout_s=0.5,
        )
        yield TlsRig(host, config, SimResolver(), [])


def test_sale_over_tls_verifies_the_name_while_dialling_an_address(tmp_path: Path) -> None:
    async def scenario() -> str:
        async with tls_host(tmp_path) as rig:
            client = rig.client()
            try:
                answer = await client.authorize(sale(), LOCAL_DATETIME)
            finally:
                await client.close()
            return answer.response_code

    assert asyncio.run(scenario()) == "00"


def test_remembered_address_still_verifies_the_name(tmp_path: Path) -> None:
    """The name stops resolving: the remembered 127.0.0.1 is dialled, the certificate for the
    name is checked and accepted; a certificate for another name would not be (next test)."""

    async def scenario() -> list[str]:
        async with tls_host(tmp_path) as rig:
            cache = CachingResolver(rig.resolver, tmp_path / "resolved-hosts.json")
            client = rig.client(cache)
            try:
                codes = [(await client.authorize(sale(seq=1), LOCAL_DATETIME)).response_code]
                await client.close()  # the next sale opens a new connection
                rig.resolver.set_failing(True)
                codes.append((await client.authorize(sale(seq=2), LOCAL_DATETIME)).response_code)
                assert cache.counts["remembered"] == 1
            finally:
                await client.close()
            return codes

    assert asyncio.run(scenario()) == ["00", "00"]


def test_certificate_for_another_name_is_refused(tmp_path: Path) -> None:
    async def scenario() -> tuple[UnreachableError, list[LinkReason], int]:
        async with tls_host(tmp_path, cert_name="other.pitill.test") as rig:
            client = rig.client()
            try:
                with pytest.raises(UnreachableError) as caught:
                    await client.authorize(sale(), LOCAL_DATETIME)
            finally:
                await client.close()
            return caught.value, rig.signals, len(rig.host.ledger())

    error, signals, ledgered = asyncio.run(scenario())
    assert error.reason is LinkReason.TLS
    assert SIM_HOST in str(error) and "certificate" in str(error)
    assert signals == [LinkReason.TLS]
    assert ledgered == 0  # nothing was sent: the handshake failed first


def test_certificate_from_an_untrusted_ca_is_refused(tmp_path: Path) -> None:
    async def scenario() -> LinkReason:
        other = tmp_path / "other"
        other.mkdir()
        async with tls_host(tmp_path, trusted=TestCA(other, "some other CA")) as rig:
            client = rig.client()
            try:
                with pytest.raises(UnreachableError) as caught:
                    await client.echo()
            finally:
                await client.close()
            return caught.value.reason

    assert asyncio.run(scenario()) is LinkReason.TLS


@pytest.mark.parametrize(
    ("cert_name", "reason"), [(SIM_HOST, None), ("other.test", LinkReason.TLS)]
)
def test_monitor_probes_over_tls(tmp_path: Path, cert_name: str, reason: LinkReason | None) -> None:
    async def scenario() -> ProbeResult:
        async with tls_host(tmp_path, cert_name=cert_name) as rig:
            monitor = LinkMonitor(rig.config, TERMINAL, rig.resolver, lambda *_: None)
            return await monitor.probe()

    result = asyncio.run(scenario())
    assert result.reason is reason
    assert result.ok is (reason is None)


def test_context_from_config(tmp_path: Path) -> None:
    assert client_context(UpstreamConfig()) is None
    system = client_context(UpstreamConfig(tls=True))
    assert system is not None and system.check_hostname
    missing = tmp_path / "no-such-ca.pem"
    with pytest.raises(ConfigError, match=r"upstream\.tls_ca_file") as caught:
        client_context(UpstreamConfig(tls=True, tls_ca_file=str(missing)))
    assert str(missing) in str(caught.value)
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    with pytest.raises(ConfigError, match=r"upstream\.tls_ca_file"):
        client_context(UpstreamConfig(tls=True, tls_ca_file=str(not_pem)))
