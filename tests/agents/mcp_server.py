"""A real MCP server (the official ``mcp`` SDK, streamable HTTP) on loopback, in a thread: tools
``order_status`` (answers from the order id) and ``explode`` (reports an error), behind a bearer
token. It records each request's authorization header and every tool call."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from junction.testing.upstream import free_port

TOKEN = "mcp-token-7"


class McpTestServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.authorizations: list[str | None] = []
        self.list_requests = 0
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def _app(self) -> Any:
        from mcp.server.mcpserver import MCPServer
        from mcp.server.mcpserver.exceptions import ToolError

        mcp = MCPServer("orders")

        @mcp.tool(description="The shipping status of an order")
        def order_status(order_id: str) -> str:
            self.calls.append(("order_status", {"order_id": order_id}))
            return f"order {order_id} shipped on Monday"

        @mcp.tool(description="Always fails")
        def explode() -> str:
            self.calls.append(("explode", {}))
            raise ToolError("the warehouse is on fire")

        inner = mcp.streamable_http_app(stateless_http=True, json_response=True)

        async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
                self.authorizations.append(headers.get("authorization"))
                if headers.get("authorization") != f"Bearer {TOKEN}":
                    await send({"type": "http.response.start", "status": 401,
                                "headers": [(b"content-type", b"text/plain")]})
                    await send({"type": "http.response.body", "body": b"unauthorized"})
                    return
            await inner(scope, receive, send)

        return guarded

    def start(self) -> McpTestServer:
        import uvicorn

        config = uvicorn.Config(self._app(), host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=lambda: asyncio.run(self._server.serve()), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "the MCP test server did not start"
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
