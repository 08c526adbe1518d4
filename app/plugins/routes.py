"""``GET /api/v1/plugins``: the discovered plugins, as ``junction plugins`` lists them."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get
from litestar.handlers import HTTPRouteHandler

from app.ingress.openai import begin_call
from app.pipeline import Gateway


class PluginListing(msgspec.Struct):
    name: str
    kind: str
    package: str
    version: str
    enabled: bool
    reason: str = ""


def plugin_routes(gateway: Gateway) -> list[HTTPRouteHandler]:
    listing = [PluginListing(i.name, i.kind, i.package, i.version, i.enabled, i.reason)
               for i in gateway.plugins.infos]

    @get("/api/v1/plugins", summary="Discovered plugins: name, kind, package, version, enabled")
    async def list_plugins(request: Request[Any, Any, Any]) -> list[PluginListing]:
        call = await begin_call(gateway, request, "plugins")
        gateway.authorize(call.principal, "admin")  # type: ignore[arg-type]
        return listing

    return [list_plugins]
