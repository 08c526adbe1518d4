"""A JWKS endpoint on loopback whose published key set a test can rotate."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from junction.testing.upstream import FakeUpstream


class FakeJwks(FakeUpstream):
    """Serves ``GET /.well-known/jwks.json`` with :attr:`document`."""

    def __init__(self) -> None:
        super().__init__()
        self.document: dict[str, Any] = {"keys": []}

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/.well-known/jwks.json"

    def publish(self, *public_jwks: dict[str, Any]) -> None:
        """Replace the published keys (a rotation)."""
        self.document = {"keys": list(public_jwks)}

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/.well-known/jwks.json", self.jwks)]

    async def jwks(self, request: web.Request) -> web.Response:
        return web.json_response(self.document)
