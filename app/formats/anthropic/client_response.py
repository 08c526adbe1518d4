"""Unified responses and stream events → Anthropic Messages JSON and SSE, for clients of
``POST /v1/messages``."""

from __future__ import annotations

import base64
from typing import Any

import msgspec

from junction.errors import JunctionError, UpstreamError, error_body
from junction.formats.anthropic.wire import (
    FOREIGN_METADATA_PREFIX,
    METADATA_KEY,
    STOP_REASONS,
    ContentBlockDeltaEvent,
    ContentBlockStartEvent,
    ContentBlockStopEvent,
    InputJSONDeltaOut,
    MessageDeltaEvent,
    MessageOut,
    MessageStartEvent,
    MessageStopEvent,
    PingEvent,
    RedactedThinkingBlock,
    ResponseBlockOut,
    SignatureDeltaOut,
    StopDelta,
    TextBlock,
    TextDeltaOut,
    ThinkingBlock,
    ThinkingBlocks,
    ThinkingDeltaOut,
    ToolUseBlock,
    anthropic_usage,
)
from junction.schemas.chat import ChatResponse, Message, Usage
from junction.schemas.stream import (
    Finish,
    KeepAlive,
    ReasoningDelta,
    RefusalDelta,
    StreamDone,
    StreamEvent,
    StreamStart,
    TextDelta,
    ToolCallDelta,
    UsageReport,
)

_encoder = msgspec.json.Encoder()
_object_decoder = msgspec.json.Decoder(dict[str, Any])
_EMPTY_INPUT = msgspec.Raw(b"{}")


def _tool_input(arguments: str) -> msgspec.Raw:
    if not arguments.strip():
        return _EMPTY_INPUT
    try:
        _object_decoder.decode(arguments)
    except msgspec.MsgspecError:
        raise UpstreamError("the model's tool-call arguments are not a JSON object",
                            code="invalid_tool_arguments") from None
    return msgspec.Raw(arguments.encode())


def foreign_metadata_block(metadata: dict[str, Any] | None) -> RedactedThinkingBlock | None:
    """Other providers' metadata, wrapped for the round trip (see ``FOREIGN_METADATA_PREFIX``)."""
    foreign = {key: value for key, value in (metadata or {}).items() if key != METADATA_KEY}
    if not foreign:
        return None
    encoded = base64.urlsafe_b64encode(_encoder.encode(foreign)).decode()
    return RedactedThinkingBlock(data=FOREIGN_METADATA_PREFIX + encoded)


def _thinking_out(message: Message) -> list[ResponseBlockOut]:
    metadata = (message.provider_metadata or {}).get(METADATA_KEY)
    metadata = metadata if isinstance(metadata, dict) else {}
    stored = metadata.get("thinking_blocks")
    blocks: list[ResponseBlockOut] = []
    if stored is not None:
        blocks.extend(msgspec.convert(stored, ThinkingBlocks))
    elif message.reasoning:
        signature = str(metadata.get("signature") or "")
        blocks.append(ThinkingBlock(thinking=message.reasoning, signature=signature))
    foreign = foreign_metadata_block(message.provider_metadata)
    if foreign is not None:
        blocks.append(foreign)
    return blocks


def encode_message_response(response: ChatResponse) -> bytes:
    """A unified response as an Anthropic Message (its first choice: Anthropic has one)."""
    if not response.choices:
        raise UpstreamError("the upstream returned no choices", code="upstream_protocol_error")
    choice = response.choices[0]
    message = choice.message
    content = _thinking_out(message)
    text = message.text() or message.refusal
    if text:
        content.append(TextBlock(text=text))
    for call in message.tool_calls or ():
        arguments = _tool_input(call.function.arguments)
        content.append(ToolUseBlock(id=call.id, name=call.function.name, input=arguments))
    metadata = (message.provider_metadata or {}).get(METADATA_KEY) or {}
    stop_sequence = metadata.get("stop_sequence") if isinstance(metadata, dict) else None
    stop_reason = STOP_REASONS.get(choice.finish_reason or "stop", "end_turn")
    if stop_sequence:
        stop_reason = "stop_sequence"
    return _encoder.encode(MessageOut(
        id=response.id, type="message", role="assistant", model=response.model, content=content,
        stop_reason=stop_reason, stop_sequence=stop_sequence, usage=anthropic_usage(response.usage)))


def _frame(name: bytes, event: msgspec.Struct) -> bytes:
    return b"event: " + name + b"\ndata: " + _encoder.encode(event) + b"\n\n"


_PING = _frame(b"ping", PingEvent())
_STOP = _frame(b"message_stop", MessageStopEvent())


