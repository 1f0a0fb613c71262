"""CachingResolver: remembers what each upstream host name resolved to, and rides out DNS failures.

In the October 2025 outage the endpoint's name stopped resolving while its servers still answered.
This wrapper keeps the last addresses each name resolved to, in memory and in a small JSON file in
the data directory (DATA_DIR/resolved-hosts.json, replaced atomically), and when the inner resolver
fails (NXDOMAIN, no DNS server, no answer within lookup_timeout_s) it returns the remembered
addresses as `Remembered`, which carries the failure: the connection can go ahead and the link
monitor still shows the DNS fault. A name never resolved before fails as before.

Only the IP addresses are kept, not the port: the port comes from each request. The file is
rewritten only when a name's set of addresses changes (a round-robin reordering is no change), so
probes every half second do not wear the SD card. A lookup is shared while in flight: a resolver
that hangs holds one thread per name, not one per probe, and an answer that arrives after
lookup_timeout_s still refreshes the cache. A missing, unreadable or damaged file means an empty
cache and a warning, never a terminal that cannot start.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
from collections import Counter
from contextlib import suppress
from pathlib import Path
from typing import Any

from pitill.upstream.failures import ResolveError
from pitill.upstream.resolver import Address, Remembered, Resolver

log = logging.getLogger(__name__)

RESOLVED_HOSTS_NAME = "resolved-hosts.json"
FILE_VERSION = 1
MAX_NAMES = 16  # a terminal talks to a handful of hosts; the oldest name goes beyond this
MAX_ADDRESSES = 16  # per name


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _valid_ips(value: Any) -> list[str]:
    """The valid IP address strings of a stored list, in order, at most MAX_ADDRESSES."""
    if not isinstance(value, list):
        return []
    ips = [ip for ip in value if isinstance(ip, str) and _is_ip_literal(ip)]
    return list(dict.fromkeys(ips))[:MAX_ADDRESSES]


class CachingResolver:
    """A Resolver that falls back to the last addresses a name resolved to (see module doc)."""

    def __init__(self, inner: Resolver, path: Path, lookup_timeout_s: float = 0.5) -> None:
        if lookup_timeout_s <= 0:
            raise ValueError(f"lookup_timeout_s must be > 0, got {lookup_timeout_s}")
        self.inner = inner
        self.path = path
        self.lookup_timeout_s = lookup_timeout_s  # only bounds lookups of a remembered name
        self._names: dict[str, list[str]] = self._load()
        self._inflight: dict[tuple[str, int], asyncio.Task[list[Address]]] = {}
        self.counts: Counter[str] = Counter()  # lookups, remembered (answers from the cache), saves

    def remembered(self, host: str) -> list[str]:
        """The IP addresses kept for `host` (empty when none)."""
        return list(self._names.get(host.lower(), ()))

    async def resolve(self, host: str, port: int) -> list[Address]:
        """The inner resolver's addresses; the remembered ones (as Remembered) when it fails."""
        self.counts["lookups"] += 1
        if _is_ip_literal(host):
            return await self.inner.resolve(host, port)  # no DNS involved: nothing to remember
        name = host.lower()
        lookup = self._lookup(host, port)
        ips = self._names.get(name)
        try:
            if ips is None:  # nothing to fall back on: wait as long as the caller lets us
                return await asyncio.shield(lookup)
            async with asyncio.timeout(self.lookup_timeout_s):
                return await asyncio.shield(lookup)
        except ResolveError as exc:
            error = exc
        except TimeoutError:
            error = ResolveError(host, f"no answer within {self.lookup_timeout_s:g} s")
        ips = self._names.get(name)  # the lookup may have failed after another one refreshed it
        if not ips:
            raise error
        self.counts["remembered"] += 1
        log.debug("%s did not resolve (%s); using remembered %s", host, error, ips)
        return Remembered([(ip, port) for ip in ips], error)

    def _lookup(self, host: str, port: int) -> asyncio.Task[list[Address]]:
        """The in-flight lookup of host:port, started if there is none."""
        key = (host.lower(), port)
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self.inner.resolve(host, port))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return task

    def _finished(self, key: tuple[str, int], task: asyncio.Task[list[Address]]) -> None:
        """Runs even when every caller gave up waiting: a late answer still refreshes the cache."""
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if task.cancelled():
            return
        error = task.exception()  # retrieved here, so an abandoned failure is never "unhandled"
        if error is None:
            self._remember(key[0], task.result())
        elif not isinstance(error, ResolveError):
            log.warning("resolver failed on %s unexpectedly: %r", key[0], error)

    def _remember(self, name: str, addresses: list[Address]) -> None:
        ips = list(dict.fromkeys(address for address, _port in addresses))[:MAX_ADDRESSES]
        ips = [ip for ip in ips if _is_ip_literal(ip)]
        old = self._names.get(name)
        if not ips or (old is not None and set(old) == set(ips)):
            return
        self._names.pop(name, None)
        self._names[name] = ips
        while len(self._names) > MAX_NAMES:
            del self._names[next(iter(self._names))]  # the name refreshed least recently
        self._save()

    # --- the file ------------------------------------------------------------------------------

    def _load(self) -> dict[str, list[str]]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            log.warning("%s unreadable (%s): starting with no remembered addresses", self.path, exc)
            return {}
        hosts = raw.get("hosts") if isinstance(raw, dict) else None
        if not isinstance(hosts, dict) or raw.get("version") != FILE_VERSION:
            log.warning("%s is not a version %d hosts file: ignored", self.path, FILE_VERSION)
            return {}
        names = {str(name).lower(): _valid_ips(ips) for name, ips in hosts.items()}
        return {name: ips for name, ips in list(names.items())[-MAX_NAMES:] if ips}

    def _save(self) -> None:
        """Replace the file atomically (temp file, fsync, rename, fsync the directory)."""
        # Insertion order is recency order: kept, so the right name is dropped after a restart.
        data = json.dumps({"version": FILE_VERSION, "hosts": self._names}, indent=1)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            with tmp.open("w", encoding="utf-8") as f:
                f.write(data + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:  # best effort: the addresses stay remembered in memory
            log.warning("cannot save remembered addresses to %s: %s", self.path, exc)
            with suppress(OSError):
                tmp.unlink(missing_ok=True)
            return
        self.counts["saves"] += 1
