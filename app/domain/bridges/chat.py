"""``POST /api/v1/bridges/{id-or-slug}/chat``: one turn of a conversation with a bridge.

The turn is an ordinary chat request for ``bridge/<id>`` (so limits, cache, routing, fallbacks,
org credentials and usage all apply), whose messages are the thread's last N plus the new user
message. After the answer, the user message and the reply are appended to the thread; a thread is
created (and its id returned) when the call names none. With ``stream: true`` the answer is
OpenAI-style SSE and the thread id comes in the ``x-junction-thread-id`` header.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.handlers import HTTPRouteHandler
from litestar.response import Stream

from app.agents.loop import ToolTranscript
from app.domain.access import check_thread_reader, requested_org, thread_owner
from app.domain.http import caller, decode_body
from app.domain.services import Domain
from app.formats.openai import ChunkWriter
from app.ingress.openai import SSE_HEADERS, sse_body
from app.pipeline import Gateway, close_streams
from app.plugins.call import Call
from app.plugins.protocols import Principal
from app.plugins.services import BRIDGE_MODEL_PREFIX
from app.request_id import request_id
from app.schemas.chat import ChatRequest, FunctionCall, Message, StreamOptions, ToolCall, Usage
from app.schemas.stream import StreamEvent, TextDelta, ToolCallDelta
from app.stores.documents.protocol import ResolvedBridge, Thread

THREAD_HEADER = "x-junction-thread-id"
VERSION_HEADER = "x-junction-bridge-version"


class BridgeChatBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    user: str
    variables: dict[str, Any] = {}
    thread_id: str | None = None
    stream: bool = False


class ReplyMessage(msgspec.Struct, kw_only=True):
    role: str
    content: str | None
    tool_calls: list[ToolCall] | None = None


class BridgeChatReply(msgspec.Struct, kw_only=True):
    thread_id: str
    bridge_version: int | None
    model: str
    message: ReplyMessage
    usage: Usage | None


def _reply_of(message: Message) -> Message:
    """What the thread keeps of an answer: role, text and tool calls."""
    return Message(role="assistant", content=message.text() or None, tool_calls=message.tool_calls or None)


async def _recorded(
    events: AsyncIterator[StreamEvent], on_complete: Callable[[Message], Awaitable[None]]
) -> AsyncIterator[StreamEvent]:
    """Pass ``events`` through; once they end normally, hand the assembled reply to ``on_complete``."""
    text: list[str] = []
    calls: dict[int, ToolCall] = {}
    try:
        async for event in events:
            if isinstance(event, TextDelta) and event.choice == 0:
                text.append(event.text)
            elif isinstance(event, ToolCallDelta) and event.choice == 0:
                known = calls.get(event.index)
                if known is None:
                    calls[event.index] = ToolCall(
                        id=event.id or "",
                        function=FunctionCall(name=event.name or "", arguments=event.arguments),
                    )
                else:
                    known.function.arguments += event.arguments
            yield event
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    tool_calls = [calls[index] for index in sorted(calls)] or None
    await on_complete(Message(role="assistant", content="".join(text) or None, tool_calls=tool_calls))


async def bridge_turn(gateway: Gateway, domain: Domain, request: Request[Any, Any, Any], principal: Principal,
                      resolved: ResolvedBridge, body: BridgeChatBody, *, endpoint: str = "bridges.chat",
                      headers: dict[str, str] | None = None) -> Response[Any]:
    """One turn with the bridge (see the module docstring), for ``principal``, who must be allowed
    the thread ``body.thread_id`` names. ``headers`` are added to the answer's."""
    threads = domain.threads
    bridge = resolved.bridge
    org_id = bridge.org_id
    owner = thread_owner(principal)
    thread: Thread | None = None
    if body.thread_id is not None:
        thread = await threads.for_bridge(org_id, body.thread_id, bridge.id)
        check_thread_reader(principal, thread, param="thread_id")
    user = Message(role="user", content=body.user)
    history = threads.recent(thread) if thread is not None else []
    chat = ChatRequest(
        model=f"{BRIDGE_MODEL_PREFIX}{bridge.id}",
        messages=[*history, user],
        stream=True if body.stream else None,
        stream_options=StreamOptions(include_usage=True) if body.stream else None,
        extra_fields={"variables": msgspec.Raw(msgspec.json.encode(body.variables))},
    )
    call = Call(
        request_id=request_id(request.scope),
        endpoint=endpoint,
        principal=principal,
        request=chat,
        headers=request.headers,
        org_id=org_id,
        thread_id=body.thread_id,
    )
    call.state[ResolvedBridge] = resolved  # the bridges stage expands it without a second lookup
    extra = headers or {}

    async def remember(reply: Message) -> Thread:
        current = thread if thread is not None else await threads.create(org_id, bridge.id, owner)
        rounds = call.state.get(ToolTranscript)
        if rounds is None:
            await threads.append(org_id, current, [user, reply])
        else:  # the server-side tool rounds: their calls and results, then the final answer
            final = _reply_of(rounds.final) if rounds.final is not None else reply
            await threads.append(org_id, current, [user, *rounds.messages, final])
        return current

    if body.stream:
        events = await gateway.open_stream(call)
        if thread is None:
            try:
                thread = await threads.create(org_id, bridge.id, owner)
            except BaseException:
                await close_streams(call)  # the relay never started: close what it would have
                raise
            call.thread_id = thread.id

        async def on_complete(reply: Message) -> None:
            await remember(reply)

        stream_headers = {**SSE_HEADERS, **call.response_headers, **extra, THREAD_HEADER: thread.id}
        if call.bridge_version is not None:
            stream_headers[VERSION_HEADER] = str(call.bridge_version)
        return Stream(
            sse_body(_recorded(events, on_complete), ChunkWriter(include_usage=True)),
            media_type="text/event-stream",
            headers=stream_headers,
        )

    response = await gateway.complete(call)
    answer = response.choices[0].message if response.choices else Message(role="assistant")
    kept = _reply_of(answer)
    saved = await remember(kept)
    reply = BridgeChatReply(
        thread_id=saved.id,
        bridge_version=call.bridge_version,
        model=call.deployment or response.model,
        message=ReplyMessage(role="assistant", content=kept.content, tool_calls=kept.tool_calls),
        usage=response.usage,
    )
    return Response(reply, headers={**call.response_headers, **extra, THREAD_HEADER: saved.id})


def bridge_chat_routes(gateway: Gateway, domain: Domain) -> list[HTTPRouteHandler]:
    @post(
        "/api/v1/bridges/{bridge_id:str}/chat", summary="One conversation turn with a bridge", status_code=200
    )
    async def bridge_chat(request: Request[Any, Any, Any], bridge_id: str) -> Response[Any]:
        principal = await caller(gateway, request, "chat")
        body = decode_body(await request.body(), BridgeChatBody)
        resolved = await domain.bridges.find_active(
            principal, requested_org(request.query_params, request.headers), bridge_id
        )
        return await bridge_turn(gateway, domain, request, principal, resolved, body)

    return [bridge_chat]
