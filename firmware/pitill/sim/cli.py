"""`pitill sim`: the interactive simulator, a script run headless with --script, and with --web the
terminal live on a web page (beside the terminal UI, or alone with --no-tui)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from pitill.config import Config, load_config
from pitill.errors import ConfigError, ScriptError
from pitill.logs import configure_logging
from pitill.sim.proxy import PROXY_MODES
from pitill.sim.resolver import SIM_HOST
from pitill.sim.script import UPSTREAM_MODES, Step, Upstream, parse_script
from pitill.sim.script_runner import ScriptRunner, report_failure
from pitill.sim.world import CARD_NAMES, SimWorld
from pitill.textfile import path_text, read_text


def _add_mirror(world: SimWorld, address: str) -> None:
    """The web mirror as a companion of the world: started with the terminal, driving it."""
    try:
        from pitill.web.bind import parse_bind
        from pitill.web.mirror import Controls, Mirror
    except ImportError as exc:
        raise ConfigError(
            f"--web needs the web extra ({exc.name} is missing): pip install 'pitill[web]'"
        ) from None
    bind = parse_bind(address)

    class WebCompanion:
        mirror: Mirror | None = None

        async def start(self) -> None:
            terminal = world.terminal
            assert terminal is not None
            controls = Controls(
                terminal,
                cards=("approved", "declined", "expired"),
                host_modes=UPSTREAM_MODES,
                swipe=world.swipe_named,
                set_host=world.set_upstream,
            )
            self.mirror = Mirror(terminal, bind, controls)
            await self.mirror.start()
            terminal.event_log.write(terminal.now_s(), "web", url=self.mirror.url)
            print(f"pitill sim: the terminal is live at {self.mirror.url}", file=sys.stderr)

        async def close(self) -> None:
            if self.mirror is not None:
                await self.mirror.close()

    world.companions.append(WebCompanion())


async def _serve_until_stopped(world: SimWorld) -> None:
    """--no-tui: the terminal runs, driven from the web page, until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await world.start()
    try:
        await stop.wait()
    finally:
        await world.stop()


def external_upstream(given: str | None, config: Config) -> tuple[str, int] | None:
    """The host to dial instead of the sandbox one: --upstream HOST:PORT, or the config's
    [upstream] host when it names one (the default name is the sandbox's)."""
    if given is not None:
        host, colon, port = given.strip().rpartition(":")
        host = host.strip("[]")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(
                f"--upstream {given!r}: give the host's address and port, e.g. 127.0.0.1:8583"
            )
        return host, int(port)
    if config.upstream.host != SIM_HOST:
        return config.upstream.host, config.upstream.port
    return None


def _check_modes(steps: list[Step]) -> None:
    """With a host the simulator does not run, refuse before starting what it cannot make."""
    for step in steps:
        mode = getattr(step.command, "mode", None)
        if isinstance(step.command, Upstream) and mode not in PROXY_MODES:
            raise ScriptError(
                f"line {step.line_no}: `upstream {mode}` needs the sandbox host (it answers 91 "
                f"itself); against --upstream the script can use: {', '.join(PROXY_MODES)}"
            )


def run_sim(args: argparse.Namespace) -> int:
    # Every input is checked before anything is written: config, options, then the script.
    config = load_config(args.config)
    external = external_upstream(getattr(args, "upstream", None), config)
    web = getattr(args, "web", None)
    no_tui = getattr(args, "no_tui", False)
    if no_tui and (web is None or args.script is not None):
        raise ConfigError("--no-tui runs the terminal driven from its web page: give --web ADDR")
    steps = None
    if args.script is not None:
        text = read_text(
            args.script,
            "script",
            ScriptError,
            missing_hint="check the path (tests/scenarios/ has examples)",
        )
        try:
            steps = parse_script(text, CARD_NAMES)
            if external is not None:
                _check_modes(steps)
        except ScriptError as exc:
            raise ScriptError(f"script {path_text(args.script)}, {exc}") from None
    world = SimWorld(
        config, args.data_dir, events=args.events, external=external, receipts=args.receipts
    )
    if web is not None:
        _add_mirror(world, web)
    if no_tui:
        configure_logging(level="WARNING", stream=sys.stderr)
        asyncio.run(_serve_until_stopped(world))
        return 0
    if steps is None:
        from pitill.sim.tui import SimUI

        # The panel owns the terminal: the log goes to a file beside the journal instead.
        args.data_dir.mkdir(parents=True, exist_ok=True)
        with open(os.devnull, "w") as quiet:
            configure_logging(log_file=str(args.data_dir / "sim.log"), stream=quiet)
            asyncio.run(SimUI(world).run())
        return 0
    configure_logging(level="WARNING", stream=sys.stderr)
    runner = ScriptRunner(world, expect_timeout_s=args.expect_timeout, screens_dir=args.screens)
    failure = asyncio.run(runner.run(steps))
    if failure is not None:
        report_failure(failure, sys.stdout)
        return 1
    print(f"ok: {len(steps)} steps, every expect held")
    return 0
