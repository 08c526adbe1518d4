"""A TCP relay in front of the real Redis that a test can cut and restore: "this node lost Redis"
while every other client keeps its connection."""

from __future__ import annotations

import asyncio
import contextlib

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


class RedisRelay:
    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        """Listen (again, on the same port after :meth:`cut`) and relay to Redis."""
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Drop every relayed connection and refuse new ones (again: nothing to do)."""
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()
        self._server = None

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        redis_reader, redis_writer = await asyncio.open_connection(REDIS_HOST, REDIS_PORT)
        self._writers.update((client_writer, redis_writer))
        try:
            await asyncio.gather(_pump(client_reader, redis_writer), _pump(redis_reader, client_writer))
        finally:
            for writer in (client_writer, redis_writer):
                self._writers.discard(writer)
                writer.close()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):  # the other side went away: the relay ends
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()
