"""One way to put an aiohttp application on a bind address, for the workshop page and the host's
dashboard alike: a port in use is one line naming the address, and port 0 learns its real port."""

from __future__ import annotations

from aiohttp import web

from pitill.errors import ConfigError
from pitill.web.bind import BindAddress


async def start_site(app: web.Application, bind: BindAddress) -> tuple[web.AppRunner, int]:
    """Serve `app` on `bind` in the running loop; the runner (to clean up) and the port bound."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, bind.host, bind.port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(
            f"--web {bind.host}:{bind.port}: cannot listen there ({exc.strerror}); "
            "pick another port, e.g. --web 127.0.0.1:8581"
        ) from None
    sockets = [s for s in (site._server.sockets if site._server else ()) if s is not None]  # type: ignore[attr-defined]
    port = int(sockets[0].getsockname()[1]) if sockets else bind.port
    return runner, port
