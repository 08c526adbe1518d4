"""A node service for tests/unit/test_node_services.py: ``python -m tests.unit.node_echo <socket>``
answers ``hello`` to each connection and, on SIGTERM, writes ``$NODE_ECHO_MARKER`` before it
exits (so a test sees it stopped on the signal, after finishing its work). With
``$NODE_ECHO_FAIL`` set it exits at once, as a service whose start-up failed."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path


async def serve(address: str) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello")
        await writer.drain()
        writer.close()

    server = await asyncio.start_unix_server(greet, address)
    await stopping.wait()
    server.close()
    Path(os.environ["NODE_ECHO_MARKER"]).write_text("stopped on SIGTERM")


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if os.environ.get("NODE_ECHO_FAIL"):
        sys.exit(3)
    asyncio.run(serve(sys.argv[1]))
