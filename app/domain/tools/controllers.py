"""``/api/v1/tools``: CRUD of the HTTP tools bridges call server-side (``server_tools``). Needs the
``admin`` scope; confined to the caller's org (another org's tool is a 404). Header values are
never returned (see :mod:`junction.stores.documents.tools`)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, delete, get, patch, post
from litestar.handlers import HTTPRouteHandler

from junction.domain.access import org_required, requested_org
from junction.domain.http import caller, check_length, decode_body
from junction.domain.lookup import first_found, orgs_in_reach
from junction.domain.services import Domain
from junction.pipeline import Gateway
from junction.plugins.protocols import Principal
from junction.stores.documents.tools import HttpTool, NewTool, ToolPatch, ToolView


class NewToolBody(NewTool, kw_only=True):
    #: Required with the master key; an org admin's tools are always its own org's.
    org_id: str | None = None


def tool_routes(gateway: Gateway, domain: Domain) -> list[HTTPRouteHandler]:
    tools = domain.documents.tools
    orgs = domain.documents.orgs

    async def locate(request: Request[Any, Any, Any], principal: Principal, tool_id: str) -> HttpTool:
        org_ids = await orgs_in_reach(orgs, principal, requested_org(request.query_params, request.headers),
                                      what="tool")
        return await first_found(org_ids, lambda org_id: tools.get(org_id, tool_id), what="tool")

    @post("/api/v1/tools", summary="Register an HTTP tool bridges may call server-side", status_code=201)
    async def create_tool(request: Request[Any, Any, Any]) -> ToolView:
        principal = await caller(gateway, request, "admin")
        body = decode_body(await request.body(), NewToolBody)
        if body.description is not None:
            check_length("description", body.description, limit=4000)
        org_id = org_required(principal, requested_org(request.query_params, request.headers, body.org_id),
                              what="org")
        fields = msgspec.structs.asdict(body)
        fields.pop("org_id")
        return ToolView.of(await tools.create(org_id, NewTool(**fields)))

    @get("/api/v1/tools", summary="HTTP tools in the caller's reach")
    async def list_tools(request: Request[Any, Any, Any]) -> list[ToolView]:
        principal = await caller(gateway, request, "admin")
        org_ids = await orgs_in_reach(orgs, principal, requested_org(request.query_params, request.headers),
                                      what="org")
        return [ToolView.of(tool) for org_id in org_ids for tool in await tools.list(org_id)]

    @get("/api/v1/tools/{tool_id:str}", summary="One HTTP tool")
    async def get_tool(request: Request[Any, Any, Any], tool_id: str) -> ToolView:
        principal = await caller(gateway, request, "admin")
        return ToolView.of(await locate(request, principal, tool_id))

    @patch("/api/v1/tools/{tool_id:str}", summary="Edit an HTTP tool (headers: all of them, replaced)")
    async def update_tool(request: Request[Any, Any, Any], tool_id: str) -> ToolView:
        principal = await caller(gateway, request, "admin")
        change = decode_body(await request.body(), ToolPatch)
        tool = await locate(request, principal, tool_id)
        return ToolView.of(await tools.update(tool.org_id, tool.id, change))

    @delete("/api/v1/tools/{tool_id:str}", summary="Delete an HTTP tool")
    async def delete_tool(request: Request[Any, Any, Any], tool_id: str) -> None:
        principal = await caller(gateway, request, "admin")
        tool = await locate(request, principal, tool_id)
        await tools.delete(tool.org_id, tool.id)

    return [create_tool, list_tools, get_tool, update_tool, delete_tool]
