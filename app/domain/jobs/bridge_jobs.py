"""Bridge turns as jobs: ``POST /api/v1/bridges/{id}/chat`` with ``x-junction-async: true``, or
``POST /api/v1/jobs`` whose ``request`` names a ``bridge``. The worker runs the turn as the route
does (the thread's history in, the user message and the reply appended to it) and stores the
route's answer (``thread_id``, ``bridge_version``, ``model``, ``message``, ``usage``) as the result.

Which request headers a job keeps for its run (routing and cache headers, trace context) is
decided here too, for chat and bridge jobs alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from junction.domain.access import ORG_HEADER
from junction.domain.bridges.chat import BridgeChatBody, complete_turn, prepare_turn
from junction.domain.services import Domain
from junction.errors import InvalidRequest
from junction.pipeline.gateway import Gateway
from junction.plugins.protocols import Principal

#: Request headers a job runs with, besides every ``x-junction-*`` one but these two (they are
#: about the submission itself).
CARRIED_HEADERS = frozenset({"cache-control", "traceparent", "tracestate", "baggage"})
SUBMISSION_HEADERS = frozenset({"x-junction-async", "x-junction-webhook-url"})
MAX_CARRIED = 32
MAX_HEADER_VALUE = 1024


def carried_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """The request headers that change how a call runs, kept on its job (credentials never)."""
    kept: dict[str, str] = {}
    for name, value in (headers or {}).items():
        name = name.lower()
        if name in SUBMISSION_HEADERS or not (name in CARRIED_HEADERS or name.startswith("x-junction-")):
            continue
        if len(value) > MAX_HEADER_VALUE or len(kept) >= MAX_CARRIED:
            raise InvalidRequest(f"header {name}: a job keeps at most {MAX_CARRIED} routing headers of up to "
                                 f"{MAX_HEADER_VALUE} characters", param=name, code="invalid_header")
        kept[name] = value
    return kept


class BridgeJobBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A job's ``request`` for a bridge turn: the route's body plus the bridge (id or slug)."""

    bridge: str
    user: str
    variables: dict[str, Any] = {}
    thread_id: str | None = None
    #: For an unconfined caller naming the bridge by slug: the org it belongs to.
    org_id: str | None = None
    stream: bool = False


def bridge_body(request: dict[str, Any]) -> BridgeJobBody:
    try:
        body = msgspec.convert(request, BridgeJobBody)
    except msgspec.ValidationError as error:
        raise InvalidRequest(f"request: {error}", param="request", code="invalid_request") from None
    if body.stream:
        raise InvalidRequest("request.stream: a queued job cannot stream; omit stream",
                             param="request.stream", code="invalid_value")
    return body


def is_bridge_request(request: dict[str, Any]) -> bool:
    return "bridge" in request


class BridgeTurns:
    """Checks a bridge job at submit (a 400 or 404 then, not a failed job later) and runs it."""

    def __init__(self, gateway: Gateway, domain: Domain) -> None:
        self.gateway = gateway
        self.domain = domain

    async def check(self, principal: Principal, request: dict[str, Any], headers: Mapping[str, str]) -> None:
        body = bridge_body(request)
        await self.domain.bridges.find_active(principal, body.org_id or headers.get(ORG_HEADER), body.bridge)

    async def run(self, principal: Principal, request: dict[str, Any], headers: Mapping[str, str],
                  request_id: str) -> dict[str, Any]:
        body = bridge_body(request)
        chat = BridgeChatBody(user=body.user, variables=body.variables, thread_id=body.thread_id)
        turn = await prepare_turn(self.domain, principal, body.bridge, chat,
                                  org_hint=body.org_id or headers.get(ORG_HEADER), request_id=request_id,
                                  headers=headers)
        result: dict[str, Any] = msgspec.to_builtins(await complete_turn(self.gateway, self.domain, turn))
        return result
