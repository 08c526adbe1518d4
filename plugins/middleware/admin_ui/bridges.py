"""Console pages for bridges: the draft's editor, versions (a diff between any two, publish and
roll back), a playground that streams an answer from the draft or a version, and the bridge's
threads. Checks and scoping are the bridges API's own (:mod:`junction.domain.bridges.controllers`)."""

from __future__ import annotations

import difflib
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.response import Redirect, Stream

from junction.domain.access import org_required
from junction.domain.bridges.controllers import (
    NewBridgeBody,
    check_bridge_patch,
    check_bridge_patch_references,
    check_new_bridge,
    check_new_bridge_references,
)
from junction.domain.http import decode_body
from junction.domain.limits import BridgeView
from junction.domain.lookup import first_found, orgs_in_reach
from junction.errors import InvalidRequest, NotFound
from junction.formats.openai import ChunkWriter
from junction.ingress.openai import SSE_HEADERS, sse_body
from junction.middleware.admin_ui.forms import decode_form
from junction.middleware.admin_ui.tenancy import LIMIT_FIELDS, done
from junction.middleware.admin_ui.web import CSRF_HEADER, Session, Ui, check_csrf, paged
from junction.plugins.call import Call
from junction.plugins.services import BRIDGE_MODEL_PREFIX
from junction.request_id import request_id
from junction.schemas.chat import ChatRequest, Message, StreamOptions
from junction.stores.documents.bridges import Bridge, BridgeConfig, BridgePatch, NewBridge, ResolvedBridge

JSON_FIELDS = ("variables", "params", "tools", "response_format")
EDITABLE = ("name", "slug", "model", "prompt", "fallback_model", "status", *JSON_FIELDS, *LIMIT_FIELDS)
THREADS_PER_PAGE = 50


class PlaygroundBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    user: str
    variables: dict[str, Any] = {}
    #: ``None``: the draft; a number: that version.
    version: int | None = None


def config_text(config: BridgeConfig) -> list[str]:
    """A config as the lines a diff compares: pretty JSON with sorted keys."""
    encoded = msgspec.json.format(msgspec.json.encode(msgspec.to_builtins(config, order="sorted")), indent=2)
    return encoded.decode().splitlines()


