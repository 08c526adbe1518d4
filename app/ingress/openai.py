"""The OpenAI-compatible ingress: ``POST /v1/chat/completions`` and ``GET /v1/models``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.response import Stream

from app.formats.openai import ChunkWriter, decode_chat_request, encode_chat_response, error_event
from app.ingress.streaming import relay
from app.pipeline import Gateway
from app.plugins.protocols import CallContext
from app.request_id import request_id
from app.routing.catalog import ModelCatalog, ModelList

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def sse_body(events: AsyncIterator[Any], writer: ChunkWriter) -> AsyncIterator[bytes]:
    """OpenAI SSE bytes for unified events; an error after the first byte is an ``error`` chunk."""
    return relay(events, writer.write, error_event)


async def begin_call(gateway: Gateway, request: Request[Any, Any, Any], endpoint: str) -> CallContext:
    """Authenticate before anything else is read: unauthenticated bodies are never parsed."""
    headers = request.headers
    call = CallContext(request_id=request_id(request.scope), endpoint=endpoint, headers=headers)
    call.principal = await gateway.authenticate(headers)
    return call


def openai_routes(gateway: Gateway, catalog: ModelCatalog) -> list[HTTPRouteHandler]:
    @post("/v1/chat/completions", summary="OpenAI Chat Completions (JSON or SSE)", status_code=200)
    async def chat_completions(request: Request[Any, Any, Any]) -> Response[Any]:
        call = await begin_call(gateway, request, "chat.completions")
        chat = decode_chat_request(await request.body())
        if chat.stream:
            events = await gateway.open_stream(call, chat)
            writer = ChunkWriter(include_usage=chat.wants_usage_in_stream)
            return Stream(sse_body(events, writer), media_type="text/event-stream",
                          headers={**SSE_HEADERS, **call.response_headers})
        response = await gateway.complete(call, chat)
        return Response(encode_chat_response(response), media_type="application/json",
                        headers=call.response_headers)

    @get("/v1/models", summary="Models this gateway serves, as provider/model and aliases")
    async def list_models(request: Request[Any, Any, Any]) -> ModelList:
        call = await begin_call(gateway, request, "models")
        gateway.authorize(call.principal, "chat")  # type: ignore[arg-type]
        return await catalog.list()

    return [chat_completions, list_models]
