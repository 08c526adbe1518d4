"""The Anthropic Messages ingress: ``POST /v1/messages`` (JSON and SSE) for any configured model.

Errors get Anthropic's error shape from :mod:`junction.errors` (chosen by this path); an error after the
stream has started is sent as Anthropic's ``event: error``, which the SDKs raise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litestar import Request, Response, post
from litestar.handlers import HTTPRouteHandler
from litestar.response import Stream

from junction.formats.anthropic.client_request import decode_messages_request
from junction.formats.anthropic.client_response import (
    MessageStreamWriter,
    encode_message_response,
    error_event,
)
from junction.formats.anthropic.rate_limit_headers import with_anthropic_names
from junction.ingress.openai import SSE_HEADERS, caller, new_call
from junction.ingress.streaming import relay
from junction.pipeline import Gateway
from junction.schemas.stream import StreamEvent


def message_events(events: AsyncIterator[StreamEvent], writer: MessageStreamWriter) -> AsyncIterator[bytes]:
    """Anthropic SSE bytes for unified events; a failure after the first byte is an error event."""
    return relay(events, writer.write, error_event, writer.finish)


def anthropic_routes(gateway: Gateway) -> list[HTTPRouteHandler]:
    @post("/v1/messages", summary="Anthropic Messages (JSON or SSE), any model", status_code=200)
    async def messages(request: Request[Any, Any, Any]) -> Response[Any]:
        principal = await caller(gateway, request)
        chat = decode_messages_request(await request.body())
        call = new_call(request, "messages", principal, chat)
        if chat.stream:
            events = await gateway.open_stream(call)
            return Stream(message_events(events, MessageStreamWriter()), media_type="text/event-stream",
                          headers={**SSE_HEADERS, **with_anthropic_names(call.response_headers)})
        response = await gateway.complete(call)
        return Response(encode_message_response(response), media_type="application/json",
                        headers=with_anthropic_names(call.response_headers))

    return [messages]