def bridge_routes(ui: Ui) -> list[HTTPRouteHandler]:
    documents = ui.documents
    orgs, bridges, threads = documents.orgs, documents.bridges, documents.threads

    async def locate(session: Session, bridge_id: str) -> Bridge:
        org_ids = await orgs_in_reach(orgs, session.principal, None, what="bridge")
        return await first_found(org_ids, lambda org_id: bridges.get(org_id, bridge_id), what="bridge")

    async def config_of(bridge: Bridge, which: str | int | None) -> BridgeConfig:
        if which in (None, "", "draft"):
            return bridge.draft()
        try:
            number = int(which)  # type: ignore[arg-type]
        except ValueError:
            raise InvalidRequest("version: 'draft' or a version number", param="version",
                                 code="invalid_value") from None
        return (await bridges.get_version(bridge.org_id, bridge.id, number)).config

    @get("/bridges", summary="Console: bridges", include_in_schema=False)
    async def bridge_list(request: Request[Any, Any, Any]) -> Response[str]:
        session = await ui.session(request)
        org_ids = await orgs_in_reach(orgs, session.principal, None, what="org")
        found = [bridge for org_id in org_ids for bridge in await bridges.list(org_id)]
        shown, paging = paged(found, request)
        return ui.page("bridges.html", request, session, bridges=shown, paging=paging, org_ids=org_ids)

    @post("/bridges", summary="Console: create a bridge", include_in_schema=False, status_code=303)
    async def bridge_create(request: Request[Any, Any, Any]) -> Redirect:
        session, fields = await ui.mutation(request)
        body = decode_form(fields, NewBridgeBody, json=JSON_FIELDS)
        check_new_bridge(ui.gateway, body)
        org_id = org_required(session.principal, body.org_id, what="org")
        spec = msgspec.structs.asdict(body)
        spec.pop("org_id")
        await orgs.get(org_id)
        await check_new_bridge_references(ui.runtime.domain, org_id, body)
        bridge = await bridges.create(org_id, NewBridge(**spec))
        return done(f"/bridges/{bridge.id}", "created")

    @get("/bridges/{bridge_id:str}", summary="Console: edit a bridge", include_in_schema=False)
    async def bridge_detail(request: Request[Any, Any, Any], bridge_id: str) -> Response[str]:
        session = await ui.session(request)
        bridge = await BridgeView.of(ui.gateway, await locate(session, bridge_id))
        versions = await bridges.list_versions(bridge.org_id, bridge.id)
        as_json = {name: msgspec.json.encode(getattr(bridge, name)).decode() for name in JSON_FIELDS}
        return ui.page("bridge.html", request, session, bridge=bridge, versions=versions, as_json=as_json)

    @post("/bridges/{bridge_id:str}", summary="Console: save a bridge's draft", include_in_schema=False,
          status_code=303)
    async def bridge_update(request: Request[Any, Any, Any], bridge_id: str) -> Redirect:
        session, fields = await ui.mutation(request)
        editable = {name: value for name, value in fields.items() if name in EDITABLE}
        change = decode_form(editable, BridgePatch, json=JSON_FIELDS,
                             clearable=("fallback_model", "response_format", *LIMIT_FIELDS))
        check_bridge_patch(ui.gateway, change)
        bridge = await locate(session, bridge_id)
        await check_bridge_patch_references(ui.runtime.domain, bridge, change)
        await bridges.update(bridge.org_id, bridge.id, change)
        return done(f"/bridges/{bridge.id}", "saved")

    @post("/bridges/{bridge_id:str}/versions", summary="Console: snapshot the draft", include_in_schema=False,
          status_code=303)
    async def version_create(request: Request[Any, Any, Any], bridge_id: str) -> Redirect:
        session, _ = await ui.mutation(request)
        bridge = await locate(session, bridge_id)
        await bridges.create_version(bridge.org_id, bridge.id)
        return done(f"/bridges/{bridge.id}", "version-created")

    @post("/bridges/{bridge_id:str}/versions/{version:int}/publish", summary="Console: publish a version",
          include_in_schema=False, status_code=303)
    async def version_publish(request: Request[Any, Any, Any], bridge_id: str, version: int) -> Redirect:
        session, _ = await ui.mutation(request)
        bridge = await locate(session, bridge_id)
        await bridges.publish(bridge.org_id, bridge.id, version)
        return done(f"/bridges/{bridge.id}", "published")

    @get("/bridges/{bridge_id:str}/diff", summary="Console: diff two versions", include_in_schema=False)
    async def version_diff(request: Request[Any, Any, Any], bridge_id: str) -> Response[str]:
        session = await ui.session(request)
        bridge = await locate(session, bridge_id)
        left = request.query_params.get("a") or "draft"
        right = request.query_params.get("b") or "draft"
        lines = list(difflib.unified_diff(config_text(await config_of(bridge, left)),
                                          config_text(await config_of(bridge, right)),
                                          fromfile=f"version {left}", tofile=f"version {right}", lineterm=""))
        versions = await bridges.list_versions(bridge.org_id, bridge.id)
        return ui.page("diff.html", request, session, bridge=bridge, lines=lines, a=left, b=right,
                       versions=versions)

    @post("/bridges/{bridge_id:str}/playground", summary="Console: stream an answer from a bridge",
          include_in_schema=False, status_code=200)
    async def playground(request: Request[Any, Any, Any], bridge_id: str) -> Stream:
        session = await ui.session(request)
        check_csrf(session.csrf_token, request.headers.get(CSRF_HEADER))
        body = decode_body(await request.body(), PlaygroundBody)
        bridge = await locate(session, bridge_id)
        resolved = ResolvedBridge(bridge=bridge, version=body.version,
                                  config=await config_of(bridge, body.version))
        chat = ChatRequest(
            model=f"{BRIDGE_MODEL_PREFIX}{bridge.id}",
            messages=[Message(role="user", content=body.user)],
            stream=True,
            stream_options=StreamOptions(include_usage=True),
            extra_fields={"variables": msgspec.Raw(msgspec.json.encode(body.variables))},
        )
        # No request headers ride along: the session cookie is not the pipeline's business.
        call = Call(request_id=request_id(request.scope), endpoint="bridges.chat", principal=session.principal,
                    request=chat, headers={}, org_id=bridge.org_id)
        call.state[ResolvedBridge] = resolved
        events = await ui.gateway.open_stream(call)
        return Stream(sse_body(events, ChunkWriter(include_usage=True)), media_type="text/event-stream",
                      headers={**SSE_HEADERS, **call.response_headers})

    @get("/bridges/{bridge_id:str}/threads", summary="Console: a bridge's threads", include_in_schema=False)
    async def thread_list(request: Request[Any, Any, Any], bridge_id: str) -> Response[str]:
        session = await ui.session(request)
        bridge = await locate(session, bridge_id)
        found = await threads.list(bridge.org_id, bridge.id, limit=THREADS_PER_PAGE)
        return ui.page("threads.html", request, session, bridge=bridge, threads=found)

    @get("/bridges/{bridge_id:str}/threads/{thread_id:str}", summary="Console: one thread",
         include_in_schema=False)
    async def thread_detail(request: Request[Any, Any, Any], bridge_id: str, thread_id: str) -> Response[str]:
        session = await ui.session(request)
        bridge = await locate(session, bridge_id)
        thread = await threads.get(bridge.org_id, thread_id)
        if thread.bridge_id != bridge.id:
            raise NotFound("thread not found", code="not_found")
        return ui.page("thread.html", request, session, bridge=bridge, thread=thread)

    return [bridge_list, bridge_create, bridge_detail, bridge_update, version_create, version_publish,
            version_diff, playground, thread_list, thread_detail]
