"""``GET /api/v1/plugins``: the discovered plugins, as ``junction plugins`` lists them."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get
from litestar.handlers import HTTPRouteHandler

from junction.ingress.openai import caller
from junction.pipeline import Gateway


class PluginListing(msgspec.Struct, omit_defaults=True):
    name: str
    kind: str
    package: str
    version: str
    enabled: bool
    reason: str
    #: For an enabled stage: its phase and its 1-based place in the resolved order.
    phase: str | None = None
    position: int | None = None


def plugin_routes(gateway: Gateway) -> list[HTTPRouteHandler]:
    listing = [PluginListing(i.name, i.kind, i.package, i.version, i.enabled, i.reason, i.phase, i.position)
               for i in gateway.plugins.infos]

    @get("/api/v1/plugins", summary="Discovered plugins: name, kind, package, version, enabled")
    async def list_plugins(request: Request[Any, Any, Any]) -> list[PluginListing]:
        gateway.authorize(await caller(gateway, request), "admin")
        return listing

    return [list_plugins]
