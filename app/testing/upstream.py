"""A real HTTP server on loopback, run in a background thread, that records every request.

Protocol fakes (``tests/fakes/``, or a plugin package's own) subclass :class:`FakeUpstream` and add
aiohttp routes that speak their provider's wire protocol. Tests then assert both what the client got
and what Junction sent (``fake.requests``).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    #: The client's address and port: requests on one kept-alive connection share it.
    peer: str = ""

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ScriptedError:
    """Reply with this status/body/headers to the next matching request instead of the protocol."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeUpstream:
    """Base of protocol fakes. Subclasses implement :meth:`routes`."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.errors: list[ScriptedError] = []
        #: Set while a streamed response is being written; cleared when its client went away.
        self.disconnects = 0
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=type(self).__name__, daemon=True)
        self._runner: web.AppRunner | None = None

    # --- for subclasses -------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    async def error_response(self, scripted: ScriptedError) -> web.Response:
        body = scripted.body if isinstance(scripted.body, (str, bytes)) else json.dumps(scripted.body)
        return web.Response(status=scripted.status, body=body, headers=scripted.headers,
                            content_type="application/json")

    # --- lifecycle -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeUpstream:
        self._thread.start()
        self.call(self._start())
        return self

    async def _start(self) -> None:
        app = web.Application(middlewares=[self._record], client_max_size=64 * 1024 * 1024)
        app.add_routes(self.routes())
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def stop(self) -> None:
        if self._runner is not None:
            self.call(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine in the fake's own loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    def set_event(self, event: asyncio.Event) -> None:
        """Set an asyncio.Event that the fake's handlers wait on (from the test's thread)."""
        self._loop.call_soon_threadsafe(event.set)

    def reset(self) -> None:
        self.requests.clear()
        self.errors.clear()
        self.disconnects = 0

    def fail_next(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        """The next request gets this error reply instead of a protocol answer."""
        self.errors.append(ScriptedError(status, body, headers or {}))

    @web.middleware
    async def _record(self, request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        body = await request.read()
        peername = request.transport.get_extra_info("peername") if request.transport else None
        self.requests.append(RecordedRequest(request.method, request.path, dict(request.query),
                                             {k.lower(): v for k, v in request.headers.items()}, body,
                                             peer=f"{peername[0]}:{peername[1]}" if peername else ""))
        if self.errors:
            return await self.error_response(self.errors.pop(0))
        return await handler(request)

    @property
    def last(self) -> RecordedRequest:
        return self.requests[-1]