class MessageStreamWriter:
    """Turns one stream's unified events into Anthropic's SSE event sequence.

    Content blocks are opened and closed as the kind of delta changes; a signature closes a
    thinking block. Only choice 0 is written: Anthropic messages have one.
    """

    __slots__ = ("_index", "_open", "_tool_blocks", "_stop_reason", "_stop_sequence", "usage", "_finished")

    def __init__(self) -> None:
        self._index = -1
        self._open: str | None = None
        self._tool_blocks: dict[int, int] = {}
        self._stop_reason = "end_turn"
        self._stop_sequence: str | None = None
        #: The usage the stream reported, for the final message_delta.
        self.usage: Usage | None = None
        self._finished = False

    def _stop_block(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        return _frame(b"content_block_stop", ContentBlockStopEvent(index=self._index))

    def _start_block(self, kind: str, block: ResponseBlockOut) -> bytes:
        closing = self._stop_block()
        self._index += 1
        self._open = kind
        start = ContentBlockStartEvent(index=self._index, content_block=block)
        return closing + _frame(b"content_block_start", start)

    def _delta(self, delta: Any, index: int | None = None) -> bytes:
        event = ContentBlockDeltaEvent(index=self._index if index is None else index, delta=delta)
        return _frame(b"content_block_delta", event)

    def write(self, event: StreamEvent) -> bytes | None:
        """The SSE bytes for ``event``, or ``None`` when it produces nothing for the client."""
        if getattr(event, "choice", 0):
            return None
        if isinstance(event, (TextDelta, RefusalDelta)):  # a refusal is text; the stop reason tells
            if not event.text:
                return None
            opening = b"" if self._open == "text" else self._start_block("text", TextBlock(text=""))
            return opening + self._delta(TextDeltaOut(text=event.text))
        if isinstance(event, ToolCallDelta):
            return self._tool_call(event)
        if isinstance(event, ReasoningDelta):
            return self._reasoning(event)
        if isinstance(event, StreamStart):
            start = MessageStartEvent(message=MessageOut(
                id=event.id, type="message", role="assistant", model=event.model, content=[],
                stop_reason=None, stop_sequence=None, usage=anthropic_usage(event.usage)))
            return _frame(b"message_start", start) + _PING
        if isinstance(event, Finish):
            self._stop_sequence = event.stop_sequence
            self._stop_reason = "stop_sequence" if event.stop_sequence else STOP_REASONS.get(event.reason,
                                                                                              "end_turn")
            return None
        if isinstance(event, UsageReport):
            self.usage = event.usage
            return None
        if isinstance(event, StreamDone):
            return self.finish()
        if isinstance(event, KeepAlive):  # a slow server-side tool runs (junction.agents)
            return _PING
        return None

    def _tool_call(self, event: ToolCallDelta) -> bytes | None:
        out = b""
        if event.id is not None:
            block = ToolUseBlock(id=event.id, name=event.name or "", input=_EMPTY_INPUT)
            out = self._start_block("tool", block)
            self._tool_blocks[event.index] = self._index
        if event.arguments:
            # Parallel calls' pieces may interleave; each goes to its own block's index.
            index = self._tool_blocks.get(event.index)
            if index is None:
                raise UpstreamError("a tool-call piece arrived before its call started",
                                    code="upstream_protocol_error")
            out += self._delta(InputJSONDeltaOut(partial_json=event.arguments), index)
        return out or None

    def _reasoning(self, event: ReasoningDelta) -> bytes | None:
        out = b""
        if event.text:
            if self._open != "thinking":
                out = self._start_block("thinking", ThinkingBlock(thinking="", signature=""))
            out += self._delta(ThinkingDeltaOut(thinking=event.text))
        foreign = foreign_metadata_block(event.provider_metadata)
        if foreign is not None:
            out += self._start_block("redacted", foreign) + self._stop_block()
        metadata = (event.provider_metadata or {}).get(METADATA_KEY)
        if isinstance(metadata, dict):
            signature = metadata.get("signature")
            if isinstance(signature, str):
                if self._open != "thinking":
                    out += self._start_block("thinking", ThinkingBlock(thinking="", signature=""))
                out += self._delta(SignatureDeltaOut(signature=signature)) + self._stop_block()
            redacted = metadata.get("redacted_thinking")
            if isinstance(redacted, str):
                block = RedactedThinkingBlock(data=redacted)
                out += self._start_block("redacted", block) + self._stop_block()
        return out or None

    def finish(self) -> bytes:
        """Close the message: last block, stop reason and usage, message_stop. Idempotent."""
        if self._finished:
            return b""
        self._finished = True
        final = MessageDeltaEvent(delta=StopDelta(stop_reason=self._stop_reason,
                                                  stop_sequence=self._stop_sequence),
                                  usage=anthropic_usage(self.usage))
        return self._stop_block() + _frame(b"message_delta", final) + _STOP


def error_event(error: Exception) -> bytes:
    """An ``error`` SSE event for a failure after the stream started (the SDKs raise on it)."""
    if not isinstance(error, JunctionError):
        error = UpstreamError("the stream failed; the gateway log has the details")
    return b"event: error\ndata: " + error_body(error, anthropic=True) + b"\n\n"
