"""SimWorld.set_upstream: each mode sets the sandbox host, its name and its fault plan."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pitill.config import Config
from pitill.errors import ConfigError
from pitill.sim.acquirer import ChaosPlan, Mode
from pitill.sim.script import UPSTREAM_MODES
from pitill.sim.world import SLOW_ANSWER_S, SimWorld
from pitill.upstream.messages import ECHO_REQUEST, SALE_REQUEST


def test_modes_switch_host_name_and_faults(tmp_path: Path) -> None:
    async def scenario() -> None:
        world = SimWorld(Config(), tmp_path)
        await world.host.start()
        try:
            world.set_upstream("dns-fail")
            assert world.resolver.failing and world.host.mode is Mode.UP
            world.set_upstream("slow")
            chaos = world.host.chaos
            assert not world.resolver.failing and world.host.mode is Mode.UP
            assert chaos.delay_s == SLOW_ANSWER_S and {ECHO_REQUEST, SALE_REQUEST} <= chaos.mtis
            world.set_upstream("failing")
            chaos = world.host.chaos
            assert chaos.retry == 1.0 and chaos.retry_code in ("91", "96")
            assert ECHO_REQUEST not in chaos.mtis  # echoes answered: the host looks up
            world.set_upstream("blackhole")
            assert world.host.mode is Mode.BLACKHOLE and world.host.chaos == ChaosPlan()
            world.set_upstream("down")
            assert world.host.mode is Mode.DOWN
            world.set_upstream("up")
            assert world.host.mode is Mode.UP and world.upstream_mode == "up"
        finally:
            await world.host.close()

    asyncio.run(scenario())


def test_a_fault_plan_set_by_others_survives_plain_modes(tmp_path: Path) -> None:
    """The drill draws its own fault plans: only slow and failing touch the host's plan."""

    async def scenario() -> ChaosPlan:
        world = SimWorld(Config(), tmp_path)
        await world.host.start()
        try:
            world.host.set_chaos(ChaosPlan(drop_reply=0.5))
            world.set_upstream("down")
            world.set_upstream("up")
            return world.host.chaos
        finally:
            await world.host.close()

    assert asyncio.run(scenario()) == ChaosPlan(drop_reply=0.5)


def test_unknown_mode_names_the_known_ones(tmp_path: Path) -> None:
    world = SimWorld(Config(), tmp_path)
    with pytest.raises(ConfigError, match="'sideways' is unknown") as caught:
        world.set_upstream("sideways")
    assert all(mode in str(caught.value) for mode in UPSTREAM_MODES)
