"""Calling an HTTP tool: the model's arguments (and the bound ones) as the JSON body (query
parameters for GET), the response body as the result. Targets pass the same guard as webhooks
(:mod:`junction.domain.jobs.webhooks`): http(s) only, public addresses only unless
``[jobs] allow_private_webhooks``, checked in the resolver the connection uses, no redirects.

A tool that fails (refused target, connection error, timeout, non-2xx answer, unset secret) gives
a :class:`ToolResult` with ``error`` set: the loop hands that to the model as the tool's result,
so the model can apologise or try otherwise; a tool failure never fails the call.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import msgspec

from junction.schemas.chat import Usage
from junction.security.ssrf import WebhookRefused, literal_refusal
from junction.stores.documents.tools import HttpTool

if TYPE_CHECKING:
    import aiohttp

_encoder = msgspec.json.Encoder()


class ToolResult(msgspec.Struct, kw_only=True, frozen=True):
    """What one tool call gave: ``content`` for the model, ``error`` when it failed."""

    content: str
    latency_ms: float
    error: str | None = None
    #: The model usage the tool itself caused (a connected bridge's), added to the caller's.
    usage: Usage | None = None


def failure(error: str, started: float) -> ToolResult:
    return ToolResult(content=_encoder.encode({"error": error}).decode(), error=error,
                      latency_ms=(time.perf_counter() - started) * 1000)


class HttpToolClient:
    """One pooled, guarded client for every HTTP tool of the process."""

    def __init__(self, *, allow_private: bool, max_result_chars: int) -> None:
        self._allow_private = allow_private
        self._max_result_chars = max_result_chars
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Nothing to open yet: the pool (and aiohttp) comes with the first tool call."""

    def _pool(self) -> aiohttp.ClientSession:
        if self._session is None:
            from junction.security.resolver import guarded_session

            self._session = guarded_session(self._allow_private, limit=256)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, tool: HttpTool, secrets: dict[str, str], arguments: dict[str, Any]) -> ToolResult:
        import aiohttp

        started = time.perf_counter()
        if not self._allow_private and (reason := literal_refusal(urlsplit(tool.url).hostname or "")):
            return failure(f"tool URL refused: {reason}", started)
        headers = dict(secrets)
        for name, variable in tool.env_headers.items():
            value = os.environ.get(variable)
            if value is None:
                return failure(f"header {name}: the gateway's {variable} is not set", started)
            headers[name] = value
        headers["user-agent"] = "junction-tools"
        if tool.method == "GET":
            options: dict[str, Any] = {"params": {k: v if isinstance(v, str) else _encoder.encode(v).decode()
                                                  for k, v in arguments.items()}}
        else:
            options = {"data": _encoder.encode(arguments)}
            headers["content-type"] = "application/json"
        try:
            async with asyncio.timeout(tool.timeout_seconds):
                async with self._pool().request(tool.method, tool.url, headers=headers, allow_redirects=False,
                                                 **options) as response:
                    body = await response.content.read(self._max_result_chars * 4 + 4)
                    status = response.status
        except TimeoutError:
            return failure(f"the tool timed out after {tool.timeout_seconds:g}s", started)
        except aiohttp.ClientConnectorError as error:
            if isinstance(error.os_error, WebhookRefused):
                return failure(f"tool URL refused: {error.os_error}", started)
            return failure(f"could not connect to the tool: {type(error.os_error).__name__}", started)
        except WebhookRefused as refused:
            return failure(f"tool URL refused: {refused}", started)
        except aiohttp.ClientError as error:
            return failure(f"the tool call failed: {type(error).__name__}", started)
        text = body.decode("utf-8", "replace")[: self._max_result_chars]
        if not 200 <= status < 300:
            return failure(f"the tool answered HTTP {status}: {text[:500]}", started)
        return ToolResult(content=text, latency_ms=(time.perf_counter() - started) * 1000)
