"""``POST /api/v1/bridges/{id-or-slug}/chat``: one turn of a conversation with a bridge.

The turn is an ordinary chat request for ``bridge/<id>`` (so limits, cache, routing, fallbacks,
org credentials and usage all apply), whose messages are the thread's last N plus the new user
message. After the answer, the user message and the reply are appended to the thread; a thread is
created (and its id returned) when the call names none. With ``stream: true`` the answer is
OpenAI-style SSE and the thread id comes in the ``x-junction-thread-id`` header.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.handlers import HTTPRouteHandler
from litestar.response import Stream

from junction.agents.loop import ToolTranscript
from junction.domain.access import check_thread_reader, requested_org, thread_owner
from junction.domain.http import caller, decode_body
from junction.domain.services import Domain
from junction.formats.openai import ChunkWriter
from junction.ingress.openai import SSE_HEADERS, sse_body
from junction.pipeline import Gateway, close_streams
from junction.plugins.call import Call
from junction.plugins.protocols import Principal
from junction.plugins.services import BRIDGE_MODEL_PREFIX
from junction.request_id import request_id
from junction.schemas.chat import ChatRequest, FunctionCall, Message, StreamOptions, ToolCall, Usage
from junction.schemas.stream import StreamEvent, TextDelta, ToolCallDelta
from junction.stores.documents.bridges import ResolvedBridge
from junction.stores.documents.protocol import Thread

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


@dataclass(slots=True)
class Turn:
    """One bridge turn being answered: its call, and where its messages are kept."""

    call: Call
    org_id: str
    bridge_id: str
    owner: str
    user: Message
    thread: Thread | None
    stream: bool = False


async def prepare_turn(domain: Domain, principal: Principal, bridge_ref: str,
                       body: BridgeChatBody, *, org_hint: str | None, request_id: str,
                       headers: Mapping[str, str]) -> Turn:
    """The bridge ``bridge_ref`` names (active, within the caller's reach) and the turn for it."""
    resolved = await domain.bridges.find_active(principal, org_hint, bridge_ref)
    return await turn_for(domain, principal, resolved, body, request_id=request_id, headers=headers)


async def turn_for(domain: Domain, principal: Principal, resolved: ResolvedBridge, body: BridgeChatBody, *,
                   request_id: str, headers: Mapping[str, str], endpoint: str = "bridges.chat") -> Turn:
    """The thread (when named, checked readable) and the call of one turn with a resolved bridge."""
    bridge = resolved.bridge
    thread: Thread | None = None
    if body.thread_id is not None:
        thread = await domain.threads.for_bridge(bridge.org_id, body.thread_id, bridge.id)
        check_thread_reader(principal, thread, param="thread_id")
    user = Message(role="user", content=body.user)
    history = domain.threads.recent(thread) if thread is not None else []
    chat = ChatRequest(
        model=f"{BRIDGE_MODEL_PREFIX}{bridge.id}",
        messages=[*history, user],
        stream=True if body.stream else None,
        stream_options=StreamOptions(include_usage=True) if body.stream else None,
        extra_fields={"variables": msgspec.Raw(msgspec.json.encode(body.variables))},
    )
    call = Call(request_id=request_id, endpoint=endpoint, principal=principal, request=chat,
                headers=headers, org_id=bridge.org_id, thread_id=body.thread_id)
    call.state[ResolvedBridge] = resolved  # the bridges stage expands it without a second lookup
    return Turn(call=call, org_id=bridge.org_id, bridge_id=bridge.id, owner=thread_owner(principal),
                user=user, thread=thread, stream=body.stream)


async def remember(domain: Domain, turn: Turn, reply: Message) -> Thread:
    """Append the user message, any server-side tool rounds and the reply to the turn's thread
    (created when it named none)."""
    current = turn.thread
    if current is None:
        current = await domain.threads.create(turn.org_id, turn.bridge_id, turn.owner)
    rounds = turn.call.state.get(ToolTranscript)
    if rounds is None:
        await domain.threads.append(turn.org_id, current, [turn.user, reply])
    else:  # the server-side tool rounds: their calls and results, then the final answer
        final = _reply_of(rounds.final) if rounds.final is not None else reply
        await domain.threads.append(turn.org_id, current, [turn.user, *rounds.messages, final])
    return current


async def complete_turn(gateway: Gateway, domain: Domain, turn: Turn) -> BridgeChatReply:
    """Run a non-streaming turn and keep it in its thread."""
    call = turn.call
    response = await gateway.complete(call)
    answer = response.choices[0].message if response.choices else Message(role="assistant")
    kept = _reply_of(answer)
    saved = await remember(domain, turn, kept)
    return BridgeChatReply(
        thread_id=saved.id,
        bridge_version=call.bridge_version,
        model=call.deployment or response.model,
        message=ReplyMessage(role="assistant", content=kept.content, tool_calls=kept.tool_calls),
        usage=response.usage,
    )


async def answer_turn(gateway: Gateway, domain: Domain, turn: Turn, *,
                      headers: Mapping[str, str] | None = None) -> Response[Any]:
    """Answer a turn over HTTP, as JSON or as an OpenAI-shaped stream; ``headers`` are added."""
    call = turn.call
    extra = dict(headers or {})
    if turn.stream:
        events = await gateway.open_stream(call)
        if turn.thread is None:
            try:
                turn.thread = await domain.threads.create(turn.org_id, turn.bridge_id, turn.owner)
            except BaseException:
                await close_streams(call)  # the relay never started: close what it would have
                raise
            call.thread_id = turn.thread.id

        async def on_complete(reply: Message) -> None:
            await remember(domain, turn, reply)

        stream_headers = {**SSE_HEADERS, **call.response_headers, **extra, THREAD_HEADER: turn.thread.id}
        if call.bridge_version is not None:
            stream_headers[VERSION_HEADER] = str(call.bridge_version)
        return Stream(
            sse_body(_recorded(events, on_complete), ChunkWriter(include_usage=True)),
            media_type="text/event-stream",
            headers=stream_headers,
        )
    reply = await complete_turn(gateway, domain, turn)
    return Response(reply, headers={**call.response_headers, **extra, THREAD_HEADER: reply.thread_id})


async def bridge_turn(gateway: Gateway, domain: Domain, request: Request[Any, Any, Any], principal: Principal,
                      resolved: ResolvedBridge, body: BridgeChatBody, *, endpoint: str = "bridges.chat",
                      headers: Mapping[str, str] | None = None) -> Response[Any]:
    """One turn with an already resolved bridge, for ``principal``, who must be allowed the thread
    ``body.thread_id`` names. ``headers`` are added to the answer's."""
    turn = await turn_for(domain, principal, resolved, body, request_id=request_id(request.scope),
                          headers=request.headers, endpoint=endpoint)
    return await answer_turn(gateway, domain, turn, headers=headers)


#: Queues a bridge turn as a job (``x-junction-async: true``) and answers 202.
SubmitBridgeJob = Callable[[Principal, Request[Any, Any, Any], str, BridgeChatBody], Awaitable[Response[Any]]]


def bridge_chat_routes(gateway: Gateway, domain: Domain,
                       submit_job: SubmitBridgeJob | None = None) -> list[HTTPRouteHandler]:
    @post(
        "/api/v1/bridges/{bridge_id:str}/chat",
        summary="One conversation turn with a bridge (x-junction-async: true queues it as a job)",
        status_code=200,
    )
    async def bridge_chat(request: Request[Any, Any, Any], bridge_id: str) -> Response[Any]:
        principal = await caller(gateway, request, "chat")
        body = decode_body(await request.body(), BridgeChatBody)
        if submit_job is not None and request.headers.get("x-junction-async") == "true":
            return await submit_job(principal, request, bridge_id, body)
        turn = await prepare_turn(domain, principal, bridge_id, body,
                                  org_hint=requested_org(request.query_params, request.headers),
                                  request_id=request_id(request.scope), headers=request.headers)
        return await answer_turn(gateway, domain, turn)

    return [bridge_chat]
