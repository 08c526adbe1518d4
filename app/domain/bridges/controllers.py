"""``/api/v1/bridges``: CRUD of bridges (the editable draft), versions (snapshots of the draft),
and publishing one — publishing an older version is the rollback. Needs the ``admin`` scope;
confined to the caller's org (another org's bridge is a 404)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, delete, get, patch, post
from litestar.handlers import HTTPRouteHandler

from junction.agents.mcp_tools import check_mcp_servers
from junction.domain.access import org_required, requested_org
from junction.domain.chatbots.origins import check_chatbot
from junction.domain.fields import check_limits
from junction.domain.http import caller, check_length, decode_body
from junction.domain.limits import BridgeView
from junction.domain.lookup import first_found, orgs_in_reach
from junction.domain.services import Domain
from junction.errors import InvalidRequest, NotFound
from junction.formats.chat_checks import check_bridge_params
from junction.pipeline import Gateway
from junction.plugins.protocols import Principal
from junction.plugins.services import BRIDGE_MODEL_PREFIX
from junction.stores.documents.bridges import (
    Bridge,
    BridgeKnowledge,
    BridgePatch,
    BridgeVariable,
    BridgeVersion,
    NewBridge,
)


class NewBridgeBody(NewBridge, kw_only=True):
    #: Required with the master key; an org admin's bridges are always its own org's.
    org_id: str | None = None


def check_model(gateway: Gateway, field: str, model: str | None) -> None:
    """A bridge's model (and fallback) must be routable now, and not another bridge."""
    if model is None:
        return
    check_length(field, model)
    if model.startswith(BRIDGE_MODEL_PREFIX):
        raise InvalidRequest(
            f"{field}: a bridge cannot use another bridge", param=field, code="invalid_value"
        )
    try:
        gateway.router.resolve(model)
    except (NotFound, InvalidRequest) as error:
        raise InvalidRequest(f"{field}: {error.message}", param=field, code="invalid_value") from None


def check_variables(variables: list[BridgeVariable]) -> None:
    """Each variable is declared once (a second declaration would silently disagree with the first)."""
    seen: set[str] = set()
    for index, variable in enumerate(variables):
        if variable.name in seen:
            field = f"variables[{index}].name"
            raise InvalidRequest(
                f"{field}: {variable.name!r} is declared twice", param=field, code="invalid_value"
            )
        seen.add(variable.name)


async def check_references(domain: Domain, org_id: str, server_tools: list[str] | None,
                           connected_bridges: list[str] | None) -> None:
    """The org's tools and bridges a bridge names must exist (a 400 naming the entry). A call
    still checks them, since they can be deleted later."""
    found = {tool.id for tool in await domain.documents.tools.many(org_id, server_tools)} if server_tools else set()
    for index, tool_id in enumerate(server_tools or ()):
        if tool_id not in found:
            raise InvalidRequest(f"server_tools[{index}]: no tool {tool_id!r} in this org",
                                 param=f"server_tools[{index}]", code="tool_not_found")
    for index, ref in enumerate(connected_bridges or ()):
        try:
            await domain.documents.bridges.get(org_id, ref)
        except NotFound:
            raise InvalidRequest(f"connected_bridges[{index}]: no bridge {ref!r} in this org",
                                 param=f"connected_bridges[{index}]", code="bridge_not_found") from None


async def check_knowledge(domain: Domain, org_id: str, knowledge: BridgeKnowledge | None, prompt: str) -> None:
    if knowledge is not None and domain.knowledge is None:
        raise InvalidRequest("knowledge: RAG is not available in this process", param="knowledge")
    if domain.knowledge is not None:
        await domain.knowledge.check_knowledge(org_id, knowledge, prompt)


def check_new_bridge(gateway: Gateway, body: NewBridgeBody) -> None:
    """What a new bridge must pass before its org is looked up (the API's and the console's)."""
    check_length("name", body.name)
    check_limits(body)
    check_variables(body.variables)
    check_bridge_params(body.params)
    check_model(gateway, "model", body.model)
    check_model(gateway, "fallback_model", body.fallback_model)
    check_mcp_servers(body.mcp_servers)
    check_chatbot(body.chatbot)


async def check_new_bridge_references(domain: Domain, org_id: str, body: NewBridgeBody) -> None:
    """The tools, bridges and collections a new bridge names exist in its org."""
    await check_references(domain, org_id, body.server_tools, body.connected_bridges)
    await check_knowledge(domain, org_id, body.knowledge, body.prompt)


def check_bridge_patch(gateway: Gateway, change: BridgePatch) -> None:
    """What an edit must pass before the bridge is looked up (the API's and the console's)."""
    check_limits(change)
    if isinstance(change.name, str):
        check_length("name", change.name)
    if isinstance(change.variables, list):
        check_variables(change.variables)
    if isinstance(change.params, dict):
        check_bridge_params(change.params)
    if isinstance(change.model, str):
        check_model(gateway, "model", change.model)
    if isinstance(change.fallback_model, str):
        check_model(gateway, "fallback_model", change.fallback_model)
    if isinstance(change.mcp_servers, list):
        check_mcp_servers(change.mcp_servers)
    if not isinstance(change.chatbot, msgspec.UnsetType):
        check_chatbot(change.chatbot)


