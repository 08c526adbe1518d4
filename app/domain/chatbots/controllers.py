"""Embeddable chatbots: a bridge of ``type = "chatbot"`` talks to a website's end users.

* ``POST /api/v1/chatbots/{slug}/token`` (admin key, server to server) mints a short-lived token
  for one end user, with fixed variables (see :mod:`junction.domain.chatbots.tokens`).
* ``POST /api/v1/chatbots/{slug}/messages`` ``{"message", "stream"}`` and ``POST …/reset``, with
  that token only (``Authorization: Bearer cbt_…``): a turn in the end user's own thread (their
  latest; ``reset`` starts a new one), limited to ``chatbot.rpm_per_end_user`` a minute.
* CORS per chatbot: browsers on ``chatbot.allowed_origins`` (``"*"``: any) may call these.
* ``GET /chatbot/{slug}/widget.js``: the embeddable chat window (``app/static/chatbot/widget.js``).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post, route
from litestar.handlers import HTTPRouteHandler

from junction.domain.access import org_required, requested_org, thread_owner
from junction.domain.bridges.chat import THREAD_HEADER, BridgeChatBody, bridge_turn
from junction.domain.chatbots.limits import EndUserLimiter
from junction.domain.chatbots.origins import allowed
from junction.domain.chatbots.tokens import ChatbotClaims, ChatbotTokens
from junction.domain.http import caller, check_length, decode_body
from junction.domain.services import Domain
from junction.errors import AuthenticationFailed, InvalidRequest, JunctionError, NotFound, PermissionDenied
from junction.pipeline import Gateway
from junction.plugins.protocols import Principal
from junction.security.crypto import Cipher
from junction.stores.documents.bridges import ResolvedBridge

_PREFLIGHT_SECONDS = "600"


class TokenBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    end_user_id: str
    #: Required with the master key.
    org_id: str | None = None
    variables: dict[str, str | int | float | bool | None] = {}
    ttl_seconds: Annotated[int, msgspec.Meta(ge=30, le=86_400)] = 3600


class IssuedToken(msgspec.Struct):
    token: str
    expires_at: datetime


class MessageBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    message: Annotated[str, msgspec.Meta(min_length=1)]
    stream: bool = False


class ResetReply(msgspec.Struct):
    thread_id: str


def _not_a_chatbot(slug: str) -> NotFound:
    return NotFound(f"chatbot {slug!r} not found", param="slug", code="chatbot_not_found")


def cors_headers(origin: str | None) -> dict[str, str]:
    if origin is None:
        return {}
    return {"access-control-allow-origin": origin, "vary": "Origin",
            "access-control-expose-headers": THREAD_HEADER}


def chatbot_routes(gateway: Gateway, domain: Domain, cipher: Cipher, redis: Any | None) -> list[HTTPRouteHandler]:
    tokens = ChatbotTokens(cipher)
    limiter = EndUserLimiter(redis)
    widget = resources.files("junction.static.chatbot").joinpath("widget.js").read_bytes()

    async def chatbot_of(org_id: str, slug: str) -> ResolvedBridge:
        try:
            resolved = await domain.bridges.resolve(org_id, slug)
        except NotFound:
            raise _not_a_chatbot(slug) from None
        if resolved.bridge.type != "chatbot":
            raise _not_a_chatbot(slug)
        return resolved

    async def end_user(request: Request[Any, Any, Any], slug: str) -> tuple[ChatbotClaims, ResolvedBridge]:
        """The token's claims and its chatbot, checked: this chatbot, active, this origin."""
        authorization = request.headers.get("authorization", "")
        if not authorization.lower().startswith("bearer "):
            raise AuthenticationFailed("send the chatbot token as 'Authorization: Bearer cbt_…'",
                                       code="missing_chatbot_token")
        claims = tokens.read(authorization[7:].strip())
        resolved = await chatbot_of(claims.org_id, slug)
        if resolved.bridge.id != claims.bridge_id:
            raise PermissionDenied("this token is for another chatbot", code="token_not_for_this_chatbot")
        if resolved.bridge.status == "paused":
            raise PermissionDenied(f"chatbot {slug!r} is paused", code="bridge_paused")
        if not allowed(resolved, request.headers.get("origin")):
            raise PermissionDenied("this page's origin may not use this chatbot", code="origin_not_allowed")
        return claims, resolved

    def principal_of(claims: ChatbotClaims) -> Principal:
        return Principal(id=f"chatbot:{claims.end_user_id}", kind="chatbot", scopes=frozenset({"chat"}),
                         org_id=claims.org_id, user_id=claims.end_user_id)

    def readable(request: Request[Any, Any, Any], error: JunctionError) -> JunctionError:
        """Errors carry the CORS headers too, so the widget can read them."""
        error.headers.update(cors_headers(request.headers.get("origin")))
        return error

    @post("/api/v1/chatbots/{slug:str}/token", summary="Mint a chatbot token for one end user", status_code=200)
    async def mint(request: Request[Any, Any, Any], slug: str) -> IssuedToken:
        principal = await caller(gateway, request, "admin")
        body = decode_body(await request.body(), TokenBody)
        check_length("end_user_id", body.end_user_id)
        if not body.end_user_id:
            raise InvalidRequest("end_user_id: must not be empty", param="end_user_id")
        org_id = org_required(principal, requested_org(request.query_params, request.headers, body.org_id),
                              what="org")
        resolved = await chatbot_of(org_id, slug)
        expires = int(time.time()) + body.ttl_seconds
        token = tokens.mint(ChatbotClaims(org_id=org_id, bridge_id=resolved.bridge.id,
                                          end_user_id=body.end_user_id, variables=body.variables, expires=expires))
        return IssuedToken(token=token, expires_at=datetime.fromtimestamp(expires, UTC))

    @post("/api/v1/chatbots/{slug:str}/messages", summary="An end user's message to a chatbot (JSON or SSE)",
          status_code=200)
    async def message(request: Request[Any, Any, Any], slug: str) -> Response[Any]:
        try:
            claims, resolved = await end_user(request, slug)
            body = decode_body(await request.body(), MessageBody)
            bridge = resolved.bridge
            await limiter.take(bridge.id, claims.end_user_id, bridge.chatbot.rpm_per_end_user if bridge.chatbot else None)
            principal = principal_of(claims)
            thread = await domain.documents.threads.latest_owned(bridge.org_id, bridge.id, thread_owner(principal))
            turn = BridgeChatBody(user=body.message, variables=dict(claims.variables),
                                  thread_id=thread.id if thread is not None else None, stream=body.stream)
            return await bridge_turn(gateway, domain, request, principal, resolved, turn,
                                     endpoint="chatbots.messages", headers=cors_headers(request.headers.get("origin")))
        except JunctionError as error:
            raise readable(request, error) from None

    @post("/api/v1/chatbots/{slug:str}/reset", summary="Start the end user's conversation afresh", status_code=200)
    async def reset(request: Request[Any, Any, Any], slug: str) -> Response[ResetReply]:
        try:
            claims, resolved = await end_user(request, slug)
            thread = await domain.threads.create(claims.org_id, resolved.bridge.id, thread_owner(principal_of(claims)))
        except JunctionError as error:
            raise readable(request, error) from None
        return Response(ResetReply(thread.id), headers=cors_headers(request.headers.get("origin")))

    @route(["/api/v1/chatbots/{slug:str}/messages", "/api/v1/chatbots/{slug:str}/reset"],
           http_method=["OPTIONS"], summary="CORS preflight of a chatbot", status_code=204, include_in_schema=False)
    async def preflight(request: Request[Any, Any, Any], slug: str) -> Response[None]:
        origin = request.headers.get("origin")
        chatbots = [r for r in await domain.bridges.everywhere(slug) if r.bridge.type == "chatbot"]
        if origin is None or not any(allowed(r, origin) for r in chatbots):
            raise PermissionDenied("this page's origin may not use this chatbot", code="origin_not_allowed")
        return Response(None, status_code=204, headers={
            **cors_headers(origin), "access-control-allow-methods": "POST, OPTIONS",
            "access-control-allow-headers": "authorization, content-type",
            "access-control-max-age": _PREFLIGHT_SECONDS})

    @get("/chatbot/{slug:str}/widget.js", summary="The embeddable chat widget", include_in_schema=False)
    async def widget_js(slug: str) -> Response[bytes]:
        return Response(widget, media_type="application/javascript; charset=utf-8",
                        headers={"cache-control": "public, max-age=300"})

    # The preflight first: registered after a POST of the same path, it would meet the OPTIONS
    # handler Litestar adds to every path that has none.
    return [preflight, mint, message, reset, widget_js]
