"""Anthropic Messages responses, stream events and errors → unified model (the provider's side)."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

import msgspec

from junction.errors import (
    AuthenticationFailed,
    InvalidRequest,
    JunctionError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    UpstreamError,
    UpstreamOverloaded,
    UpstreamTimeout,
)
from junction.formats.anthropic.wire import (
    FINISH_REASONS,
    METADATA_KEY,
    AnthropicUsage,
    ErrorDetail,
    ErrorEnvelope,
    RedactedThinkingBlock,
    ThinkingBlock,
    ThinkingBlocks,
    UpstreamEvent,
    UpstreamMessage,
    unified_usage,
)
from junction.formats.json_body import decode_upstream
from junction.schemas.chat import ChatResponse, Choice, FunctionCall, Message, ToolCall
from junction.schemas.stream import (
    Finish,
    ReasoningDelta,
    StreamDone,
    StreamEvent,
    StreamStart,
    TextDelta,
    ToolCallDelta,
    UsageReport,
)
from junction.upstream.http import error_for_status

_message_decoder = msgspec.json.Decoder(UpstreamMessage)
_event_decoder = msgspec.json.Decoder(UpstreamEvent)
_error_decoder = msgspec.json.Decoder(ErrorEnvelope)
#: Marks the forced response tool's content block (its input is the answer text).
_RESPONSE_TOOL_INDEX = -1
# --- responses --------------------------------------------------------------------------------


def _finish_reason(stop_reason: str | None, made_tool_calls: bool) -> str:
    if stop_reason == "tool_use" and not made_tool_calls:
        return "stop"  # only the response tool was called: the JSON answer is complete
    return FINISH_REASONS.get(stop_reason or "", "stop")


def decode_message_response(body: bytes, provider: str, response_tool: str | None) -> ChatResponse:
    message = decode_upstream(_message_decoder, body, provider, "a response")
    texts: list[str] = []
    reasoning: list[str] = []
    thinking_blocks: ThinkingBlocks = []
    tool_calls: list[ToolCall] = []
    for block in message.content:
        kind = block.type
        if kind == "text":
            texts.append(block.text or "")
        elif kind == "tool_use":
            arguments = bytes(block.input).decode() if block.input else "{}"
            if block.name == response_tool:
                texts.append(arguments)
            else:
                tool_calls.append(ToolCall(id=block.id or "", function=FunctionCall(name=block.name or "",
                                                                                    arguments=arguments)))
        elif kind == "thinking":
            reasoning.append(block.thinking or "")
            signed = ThinkingBlock(thinking=block.thinking or "", signature=block.signature or "")
            thinking_blocks.append(signed)
        elif kind == "redacted_thinking":
            thinking_blocks.append(RedactedThinkingBlock(data=block.data or ""))
        # Server-tool blocks (web search and the like) have no unified form and are not relayed.
    metadata: dict[str, Any] = {}
    if thinking_blocks:
        metadata["thinking_blocks"] = msgspec.to_builtins(thinking_blocks)
    if message.stop_sequence is not None:
        metadata["stop_sequence"] = message.stop_sequence
    unified = Message(
        role="assistant",
        content="".join(texts) if texts or not tool_calls else None,
        tool_calls=tool_calls or None,
        reasoning="".join(reasoning) if reasoning else None,
        provider_metadata={METADATA_KEY: metadata} if metadata else None,
    )
    return ChatResponse(
        id=message.id, created=int(time.time()), model=message.model,
        choices=[Choice(index=0, message=unified, finish_reason=_finish_reason(message.stop_reason,
                                                                               bool(tool_calls)))],
        usage=unified_usage(message.usage) if message.usage is not None else None,
    )


class EventReader:
    """Turns one upstream stream's event data into unified events."""

    __slots__ = ("_provider", "_response_tool", "_tool_slots", "_tool_calls", "_start_usage", "_finished")

    def __init__(self, provider: str, response_tool: str | None) -> None:
        self._provider = provider
        self._response_tool = response_tool
        #: Anthropic content-block index → unified tool-call index (or the response tool's marker).
        self._tool_slots: dict[int, int] = {}
        self._tool_calls = 0
        self._start_usage = AnthropicUsage()
        self._finished = False

    def close(self) -> list[StreamEvent]:
        """The upstream ended without ``message_stop``. After a ``stop_reason`` the answer is whole;
        before one it was cut off, and the client must get an error, not a stream that looks done."""
        if not self._finished:
            raise UpstreamError(f"{self._provider} ended the stream before it finished",
                                code="upstream_stream_truncated")
        return [StreamDone()]

    def read(self, data: str) -> list[StreamEvent]:
        event = decode_upstream(_event_decoder, data, self._provider, "a stream event")
        kind = event.type
        if kind == "content_block_delta" and event.delta is not None:
            return self._delta(event)
        if kind == "content_block_start" and event.content_block is not None:
            return self._block_start(event)
        if kind == "message_start" and event.message is not None:
            message = event.message
            usage = None
            if message.usage is not None:
                self._start_usage = message.usage
                usage = unified_usage(message.usage)
            return [StreamStart(id=message.id, model=message.model, created=int(time.time()), usage=usage)]
        if kind == "message_delta":
            return self._message_delta(event)
        if kind == "message_stop":
            return [StreamDone()]
        if kind == "error":
            raise stream_error(self._provider, event.error or ErrorDetail())
        return []  # ping, content_block_stop, and event types newer than this reader

    def _delta(self, event: UpstreamEvent) -> list[StreamEvent]:
        delta = event.delta
        assert delta is not None
        kind = delta.type
        if kind == "text_delta":
            return [TextDelta(text=delta.text or "")]
        if kind == "input_json_delta":
            slot = self._tool_slots.get(event.index)
            if not delta.partial_json or slot is None:
                return []
            if slot == _RESPONSE_TOOL_INDEX:
                return [TextDelta(text=delta.partial_json)]
            return [ToolCallDelta(index=slot, arguments=delta.partial_json)]
        if kind == "thinking_delta":
            return [ReasoningDelta(text=delta.thinking or "")]
        if kind == "signature_delta":
            return [ReasoningDelta(provider_metadata={METADATA_KEY: {"signature": delta.signature or ""}})]
        return []  # citations_delta and newer delta types have no unified form

    def _block_start(self, event: UpstreamEvent) -> list[StreamEvent]:
        block = event.content_block
        assert block is not None
        kind = block.type
        if kind == "tool_use":
            if block.name == self._response_tool:
                self._tool_slots[event.index] = _RESPONSE_TOOL_INDEX
                return []
            slot = self._tool_slots[event.index] = self._tool_calls
            self._tool_calls += 1
            return [ToolCallDelta(index=slot, id=block.id, name=block.name)]
        if kind == "text" and block.text:
            return [TextDelta(text=block.text)]
        if kind == "thinking" and block.thinking:
            return [ReasoningDelta(text=block.thinking)]
        if kind == "redacted_thinking":
            return [ReasoningDelta(provider_metadata={METADATA_KEY: {"redacted_thinking": block.data or ""}})]
        return []

    def _message_delta(self, event: UpstreamEvent) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        if event.delta is not None and event.delta.stop_reason is not None:
            self._finished = True
            events.append(Finish(reason=_finish_reason(event.delta.stop_reason, self._tool_calls > 0),
                                 stop_sequence=event.delta.stop_sequence))
        if event.usage is not None:
            # message_delta counts are cumulative; the ones it leaves out keep message_start's value.
            start, final = self._start_usage, event.usage
            merged = AnthropicUsage(
                input_tokens=final.input_tokens if final.input_tokens is not None else start.input_tokens,
                output_tokens=final.output_tokens,
                cache_creation_input_tokens=final.cache_creation_input_tokens
                if final.cache_creation_input_tokens is not None else start.cache_creation_input_tokens,
                cache_read_input_tokens=final.cache_read_input_tokens
                if final.cache_read_input_tokens is not None else start.cache_read_input_tokens,
                output_tokens_details=final.output_tokens_details or start.output_tokens_details,
            )
            events.append(UsageReport(usage=unified_usage(merged)))
        return events