async def check_bridge_patch_references(domain: Domain, bridge: Bridge, change: BridgePatch) -> None:
    """The tools, bridges and collections the edited bridge names exist in its org, and a prompt
    mode bridge's prompt keeps its ``{{context}}``."""
    await check_references(domain, bridge.org_id, change.server_tools or None,  # type: ignore[arg-type]
                           change.connected_bridges or None)  # type: ignore[arg-type]
    if not (change.knowledge is msgspec.UNSET and change.prompt is msgspec.UNSET):
        knowledge = bridge.knowledge if change.knowledge is msgspec.UNSET else change.knowledge
        prompt = bridge.prompt if change.prompt is msgspec.UNSET else change.prompt
        await check_knowledge(domain, bridge.org_id, knowledge, prompt)  # type: ignore[arg-type]


def bridge_routes(gateway: Gateway, domain: Domain) -> list[HTTPRouteHandler]:
    bridges = domain.documents.bridges
    orgs = domain.documents.orgs

    async def locate(request: Request[Any, Any, Any], principal: Principal, id_or_slug: str) -> Bridge:
        org_ids = await orgs_in_reach(
            orgs, principal, requested_org(request.query_params, request.headers), what="bridge"
        )
        return await first_found(org_ids, lambda org_id: bridges.get(org_id, id_or_slug), what="bridge")

    @post("/api/v1/bridges", summary="Create a bridge", status_code=201)
    async def create_bridge(request: Request[Any, Any, Any]) -> Bridge:
        principal = await caller(gateway, request, "admin")
        body = decode_body(await request.body(), NewBridgeBody)
        check_new_bridge(gateway, body)
        org_id = org_required(
            principal, requested_org(request.query_params, request.headers, body.org_id), what="org"
        )
        fields = msgspec.structs.asdict(body)
        fields.pop("org_id")
        await orgs.get(org_id)
        await check_new_bridge_references(domain, org_id, body)
        return await bridges.create(org_id, NewBridge(**fields))

    @get("/api/v1/bridges", summary="Bridges in the caller's reach")
    async def list_bridges(request: Request[Any, Any, Any]) -> list[Bridge]:
        principal = await caller(gateway, request, "admin")
        org_ids = await orgs_in_reach(
            orgs, principal, requested_org(request.query_params, request.headers), what="org"
        )
        return [bridge for org_id in org_ids for bridge in await bridges.list(org_id)]

    @get("/api/v1/bridges/{bridge_id:str}", summary="One bridge (by id or slug)")
    async def get_bridge(request: Request[Any, Any, Any], bridge_id: str) -> BridgeView:
        principal = await caller(gateway, request, "admin")
        return await BridgeView.of(gateway, await locate(request, principal, bridge_id))

    @patch("/api/v1/bridges/{bridge_id:str}", summary="Edit a bridge's draft, name, slug or status")
    async def update_bridge(request: Request[Any, Any, Any], bridge_id: str) -> Bridge:
        principal = await caller(gateway, request, "admin")
        change = decode_body(await request.body(), BridgePatch)
        check_bridge_patch(gateway, change)
        bridge = await locate(request, principal, bridge_id)
        await check_bridge_patch_references(domain, bridge, change)
        return await bridges.update(bridge.org_id, bridge.id, change)

    @delete("/api/v1/bridges/{bridge_id:str}", summary="Delete a bridge, its versions and threads")
    async def delete_bridge(request: Request[Any, Any, Any], bridge_id: str) -> None:
        principal = await caller(gateway, request, "admin")
        bridge = await locate(request, principal, bridge_id)
        threads = await domain.documents.threads.list(bridge.org_id, bridge.id, limit=100_000)
        await bridges.delete(bridge.org_id, bridge.id)
        await domain.threads.forget(bridge.org_id, [thread.id for thread in threads])

    @post(
        "/api/v1/bridges/{bridge_id:str}/versions",
        summary="Snapshot the draft as a new version",
        status_code=201,
    )
    async def create_version(request: Request[Any, Any, Any], bridge_id: str) -> BridgeVersion:
        principal = await caller(gateway, request, "admin")
        bridge = await locate(request, principal, bridge_id)
        return await bridges.create_version(bridge.org_id, bridge.id)

    @get("/api/v1/bridges/{bridge_id:str}/versions", summary="A bridge's versions")
    async def list_versions(request: Request[Any, Any, Any], bridge_id: str) -> list[BridgeVersion]:
        principal = await caller(gateway, request, "admin")
        bridge = await locate(request, principal, bridge_id)
        return await bridges.list_versions(bridge.org_id, bridge.id)

    @get("/api/v1/bridges/{bridge_id:str}/versions/{version:int}", summary="One version")
    async def get_version(request: Request[Any, Any, Any], bridge_id: str, version: int) -> BridgeVersion:
        principal = await caller(gateway, request, "admin")
        bridge = await locate(request, principal, bridge_id)
        return await bridges.get_version(bridge.org_id, bridge.id, version)

    @post(
        "/api/v1/bridges/{bridge_id:str}/versions/{version:int}/publish",
        summary="Make calls use this version (an older one rolls back)",
        status_code=200,
    )
    async def publish_version(request: Request[Any, Any, Any], bridge_id: str, version: int) -> Bridge:
        principal = await caller(gateway, request, "admin")
        bridge = await locate(request, principal, bridge_id)
        return await bridges.publish(bridge.org_id, bridge.id, version)

    return [
        create_bridge,
        list_bridges,
        get_bridge,
        update_bridge,
        delete_bridge,
        create_version,
        list_versions,
        get_version,
        publish_version,
    ]
