"""``GET /api/v1/threads/{id}``: a conversation's messages, for who started it, its org's admins
and the master key (``chat`` scope). Served from Redis when the cache store is Redis."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from litestar import Request, get
from litestar.handlers import HTTPRouteHandler

from junction.domain.access import check_thread_reader, org_for, requested_org
from junction.domain.http import caller
from junction.domain.services import Domain
from junction.errors import NotFound
from junction.pipeline import Gateway
from junction.schemas.chat import Message


class ThreadView(msgspec.Struct, kw_only=True):
    id: str
    bridge_id: str | None
    #: Who started it (``key:<id>``, ``jwt:<subject>``, ``master``); ``None`` for older threads.
    owner: str | None
    messages: list[Message]
    message_count: int
    created_at: datetime
    updated_at: datetime


def thread_routes(gateway: Gateway, domain: Domain) -> list[HTTPRouteHandler]:
    @get("/api/v1/threads/{thread_id:str}", summary="A conversation thread and its messages")
    async def get_thread(request: Request[Any, Any, Any], thread_id: str) -> ThreadView:
        principal = await caller(gateway, request, "chat")
        org_id = org_for(principal, requested_org(request.query_params, request.headers), what="thread")
        if org_id is None:  # the master key naming no org: the thread's id says which (one indexed read)
            org_id = await domain.documents.threads.org_of(thread_id)
            if org_id is None:
                raise NotFound("thread not found", code="not_found")
        try:
            thread = await domain.threads.get(org_id, thread_id)
        except NotFound:
            raise NotFound("thread not found", code="not_found") from None
        check_thread_reader(principal, thread)
        return ThreadView(
            id=thread.id,
            bridge_id=thread.bridge_id,
            owner=thread.owner,
            messages=thread.messages,
            message_count=thread.message_count,
            created_at=thread.created_at,
            updated_at=thread.updated_at,
        )

    return [get_thread]