# --- errors -----------------------------------------------------------------------------------

_ERRORS_BY_TYPE: dict[str, type[JunctionError]] = {
    "invalid_request_error": InvalidRequest,
    "authentication_error": AuthenticationFailed,
    "permission_error": PermissionDenied,
    "not_found_error": NotFound,
    "request_too_large": PayloadTooLarge,
    "rate_limit_error": RateLimited,
    "api_error": UpstreamError,
    "overloaded_error": UpstreamOverloaded,
    "timeout_error": UpstreamTimeout,
}
_CONTEXT_TOO_LONG = re.compile(r"prompt is too long|exceed(s|ed)? (the )?context|context (window|length)",
                               re.IGNORECASE)


def _context_too_long(provider: str, detail: ErrorDetail) -> InvalidRequest | None:
    if detail.type == "invalid_request_error" and _CONTEXT_TOO_LONG.search(detail.message):
        return InvalidRequest(f"{provider}: {detail.message}", param="messages",
                              code="context_length_exceeded")
    return None


def map_error(provider: str, status: int, body: bytes, headers: Mapping[str, str]) -> JunctionError:
    """An upstream HTTP error as the client should see it; Anthropic's error type becomes the code."""
    try:
        detail = _error_decoder.decode(body).error
    except msgspec.MsgspecError:
        detail = None
    if detail is not None and status == 400 and (too_long := _context_too_long(provider, detail)):
        return too_long
    error = error_for_status(provider, status, body, headers)
    if error.code is None and detail is not None:
        error.code = detail.type
    return error


def stream_error(provider: str, detail: ErrorDetail) -> JunctionError:
    """An ``error`` event in the middle of a stream, as the matching error."""
    too_long = _context_too_long(provider, detail)
    if too_long is not None:
        return too_long
    error_class = _ERRORS_BY_TYPE.get(detail.type, UpstreamError)
    return error_class(f"{provider}: {detail.message}", code=detail.type)
