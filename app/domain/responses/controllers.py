"""``POST /v1/responses`` (JSON and SSE), ``GET``/``DELETE /v1/responses/{id}`` and
``GET /v1/responses/{id}/input_items``.

A Responses call is a chat call: the request is translated into the unified ChatRequest and runs
through the same stages (auth, limits, budgets, cache, metrics, routing) with endpoint
``responses``. With ``store`` (the default) the response is saved *before* the client gets it —
for a stream, before ``response.completed`` — so a continuation sent right after finds it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.response import Stream

from junction.domain.http import caller
from junction.domain.responses.service import ResponseState
from junction.domain.services import Domain
from junction.errors import InvalidRequest, JunctionError
from junction.formats.responses.output import from_chat_response
from junction.formats.responses.request import (
    decode_responses_request,
    items_to_messages,
    new_response_id,
    normalize_items,
    to_chat_request,
)
from junction.formats.responses.stream import ResponseStreamWriter
from junction.formats.responses.wire import DeletedResponse, InputItemList, ResponsesRequest
from junction.ingress.openai import SSE_HEADERS, new_call
from junction.ingress.openai import caller as inference_caller
from junction.pipeline import Gateway
from junction.plugins.protocols import Principal
from junction.schemas.chat import Message
from junction.schemas.stream import StreamEvent

log = logging.getLogger("junction.responses")
_encoder = msgspec.json.Encoder()
_MAX_PAGE = 100


def responses_routes(gateway: Gateway, domain: Domain) -> list[HTTPRouteHandler]:
    state = ResponseState(domain.documents.responses)

    async def remember(
        principal: Principal,
        org_id: str | None,
        request: ResponsesRequest,
        response: Any,
        items: list[dict[str, Any]],
        context: list[Message],
    ) -> None:
        if request.store is False:
            return
        await state.save(principal, org_id, msgspec.to_builtins(response), items, context)

    @post(
        "/v1/responses",
        summary="OpenAI Responses (JSON or SSE), any model; stateful via previous_response_id",
        status_code=200,
    )
    async def create_response(request: Request[Any, Any, Any]) -> Response[Any]:
        principal = await inference_caller(gateway, request)
        body = decode_responses_request(await request.body())
        org_id = state.org_of(principal, request.query_params, request.headers)
        items = normalize_items(body)
        history: list[Message] = []
        if body.previous_response_id is not None:
            history = await state.history(principal, org_id, body.previous_response_id)
        conversation = [*history, *items_to_messages(items)]
        call = new_call(request, "responses", principal, to_chat_request(body, conversation))
        response_id = new_response_id()
        if body.stream:
            events = await gateway.open_stream(call)
            writer = ResponseStreamWriter(body, response_id, int(time.time()))

            async def save(response: Any, message: Message) -> None:
                await remember(principal, org_id, body, response, items, [*conversation, message])

            return Stream(
                _sse(events, writer, save),
                media_type="text/event-stream",
                headers={**SSE_HEADERS, **call.response_headers},
            )
        chat = await gateway.complete(call)
        response, message = from_chat_response(body, response_id, chat)
        await remember(principal, org_id, body, response, items, [*conversation, message])
        return Response(
            _encoder.encode(response), media_type="application/json", headers=call.response_headers
        )

    @get("/v1/responses/{response_id:str}", summary="A stored response")
    async def get_response(request: Request[Any, Any, Any], response_id: str) -> Response[Any]:
        principal = await caller(gateway, request, "chat")
        org_id = state.org_of(principal, request.query_params, request.headers)
        record = await state.read(principal, org_id, response_id)
        return Response(_encoder.encode(record.response), media_type="application/json")

    @delete("/v1/responses/{response_id:str}", summary="Delete a stored response", status_code=200)
    async def delete_response(request: Request[Any, Any, Any], response_id: str) -> DeletedResponse:
        principal = await caller(gateway, request, "chat")
        org_id = state.org_of(principal, request.query_params, request.headers)
        await state.delete(principal, org_id, response_id)
        return DeletedResponse(id=response_id)

    @get("/v1/responses/{response_id:str}/input_items", summary="The input items of a stored response")
    async def input_items(request: Request[Any, Any, Any], response_id: str) -> InputItemList:
        principal = await caller(gateway, request, "chat")
        org_id = state.org_of(principal, request.query_params, request.headers)
        record = await state.read(principal, org_id, response_id)
        return _page(record.input_items, request.query_params)

    return [create_response, get_response, delete_response, input_items]


def _page(items: list[dict[str, Any]], query: Any) -> InputItemList:
    """OpenAI's list paging: ``order`` (``desc`` by default), ``after`` an item id, ``limit`` 1-100."""
    order = query.get("order") or "desc"
    if order not in ("asc", "desc"):
        raise InvalidRequest("order: must be asc or desc", param="order", code="invalid_value")
    try:
        limit = int(query.get("limit") or 20)
    except ValueError:
        limit = 0
    if not 1 <= limit <= _MAX_PAGE:
        raise InvalidRequest(
            f"limit: must be an integer from 1 to {_MAX_PAGE}", param="limit", code="invalid_value"
        )
    ordered = items if order == "asc" else items[::-1]
    after = query.get("after")
    if after:
        ids = [item.get("id") for item in ordered]
        if after not in ids:
            raise InvalidRequest(f"after: no input item {after!r}", param="after", code="invalid_value")
        ordered = ordered[ids.index(after) + 1 :]
    data = ordered[:limit]
    return InputItemList(
        data=data,
        first_id=data[0]["id"] if data else "",
        last_id=data[-1]["id"] if data else "",
        has_more=len(ordered) > limit,
    )


async def _sse(
    events: AsyncIterator[StreamEvent], writer: ResponseStreamWriter, save: Any
) -> AsyncIterator[bytes]:
    """The Responses event sequence; the response is stored before ``response.completed``. A
    failure after the first byte can only reach the client as ``response.failed``."""
    try:
        async for event in events:
            data = writer.write(event)
            if data is not None:
                yield data
        tail = writer.close_items()
        if tail:
            yield tail
        response, message = writer.result()
        await save(response, message)
        yield writer.completed(response)
    except JunctionError as error:
        yield writer.failed(error)
    except Exception as error:  # not ours: logged with its traceback, the client gets a generic error
        log.exception("a responses stream failed after it started")
        yield writer.failed(error)
    finally:
        await events.aclose()  # type: ignore[attr-defined]
