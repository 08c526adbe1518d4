"""The OpenAI-compatible ingress: ``POST /v1/chat/completions`` and ``GET /v1/models``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.response import Stream

from junction.errors import NotFound
from junction.formats.openai import ChunkWriter, decode_chat_request, encode_chat_response, error_event
from junction.ingress.streaming import relay
from junction.pipeline import Gateway
from junction.plugins.call import Call
from junction.plugins.protocols import InferenceRequest, Principal
from junction.request_id import request_id
from junction.routing.catalog import ModelCatalog, ModelEntry, ModelList

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def sse_body(events: AsyncIterator[Any], writer: ChunkWriter) -> AsyncIterator[bytes]:
    """OpenAI SSE bytes for unified events; an error after the first byte is an ``error`` chunk."""
    return relay(events, writer.write, error_event)


async def caller(gateway: Gateway, request: Request[Any, Any, Any]) -> Principal:
    """Authenticate before anything else is read: unauthenticated bodies are never parsed."""
    return await gateway.authenticate(request.headers)


def new_call(request: Request[Any, Any, Any], endpoint: str, principal: Principal, body: InferenceRequest) -> Call:
    return Call(request_id=request_id(request.scope), endpoint=endpoint, principal=principal, request=body,
                headers=request.headers)


#: Queues a chat request as a job (``x-junction-async: true``) and answers 202.
SubmitJob = Callable[[Principal, Request[Any, Any, Any], bytes], Awaitable[Response[Any]]]


def openai_routes(gateway: Gateway, catalog: ModelCatalog, submit_job: SubmitJob | None = None) -> list[HTTPRouteHandler]:
    @post("/v1/chat/completions", summary="OpenAI Chat Completions (JSON or SSE)", status_code=200)
    async def chat_completions(request: Request[Any, Any, Any]) -> Response[Any]:
        principal = await caller(gateway, request)
        if submit_job is not None and request.headers.get("x-junction-async") == "true":
            return await submit_job(principal, request, await request.body())
        chat = decode_chat_request(await request.body())
        call = new_call(request, "chat.completions", principal, chat)
        if chat.stream:
            events = await gateway.open_stream(call)
            writer = ChunkWriter(include_usage=chat.wants_usage_in_stream)
            return Stream(sse_body(events, writer), media_type="text/event-stream",
                          headers={**SSE_HEADERS, **call.response_headers})
        response = await gateway.complete(call)
        return Response(encode_chat_response(response), media_type="application/json",
                        headers=call.response_headers)

    @get("/v1/models", summary="Models this gateway serves, as provider/model and aliases")
    async def list_models(request: Request[Any, Any, Any]) -> ModelList:
        gateway.authorize(await caller(gateway, request), "chat")
        return await catalog.list()

    @get("/v1/models/{model_id:path}", summary="One model of /v1/models (ids may hold slashes)")
    async def retrieve_model(request: Request[Any, Any, Any], model_id: str) -> ModelEntry:
        gateway.authorize(await caller(gateway, request), "chat")
        entry = await catalog.get(model_id.lstrip("/"))
        if entry is None:
            raise NotFound(f"model {model_id.lstrip('/')!r} not found", param="model", code="model_not_found")
        return entry

    return [chat_completions, list_models, retrieve_model]
