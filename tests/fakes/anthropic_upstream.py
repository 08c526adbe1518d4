"""A fake Anthropic Messages API, built from Anthropic's API reference.

It checks what it is sent the way the real API does (``x-api-key``, ``anthropic-version``,
required ``max_tokens``, user/assistant alternation starting with the user, ``tool_result``
placement and pairing, block shapes, thinking rules) and answers with realistic JSON or SSE:
thinking blocks with signatures, tool-call JSON split across many ``input_json_delta`` events,
usage with cache tokens, and Anthropic's error bodies. It also satisfies the conformance kit's
:class:`~junction.testing.scripted_upstream.ConformanceUpstream` interface.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from junction.testing.scripted_upstream import Reply, SeenRequest, hold_until_disconnected
from junction.testing.upstream import FakeUpstream
from tests.fakes.anthropic_validation import request_problem

_FINISH_TO_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                   "content_filter": "refusal"}
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
               500: "api_error", 504: "timeout_error", 529: "overloaded_error"}


@dataclass
class AnthropicReply:
    text: str | None = None
    #: Each ``{"name": ..., "input": {...}}`` (an ``id`` is made up when absent).
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    thinking: str | None = None
    signature: str = "EqQBCkYIBxgCKkBsig+fake/thinking=="
    redacted_thinking: str | None = None
    stop_reason: str | None = None
    stop_sequence: str | None = None
    input_tokens: int = 25
    output_tokens: int = 12
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    thinking_tokens: int = 0
    chunk_size: int = 4
    #: Tool-input JSON is streamed in pieces of this many characters.
    json_chunk_size: int = 3
    #: Streaming: after the first text piece, wait for this event (set with ``fake.set_event``).
    hold: asyncio.Event | None = None
    #: Streaming: after the first text piece, wait until the client has gone.
    hold_until_disconnected: bool = False
    #: Streaming: after the first text piece, send this ``(type, message)`` error event and stop.
    error_midway: tuple[str, str] | None = None
    #: Streaming: after the first text piece, end the response cleanly with no ``message_stop``.
    truncate: bool = False


def anthropic_error(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message},
            "request_id": "req_011CfakeRequestId"}


class FakeAnthropic(FakeUpstream):
    """Serves ``/v1/messages`` and ``/v1/models`` at ``fake.url``."""

    def __init__(self, api_key: str = "sk-ant-upstream-test", models: list[str] | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.models = models or ["claude-sonnet-4-5", "claude-haiku-4-5"]
        self.replies: list[AnthropicReply] = []
        self.streams_completed = 0
        self._ids = 0

    # --- controls -----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self.url

    def script(self, reply: AnthropicReply | None = None, **fields: Any) -> AnthropicReply:
        reply = reply or AnthropicReply(**fields)
        self.replies.append(reply)
        return reply

    def reset(self) -> None:
        super().reset()
        self.replies.clear()
        self.streams_completed = 0

    def queue_reply(self, reply: Reply) -> None:
        self.script(AnthropicReply(
            text=reply.text or None,
            tool_calls=[{"name": call.name, "input": call.arguments} for call in reply.tool_calls],
            stop_reason=_FINISH_TO_STOP[reply.finish_kind],
            input_tokens=reply.prompt_tokens - reply.cached_tokens,
            cache_read_input_tokens=reply.cached_tokens,
            output_tokens=reply.completion_tokens,
            thinking_tokens=reply.reasoning_tokens,
            chunk_size=reply.chunk_size,
            hold_until_disconnected=reply.hold,
        ))

    def queue_error(self, status: int, message: str, *, retry_after: int | None = None) -> None:
        headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
        self.fail_next(status, anthropic_error(status, message), headers)

    def last_seen(self) -> SeenRequest:
        return seen_request(self.last.json())

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/messages", self.messages), web.get("/v1/models", self.list_models)]

    # --- handlers -----------------------------------------------------------------------------

    def _refuse(self, status: int, message: str) -> web.Response:
        return web.json_response(anthropic_error(status, message), status=status)

    def _check_headers(self, request: web.Request) -> web.Response | None:
        if request.headers.get("x-api-key") != self.api_key:
            return self._refuse(401, "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return self._refuse(400, "anthropic-version: header is required")
        return None

    async def list_models(self, request: web.Request) -> web.Response:
        if (refused := self._check_headers(request)) is not None:
            return refused
        data = [{"type": "model", "id": m, "display_name": m, "created_at": "2025-09-29T00:00:00Z"}
                for m in self.models]
        return web.json_response({"data": data, "has_more": False, "first_id": data[0]["id"],
                                  "last_id": data[-1]["id"]})

    async def messages(self, request: web.Request) -> web.StreamResponse:
        if (refused := self._check_headers(request)) is not None:
            return refused
        if not request.content_type.startswith("application/json"):
            return self._refuse(400, "content-type must be application/json")
        try:
            body = json.loads(await request.read())
        except json.JSONDecodeError:
            return self._refuse(400, "There was an error parsing the body of your request as JSON.")
        if (problem := request_problem(body)) is not None:
            return self._refuse(400, problem)
        reply = self.replies.pop(0) if self.replies else AnthropicReply()
        content = self._content(body, reply)
        if reply.stop_sequence is not None and reply.stop_sequence not in (body.get("stop_sequences") or ()):
            raise AssertionError(f"scripted stop_sequence {reply.stop_sequence!r} was not requested")
        stop_reason = reply.stop_reason or ("stop_sequence" if reply.stop_sequence is not None else
                                            "tool_use" if any(b["type"] == "tool_use" for b in content)
                                            else "end_turn")
        if body.get("stream"):
            return await self._stream(request, body, reply, content, stop_reason)
        return web.json_response({
            "id": self._next_id("msg"), "type": "message", "role": "assistant", "model": body["model"],
            "content": content, "stop_reason": stop_reason, "stop_sequence": reply.stop_sequence,
            "usage": self._usage(reply),
        })

    # --- answers ------------------------------------------------------------------------------

    def _next_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}_01Fake{self._ids:06d}"

    def _usage(self, reply: AnthropicReply) -> dict[str, Any]:
        usage: dict[str, Any] = {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens,
                                 "cache_creation_input_tokens": reply.cache_creation_input_tokens,
                                 "cache_read_input_tokens": reply.cache_read_input_tokens,
                                 "service_tier": "standard"}
        if reply.thinking_tokens:
            usage["output_tokens_details"] = {"thinking_tokens": reply.thinking_tokens}
        return usage

    def _content(self, body: dict[str, Any], reply: AnthropicReply) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = []
        if reply.thinking is not None:
            content.append({"type": "thinking", "thinking": reply.thinking, "signature": reply.signature})
        if reply.redacted_thinking is not None:
            content.append({"type": "redacted_thinking", "data": reply.redacted_thinking})
        calls = list(reply.tool_calls)
        forced = (body.get("tool_choice") or {}).get("name") if (body.get("tool_choice") or {}).get(
            "type") == "tool" else None
        text = reply.text
        if forced and not calls:
            # The model must call the forced tool: a JSON answer becomes its input.
            calls = [{"name": forced, "input": json.loads(text) if text else {}}]
            text = None
        if text is None and not calls and reply.thinking is None:
            text = "echo: " + last_user_text(body)
        if text:
            content.append({"type": "text", "text": text})
        for call in calls:
            content.append({"type": "tool_use", "id": call.get("id") or self._next_id("toolu"),
                            "name": call["name"], "input": call["input"]})
        return content

    async def _stream(self, request: web.Request, body: dict[str, Any], reply: AnthropicReply,
                      content: list[dict[str, Any]], stop_reason: str) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                               "Cache-Control": "no-cache", "request-id": "req_011Cfake"})
        await response.prepare(request)

        async def send(data: dict[str, Any]) -> None:
            await response.write(f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode())

        usage = self._usage(reply)
        try:
            await send({"type": "message_start", "message": {
                "id": self._next_id("msg"), "type": "message", "role": "assistant", "model": body["model"],
                "content": [], "stop_reason": None, "stop_sequence": None,
                "usage": {**usage, "output_tokens": 1}}})
            await send({"type": "ping"})
            first_text_sent = False
            for index, block in enumerate(content):
                kind = block["type"]
                if kind == "text":
                    await send({"type": "content_block_start", "index": index,
                                "content_block": {"type": "text", "text": ""}})
                    text = block["text"]
                    for start in range(0, len(text), reply.chunk_size):
                        piece = text[start:start + reply.chunk_size]
                        await send({"type": "content_block_delta", "index": index,
                                    "delta": {"type": "text_delta", "text": piece}})
                        if not first_text_sent:
                            first_text_sent = True
                            if await self._pause(request, reply, send):
                                return response
                elif kind == "thinking":
                    await send({"type": "content_block_start", "index": index,
                                "content_block": {"type": "thinking", "thinking": "", "signature": ""}})
                    thinking = block["thinking"]
                    for start in range(0, len(thinking), reply.chunk_size):
                        await send({"type": "content_block_delta", "index": index, "delta": {
                            "type": "thinking_delta", "thinking": thinking[start:start + reply.chunk_size]}})
                    await send({"type": "content_block_delta", "index": index,
                                "delta": {"type": "signature_delta", "signature": block["signature"]}})
                elif kind == "redacted_thinking":
                    await send({"type": "content_block_start", "index": index, "content_block": block})
                else:  # tool_use: the input JSON arrives in many small pieces
                    await send({"type": "content_block_start", "index": index, "content_block": {
                        "type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}})
                    arguments = json.dumps(block["input"])
                    await send({"type": "content_block_delta", "index": index,
                                "delta": {"type": "input_json_delta", "partial_json": ""}})
                    for start in range(0, len(arguments), reply.json_chunk_size):
                        piece = arguments[start:start + reply.json_chunk_size]
                        await send({"type": "content_block_delta", "index": index,
                                    "delta": {"type": "input_json_delta", "partial_json": piece}})
                await send({"type": "content_block_stop", "index": index})
            await send({"type": "message_delta", "delta": {"stop_reason": stop_reason,
                                                           "stop_sequence": reply.stop_sequence},
                        "usage": {"output_tokens": reply.output_tokens,
                                  **({"output_tokens_details": usage["output_tokens_details"]}
                                     if "output_tokens_details" in usage else {})}})
            await send({"type": "message_stop"})
            await response.write_eof()
            self.streams_completed += 1
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnects += 1
            raise
        return response

    async def _pause(self, request: web.Request, reply: AnthropicReply, send: Any) -> bool:
        """After the first text piece: hold, or fail, as scripted. True when the stream is over."""
        if reply.hold is not None:
            await reply.hold.wait()
        if reply.hold_until_disconnected:
            if await hold_until_disconnected(request):
                self.disconnects += 1
                return True
        if reply.error_midway is not None:
            error_type, message = reply.error_midway
            await send({"type": "error", "error": {"type": error_type, "message": message}})
            return True
        return reply.truncate


# --- reading a request back in provider-neutral terms ------------------------------------------


def last_user_text(body: dict[str, Any]) -> str:
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return content
    return " ".join(block.get("text", "") for block in content if block.get("type") == "text")


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    return [block["text"] for block in content or () if block.get("type") == "text"]


def seen_request(body: dict[str, Any]) -> SeenRequest:
    seen = SeenRequest(model=body["model"], stream=bool(body.get("stream")))
    seen.texts.extend(_texts(body.get("system")))
    for message in body["messages"]:
        content = message["content"]
        seen.texts.extend(_texts(content))
        for block in content if isinstance(content, list) else ():
            kind = block["type"]
            if kind == "image":
                source = block["source"]
                seen.images.append(f"data:{source['media_type']};base64,{source['data']}"
                                   if source["type"] == "base64" else source.get("url", ""))
            elif kind == "tool_use":
                seen.tool_calls.append((block["name"], block["input"]))
            elif kind == "tool_result":
                seen.tool_results.append(" ".join(_texts(block.get("content"))))
    tools = body.get("tools") or []
    seen.tool_names = [tool["name"] for tool in tools]
    choice = body.get("tool_choice") or {}
    forced = next((t for t in tools if choice.get("type") == "tool" and t["name"] == choice.get("name")),
                  None)
    if forced is not None:
        seen.json_schema = forced["input_schema"]
    elif (body.get("output_config") or {}).get("format"):
        seen.json_schema = body["output_config"]["format"]["schema"]
    return seen

