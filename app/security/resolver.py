"""The SSRF guard in aiohttp's resolver, and the guarded client session built on it (webhooks,
HTTP tools, MCP targets; see :mod:`junction.domain.jobs.webhooks`).

A module of its own so that importing the webhook and tool code does not import aiohttp: a
serving worker loads it only when it first delivers a webhook or calls a tool.
"""

from __future__ import annotations

import socket

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from junction.security.ssrf import WebhookRefused, refused_reason


class GuardedResolver(AbstractResolver):
    """Resolves like the default resolver, then refuses the host unless every address is allowed."""

    def __init__(self, allow_private: bool) -> None:
        self._inner = ThreadedResolver()
        self._allow_private = allow_private

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        if not self._allow_private:
            for entry in found:
                reason = refused_reason(entry["host"])
                if reason is not None:
                    raise WebhookRefused(f"webhook host {host!r} resolves to {reason}")
        return found

    async def close(self) -> None:
        await self._inner.close()


def guarded_session(allow_private: bool, *, limit: int, timeout: float | None = None) -> aiohttp.ClientSession:
    """A pooled session whose connections go only to addresses the guard let through (no DNS
    cache: each connection's lookup is checked), with no proxy from the environment."""
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(allow_private), use_dns_cache=False, limit=limit)
    if timeout is None:
        return aiohttp.ClientSession(connector=connector, trust_env=False)
    return aiohttp.ClientSession(connector=connector, trust_env=False, timeout=aiohttp.ClientTimeout(total=timeout))
