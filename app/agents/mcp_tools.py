"""MCP servers as tools: a bridge's ``mcp_servers`` (streamable HTTP, the official ``mcp`` SDK).

Each server's tool list is fetched once per worker and kept ``mcp_list_ttl_seconds``; a call
opens a session, calls the tool and closes it (a node keeps no MCP session between calls).
Headers are secret references only (``{"env": "JUNCTION_SECRET_*"}``, like HTTP tools'), so a
bridge stores and returns no secret. Server URLs pass the webhooks' guard before connecting
(http(s); public addresses only unless ``[jobs] allow_private_webhooks``). Errors a tool reports
(``isError``), and failures to reach the server, reach the model as tool errors.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import msgspec

from junction.agents.http_tools import ToolResult, failure
from junction.errors import InvalidRequest, UpstreamError
from junction.plugins.call import Call
from junction.schemas.chat import FunctionDefinition, Tool
from junction.security.ssrf import WebhookRefused, check_url, literal_refusal
from junction.stores.documents.bridges import McpServer, ResolvedBridge
from junction.stores.documents.tools import SECRET_ENV_PREFIX

if TYPE_CHECKING:
    from junction.agents.toolbox import ServerTool

log = logging.getLogger("junction.agents.mcp")
_encoder = msgspec.json.Encoder()


def check_mcp_servers(servers: list[McpServer] | None) -> None:
    """A 400 naming the field for a bad URL or a header that is not a ``JUNCTION_SECRET_*`` reference."""
    for index, server in enumerate(servers or ()):
        check_url(server.url, param=f"mcp_servers[{index}].url")
        for name, reference in server.headers.items():
            if not reference.env.startswith(SECRET_ENV_PREFIX):
                field = f"mcp_servers[{index}].headers.{name}"
                raise InvalidRequest(f"{field}: env references must name a {SECRET_ENV_PREFIX}* variable",
                                     param=field, code="invalid_secret_reference")


class McpConnection:
    """How to reach one server: its URL and its headers' values (read from the environment)."""

    def __init__(self, server: McpServer, *, allow_private: bool, timeout: float) -> None:
        self.url = server.url
        self._references = server.headers
        self._allow_private = allow_private
        self._timeout = timeout

    def _headers(self) -> dict[str, str]:
        headers = {}
        for name, reference in self._references.items():
            value = os.environ.get(reference.env)
            if value is None:
                raise UpstreamError(f"MCP server header {name}: the gateway's {reference.env} is not set",
                                    code="mcp_secret_missing")
            headers[name] = value
        return headers

    async def _check_target(self) -> None:
        if self._allow_private:
            return
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        reason = literal_refusal(host)
        if reason is None:
            from junction.security.resolver import GuardedResolver

            try:
                await GuardedResolver(False).resolve(host, parts.port or 0, socket.AF_UNSPEC)
            except WebhookRefused as refused:
                reason = str(refused)
        if reason is not None:
            raise UpstreamError(f"MCP server URL refused: {reason}", code="mcp_refused")

    async def session(self, work: Any) -> Any:
        """Open a session, run ``await work(client)``, close it."""
        import httpx2
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        await self._check_target()
        async with (
            asyncio.timeout(self._timeout),
            create_mcp_http_client(headers=self._headers(), timeout=httpx2.Timeout(self._timeout)) as http,
            Client(streamable_http_client(self.url, http_client=http), cache=None) as client,
        ):
            return await work(client)


@dataclass(frozen=True, slots=True)
class McpTool:
    connection: McpConnection
    name: str
    description: str | None
    parameters: dict[str, Any]

    @property
    def definition(self) -> Tool:
        return Tool(function=FunctionDefinition(name=self.name, description=self.description,
                                                parameters=self.parameters))

    async def run(self, call: Call, arguments: dict[str, Any]) -> ToolResult:
        started = time.perf_counter()

        async def call_tool(client: Any) -> Any:
            return await client.call_tool(self.name, arguments)

        try:
            result = await self.connection.session(call_tool)
        except TimeoutError:
            return failure("the MCP server timed out", started)
        except UpstreamError as error:
            return failure(error.message, started)
        except Exception as error:  # noqa: BLE001 - the SDK raises many kinds: logged, and the model hears it
            log.warning("MCP tool %s of %s failed: %s", self.name, self.connection.url, type(error).__name__)
            return failure(f"the MCP call failed: {type(error).__name__}: {error}"[:500], started)
        texts = [block.text for block in result.content if getattr(block, "type", None) == "text"]
        content = "\n".join(texts)
        if not texts and result.structured_content is not None:
            content = _encoder.encode(result.structured_content).decode()
        if result.is_error:
            return failure(content or "the MCP tool reported an error", started)
        return ToolResult(content=content, latency_ms=(time.perf_counter() - started) * 1000)


class McpTools:
    """The tools of a bridge's MCP servers; each server's list kept ``ttl`` seconds per worker."""

    def __init__(self, *, allow_private: bool, timeout: float, ttl: float) -> None:
        self._allow_private = allow_private
        self._timeout = timeout
        self._ttl = ttl
        self._lists: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, list[McpTool]]] = {}

    async def add(self, tools: dict[str, ServerTool], call: Call, resolved: ResolvedBridge) -> None:
        servers = resolved.config.mcp_servers or []
        check_mcp_servers(servers)
        for server in servers:
            for tool in await self._list(server):
                if tool.name in tools:
                    raise InvalidRequest(f"bridge {resolved.bridge.slug!r}: two server-side tools are named "
                                         f"{tool.name!r} (MCP server {server.url})", param="mcp_servers",
                                         code="tool_name_conflict")
                tools[tool.name] = tool

    async def _list(self, server: McpServer) -> list[McpTool]:
        key = (server.url, tuple(sorted((name, ref.env) for name, ref in server.headers.items())))
        cached = self._lists.get(key)
        if cached is not None and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        connection = McpConnection(server, allow_private=self._allow_private, timeout=self._timeout)

        async def list_tools(client: Any) -> Any:
            return await client.list_tools()

        try:
            listed = await connection.session(list_tools)
        except UpstreamError:
            raise
        except Exception as error:  # noqa: BLE001 - unreachable, refused, not MCP: logged, and a 502
            log.warning("listing the tools of MCP server %s failed: %s", server.url, type(error).__name__)
            raise UpstreamError(f"MCP server {server.url}: listing its tools failed: {type(error).__name__}",
                                code="mcp_unavailable") from None
        found = [McpTool(connection, tool.name, tool.description, tool.input_schema) for tool in listed.tools]
        if len(self._lists) > 1000:
            self._lists.clear()
        self._lists[key] = (time.monotonic(), found)
        return found
