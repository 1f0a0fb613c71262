"""P1 with real network faults: the host in a network namespace, cut the ways networks fail.

pitill.sim.netns makes the lab (two namespaces joined by a veth pair, the sandbox acquirer and a
dnsmasq in the host's) and pitill.sim.netns_trials runs the terminal inside the other namespace,
dialling the host by its DNS name through the operating system's resolver. Per fault: the time
from the fault to the screen's status bar showing OFFLINE (median and max over the rounds, each
at a random phase of the probe schedule, idle), and the time the first customer waited: a sale
keyed and swiped right after the fault, from the swipe to its answer (online, offline or cash).
The network faults run with the default config; the DNS faults with `cache_resolved = false`
(with remembered addresses a vanished name is ridden out: DEGRADED DNS, sales still online).

The cost: the echo requests the host receives from an idle terminal (the default config), asked
from the host over its stdin every quarter second of a bounded idle window, as a rate between
the first and the last echo of the window.
"""

from __future__ import annotations

import math
import statistics
import tempfile
from pathlib import Path
from typing import Any

from benchlib import Figure, Options

from pitill.sim.netns import DNS_FAULTS, FAULTS, open_lab, unavailable
from pitill.sim.netns_trials import Plan, spawn

NETWORK_FAULTS = tuple(f for f in FAULTS if f not in DNS_FAULTS)
# The goals (today's sandbox figures): refused <= 1 s, blackhole <= 1.5 s, DNS <= 1 s.
# Every fault that makes packets vanish counts as a blackhole; a killed host refuses.
GOAL_S = {
    **{fault: 1.5 for fault in NETWORK_FAULTS},
    "host-killed": 1.0,
    **{fault: 1.0 for fault in DNS_FAULTS},
}
ECHOES_GOAL_PER_H = 60.0
DEFAULTS, NO_CACHE = "defaults", "cache_resolved = false"


def _run(
    faults: tuple[str, ...], config_name: str, options: Options, idle_s: float
) -> dict[str, Any]:
    rounds, customers = (1, 1) if options.quick else (5, 1)
    plan = Plan(
        faults=list(faults), rounds=rounds, customers=customers, idle_s=idle_s, seed=options.seed
    )
    with tempfile.TemporaryDirectory(prefix="p1-netns-") as directory, open_lab() as lab:
        config = None
        if config_name == NO_CACHE:
            config = Path(directory) / "no-cache.toml"
            config.write_text("[upstream]\ncache_resolved = false\n", encoding="utf-8")
        return spawn(lab, Path(directory) / "run", plan, config, limit_s=1800)


def _figures(outcome: dict[str, Any], faults: tuple[str, ...], config_name: str) -> list[Figure]:
    figures = []
    for fault in faults:
        rounds = [r for r in outcome["rounds"] if r["fault"] == fault]
        detect = [r["detect_s"] for r in rounds if r["kind"] == "detect"]
        got = [t for t in detect if t is not None]
        worst = max(got) if got and len(got) == len(detect) else math.inf
        customers = [r for r in rounds if r["kind"] == "customer"]
        waits = [r["customer_s"] for r in customers]
        waited = max((w if w is not None else math.inf) for w in waits) if waits else math.nan
        median = statistics.median(got) if got else math.inf
        goal = GOAL_S[fault]
        phases = ", ".join(r["customer_phase"] or "no answer" for r in customers)
        figures.append(
            Figure(
                "P1",
                f"netns {fault} -> OFFLINE screen [{config_name}]",
                median,
                "s",
                goal=f"max <= {goal:g} s",
                meets=worst <= goal,
                shown=f"median {median:.2f} s, max {worst:.2f} s; 1st customer {waited:.2f} s",
                note=(
                    f"{len(detect)} rounds ({len(got)} shown OFFLINE within the limit); the "
                    f"first customer's sale ({len(customers)} round(s)) ended {phases}"
                ),
            )
        )
    return figures


def measure(options: Options) -> list[Figure]:
    reason = unavailable()
    if reason is not None:
        return [
            Figure(
                "P1",
                "netns faults (host in a network namespace)",
                math.nan,
                "s",
                shown="not measured",
                note=f"no network namespaces here: {reason}",
            )
        ]
    network = ("host-killed",) if options.quick else NETWORK_FAULTS
    dns = ("dns-nxdomain",) if options.quick else DNS_FAULTS
    # 130 s holds at least two echoes at one a minute: the rate is taken between them.
    idle_s = 3.0 if options.quick else 130.0
    outcome = _run(network, DEFAULTS, options, idle_s)
    figures = _figures(outcome, network, DEFAULTS)
    dns_outcome = _run(dns, NO_CACHE, options, 0.0)
    figures += _figures(dns_outcome, dns, NO_CACHE)
    doubts = outcome["not_online"] + dns_outcome["not_online"]
    counts: dict[str, int] = outcome["idle_counts"]
    window_s, span_s = outcome["idle_window_s"], outcome["echo_span_s"]
    if span_s > 0:
        per_hour, how = outcome["echoes_in_span"] * 3600 / span_s, "between the first and last"
    else:  # fewer than two echoes in the window: at most this many
        per_hour, how = counts.get("echoes", 0) * 3600 / window_s, "over the whole window"
    figures.append(
        Figure(
            "P1",
            f"netns cost: echoes per hour at the host, idle [{DEFAULTS}]",
            per_hour,
            "/h",
            goal=f"<= {ECHOES_GOAL_PER_H:g} /h",
            meets=per_hour <= ECHOES_GOAL_PER_H,
            note=(
                f"{counts.get('echoes', 0)} echoes and {counts.get('connections', 0)} TCP "
                f"connections reached the namespace's host in {window_s:.0f} s of an idle "
                f"terminal; the rate is taken {how} echo"
                + (f". Rounds that found it not ONLINE: {'; '.join(doubts)}" if doubts else "")
            ),
        )
    )
    return figures
