"""Child process of test_forward_kill.py: drains a journal's backlog through the real Forwarder
and UpstreamClient to the host on 127.0.0.1:PORT, then exits 0 (unless it is killed first).

    python forward_child.py DATA_DIR PORT WINDOW
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from pitill.config import TerminalConfig, UpstreamConfig
from pitill.journal.forwarder import Forwarder
from pitill.journal.seal import KEY_FILE_NAME, Sealer
from pitill.journal.store import Journal
from pitill.sim.resolver import SIM_HOST, SimResolver
from pitill.upstream.client import UpstreamClient

POLL_S = 0.005
POLLS = 12_000  # a minute at most


async def drain(data_dir: Path, port: int, window: int) -> int:
    upstream = UpstreamConfig(
        forward_retry_s=0.01, forward_retry_max_s=0.05, forward_jitter_s=0.0, forward_window=window
    )
    journal = Journal.open(data_dir, Sealer.load_or_create(data_dir / KEY_FILE_NAME))
    client = UpstreamClient(
        SIM_HOST,
        port,
        SimResolver(),
        TerminalConfig(),
        request_timeout_s=2.0,
        connect_timeout_s=1.0,
    )
    forwarder = Forwarder(journal, client, upstream)
    forwarder.set_online(True)
    forwarder.start()
    for _ in range(POLLS):
        if journal.pending_count() == 0:
            break
        await asyncio.sleep(POLL_S)
    await forwarder.stop()
    await client.close()
    left = journal.pending_count()
    journal.close()
    return 0 if left == 0 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(drain(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))))
