"""A real HTTP tool server on loopback: records every call (method, headers, JSON body), answers
from what the test set per path, and can fail (any status) or be slow."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from junction.testing.upstream import FakeUpstream


@dataclass
class ToolBehaviour:
    body: Any = None
    status: int = 200
    #: Seconds before answering (a timeout test sets more than the tool's timeout_seconds).
    delay: float = 0.0


class ToolServer(FakeUpstream):
    """``/tools/<name>`` answers with the behaviour set for ``<name>``; default: an echo of the
    arguments under ``"echo"``."""

    def __init__(self) -> None:
        super().__init__()
        self.behaviours: dict[str, ToolBehaviour] = {}

    def routes(self) -> list[web.RouteDef]:
        return [web.route("*", "/tools/{name}", self.tool)]

    def reset(self) -> None:
        super().reset()
        self.behaviours.clear()

    def calls(self, name: str) -> list[dict[str, Any]]:
        """The JSON bodies (or query for GET) of the calls of tool ``name``, in order."""
        return [json.loads(r.body) if r.body else dict(r.query) for r in self.requests
                if r.path == f"/tools/{name}"]

    async def tool(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        behaviour = self.behaviours.get(name, ToolBehaviour())
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        body = behaviour.body
        if body is None:
            raw = await request.read()
            body = {"echo": json.loads(raw) if raw else dict(request.query)}
        return web.Response(status=behaviour.status, text=body if isinstance(body, str) else json.dumps(body),
                            content_type="application/json")
