"""The OpenAI Chat Completions wire format, both directions.

Used by the OpenAI-compatible ingress (client ⇄ unified) and by every OpenAI-compatible provider
(unified ⇄ upstream). The unified model is shaped like this format, so most of the work is msgspec
decoding and encoding; the stream needs a little state on each side.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import msgspec

from junction.errors import InvalidRequest, JunctionError, UpstreamError, error_body
from junction.formats.chat_checks import check_ranges
from junction.formats.json_body import decode_upstream, option_fields, splice_fields
from junction.formats.openai_passthrough import (
    keep_message_extras,
    openai_only,
    outgoing_message,
    refuse_openai_only,
)
from junction.schemas.chat import (
    CHAT_REQUEST_FIELDS,
    ChatRequest,
    ChatResponse,
    FunctionCall,
    Message,
    StreamOptions,
    ToolCall,
    Usage,
)
from junction.schemas.stream import (
    Finish,
    KeepAlive,
    ReasoningDelta,
    RefusalDelta,
    StreamDone,
    StreamEvent,
    StreamStart,
    TextDelta,
    ToolActivity,
    ToolCallDelta,
    UsageReport,
)

# --- chunk structs (the ``chat.completion.chunk`` object) ---------------------------------------


class ChunkFunction(msgspec.Struct, omit_defaults=True):
    name: str | None = None
    arguments: str | None = None


class ChunkToolCall(msgspec.Struct, omit_defaults=True):
    index: int
    id: str | None = None
    type: str | None = None
    function: ChunkFunction | None = None


class Delta(msgspec.Struct, omit_defaults=True):
    role: str | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ChunkToolCall] | None = None
    reasoning: str | None = None
    #: DeepSeek/vLLM spelling of ``reasoning``; read from upstreams, never written.
    reasoning_content: str | None = None
    provider_metadata: dict[str, Any] | None = None


class ChunkChoice(msgspec.Struct):
    index: int
    delta: Delta
    finish_reason: str | None = None


class ChunkError(msgspec.Struct):
    message: str = "upstream stream error"
    type: str | None = None
    code: str | int | None = None


class Chunk(msgspec.Struct, kw_only=True):
    id: str = ""
    object: str = "chat.completion.chunk"
    created: int = 0
    model: str = ""
    choices: list[ChunkChoice] = []
    usage: Usage | None = None
    system_fingerprint: str | None = None
    error: ChunkError | None = msgspec.field(default=None)


class _ChunkOut(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What the ingress writes: like :class:`Chunk`, without the error member."""

    id: str
    created: int
    model: str
    choices: list[ChunkChoice]
    #: No default, so omit_defaults can never drop it: the SDKs key on it.
    object: str
    system_fingerprint: str | None = None
    usage: Usage | None = None


_encoder = msgspec.json.Encoder()
_request_decoder = msgspec.json.Decoder(ChatRequest)
_fields_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_response_decoder = msgspec.json.Decoder(ChatResponse)
_chunk_decoder = msgspec.json.Decoder(Chunk)

_AT_PATH = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
#: A quoted value in a decoder's message (``Invalid enum value '...'``): the client's own text,
#: shown back at most this long.
_QUOTED = re.compile(r"'([^']{%d})[^']+'" % 60)
_MISSING = re.compile(r"Object missing required field `(?P<name>[^`]+)`")


def validation_error(error: msgspec.MsgspecError) -> InvalidRequest:
    """A 400 naming the offending field, from a msgspec decode/validation error."""
    if isinstance(error, msgspec.DecodeError) and not isinstance(error, msgspec.ValidationError):
        return InvalidRequest(f"request body is not valid JSON: {error}", code="invalid_json")
    text = str(error)
    match = _AT_PATH.search(text)
    param = match.group("path") if match else None
    if match:
        text = text[: match.start()]
    text = _QUOTED.sub(lambda quoted: f"'{quoted.group(1)}…'", text)
    if param is not None and len(param) > 200:
        param = param[:200] + "…"
    missing = _MISSING.match(text)
    if missing:
        param = f"{param}.{missing.group('name')}" if param else missing.group("name")
        text = f"missing required field `{missing.group('name')}`"
    where = f"{param}: " if param else ""
    return InvalidRequest(f"{where}{text}", param=param, code="invalid_value")


# --- ingress: client → unified → client ---------------------------------------------------------


def decode_chat_request(body: bytes) -> ChatRequest:
    """Decode a client's request; unknown top-level fields are kept verbatim in ``extra_fields``,
    unknown members of messages and content parts in each message's own."""
    try:
        fields = _fields_decoder.decode(body)
        moved = openai_only(fields) if b'"custom"' in body or b'"allowed_tools"' in body else None
        if moved:
            body = _encoder.encode({k: v for k, v in fields.items() if k not in moved})
        request = _request_decoder.decode(body)
        if "messages" in fields:
            keep_message_extras(request, fields["messages"])
    except msgspec.MsgspecError as error:
        raise validation_error(error) from None
    _nonempty(request)
    check_ranges(request)
    if moved:
        request.extra_fields = {k: v for k, v in fields.items() if k not in CHAT_REQUEST_FIELDS or k in moved}
        return request
    if len(fields) > len(CHAT_REQUEST_FIELDS & fields.keys()):
        request.extra_fields = {k: v for k, v in fields.items() if k not in CHAT_REQUEST_FIELDS}
    else:
        request.extra_fields = None
    return request


def _nonempty(request: ChatRequest) -> ChatRequest:
    if not request.messages:
        raise InvalidRequest("messages: must contain at least one message", param="messages",
                             code="invalid_value")
    return request


class _MessageOut(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A response's message as written: ``content`` and ``refusal`` have no default, so they are
    always present (``null`` when empty), as OpenAI's OpenAPI document requires."""

    role: str
    content: str | None
    refusal: str | None
    tool_calls: list[ToolCall] | None = None
    function_call: FunctionCall | None = None
    name: str | None = None
    reasoning: str | None = None
    provider_metadata: dict[str, Any] | None = None


class _ChoiceOut(msgspec.Struct, kw_only=True):
    index: int
    message: _MessageOut
    finish_reason: str | None
    logprobs: Any = None


class _ResponseOut(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    object: str
    created: int
    model: str
    choices: list[_ChoiceOut]
    usage: Usage | None = None
    system_fingerprint: str | None = None
    service_tier: str | None = None


def _message_out(message: Message) -> _MessageOut:
    content = message.content if isinstance(message.content, str) or message.content is None else message.text()
    return _MessageOut(role=message.role, content=content, refusal=message.refusal, tool_calls=message.tool_calls,
                       function_call=message.function_call, name=message.name, reasoning=message.reasoning,
                       provider_metadata=message.provider_metadata)


def encode_chat_response(response: ChatResponse) -> bytes:
    return _encoder.encode(_ResponseOut(
        id=response.id, object=response.object, created=response.created, model=response.model,
        choices=[_ChoiceOut(index=c.index, message=_message_out(c.message), finish_reason=c.finish_reason,
                            logprobs=c.logprobs) for c in response.choices],
        usage=response.usage, system_fingerprint=response.system_fingerprint, service_tier=response.service_tier))


class ChunkWriter:
    """Turns unified stream events into ``data: {chunk}`` SSE lines for one response."""

    __slots__ = ("_id", "_created", "_model", "_fingerprint", "_include_usage", "usage")

    def __init__(self, include_usage: bool) -> None:
        self._id = ""
        self._created = 0
        self._model = ""
        self._fingerprint: str | None = None
        self._include_usage = include_usage
        #: The usage the stream reported, kept for metering even when the client did not ask.
        self.usage: Usage | None = None

    def _chunk(self, choices: list[ChunkChoice], usage: Usage | None = None) -> bytes:
        chunk = _ChunkOut(id=self._id, object="chat.completion.chunk", created=self._created,
                          model=self._model, choices=choices,
                          system_fingerprint=self._fingerprint, usage=usage)
        return b"data: " + _encoder.encode(chunk) + b"\n\n"

    def write(self, event: StreamEvent) -> bytes | None:
        """The SSE bytes for ``event``, or ``None`` when it produces nothing for the client."""
        if isinstance(event, TextDelta):
            return self._chunk([ChunkChoice(event.choice, Delta(content=event.text))])
        if isinstance(event, ToolCallDelta):
            call = ChunkToolCall(
                index=event.index,
                id=event.id,
                type="function" if event.id is not None else None,
                function=ChunkFunction(name=event.name, arguments=event.arguments),
            )
            return self._chunk([ChunkChoice(event.choice, Delta(tool_calls=[call]))])
        if isinstance(event, StreamStart):
            self._id, self._created, self._model = event.id, event.created, event.model
            self._fingerprint = event.system_fingerprint
            return self._chunk([ChunkChoice(0, Delta(role="assistant", content=""))])
        if isinstance(event, Finish):
            return self._chunk([ChunkChoice(event.choice, Delta(), event.reason)])
        if isinstance(event, ReasoningDelta):
            delta = Delta(reasoning=event.text or None, provider_metadata=event.provider_metadata)
            return self._chunk([ChunkChoice(event.choice, delta)])
        if isinstance(event, RefusalDelta):
            return self._chunk([ChunkChoice(event.choice, Delta(refusal=event.text))])
        if isinstance(event, UsageReport):
            self.usage = event.usage
            return self._chunk([], event.usage) if self._include_usage else None
        if isinstance(event, StreamDone):
            return b"data: [DONE]\n\n"
        if isinstance(event, ToolActivity):
            # An SSE comment: the SDKs skip it; clients that want tool progress read these lines.
            return b": junction-tool " + _encoder.encode(event) + b"\n\n"
        if isinstance(event, KeepAlive):
            return b": keep-alive\n\n"
        return None


def error_event(error: Exception) -> bytes:
    """The SSE line reporting an error after the stream has started (the SDK raises on it)."""
    if not isinstance(error, JunctionError):
        error = UpstreamError("the stream failed; the gateway log has the details")
    return b"data: " + error_body(error) + b"\n\n"


# --- provider side: unified → upstream → unified ------------------------------------------------

_USAGE_OPTIONS = StreamOptions(include_usage=True)


def encode_chat_request(request: ChatRequest, model: str, *, stream: bool,
                        provider: str | None = None) -> bytes:
    """The upstream request body: the client's request with the upstream model, unmodelled fields
    and ``provider``'s own ``provider_options`` spliced in, and (when streaming) usage always
    requested so the gateway can meter it."""
    if provider != "openai":
        refuse_openai_only(request, provider or "this provider")
    messages: list[Any] = request.messages
    if any(m.reasoning is not None or m.provider_metadata is not None or m.extra_fields is not None
           or m.part_extra_fields is not None for m in messages):
        # Our own additions to messages go (OpenAI rejects unknown message members); the client's
        # own unknown members go back in, verbatim.
        messages = [outgoing_message(m) for m in messages]
    outgoing = msgspec.structs.replace(
        request,
        model=model,
        messages=messages,
        stream=True if stream else None,
        stream_options=_USAGE_OPTIONS if stream else None,
        extra_fields=None,
        provider_options=None,  # Junction's own: only the named provider's entry is sent, as fields
    )
    fields = request.extra_fields
    if request.provider_options is not None and provider is not None:
        own = option_fields(request.provider_options, provider, CHAT_REQUEST_FIELDS)
        fields = {**fields, **own} if fields else own
    return splice_fields(_encoder.encode(outgoing), fields)


def decode_chat_response(body: bytes, provider: str) -> ChatResponse:
    return decode_upstream(_response_decoder, body, provider, "a response")


class ChunkReader:
    """Turns upstream ``data:`` payloads into unified events for one stream."""

    __slots__ = ("_provider", "_started", "_finished")
    #: Decodes one chunk; a dialect whose chunks differ in shape sets a decoder of a Chunk subclass.
    decoder: ClassVar[msgspec.json.Decoder[Chunk]] = _chunk_decoder

    def __init__(self, provider: str) -> None:
        self._provider = provider
        self._started = False
        self._finished = False

    def close(self) -> list[StreamEvent]:
        """The upstream ended without ``[DONE]``. After a ``finish_reason`` the answer is whole (some
        OpenAI-compatible servers omit ``[DONE]``); before one it was cut off, and the client must
        get an error rather than a stream that looks complete."""
        if not self._finished:
            raise UpstreamError(f"{self._provider} ended the stream before it finished",
                                code="upstream_stream_truncated")
        return [StreamDone()]

    def read(self, data: str) -> list[StreamEvent]:
        if data == "[DONE]":
            return [StreamDone()]
        try:
            chunk = self.decoder.decode(data)
        except msgspec.MsgspecError as error:
            raise UpstreamError(f"{self._provider} sent an unreadable stream chunk: {error}",
                                code="upstream_protocol_error") from None
        if chunk.error is not None:
            raise UpstreamError(f"{self._provider}: {chunk.error.message}",
                                code=str(chunk.error.code) if chunk.error.code is not None else None)
        events: list[StreamEvent] = []
        if not self._started:
            self._started = True
            events.append(StreamStart(id=chunk.id, model=chunk.model, created=chunk.created,
                                      system_fingerprint=chunk.system_fingerprint))
        for choice in chunk.choices:
            delta = choice.delta
            reasoning = delta.reasoning or delta.reasoning_content
            if reasoning or delta.provider_metadata:
                events.append(ReasoningDelta(text=reasoning or "", choice=choice.index,
                                             provider_metadata=delta.provider_metadata))
            if delta.content:
                events.append(TextDelta(text=delta.content, choice=choice.index))
            if delta.refusal:
                events.append(RefusalDelta(text=delta.refusal, choice=choice.index))
            for call in delta.tool_calls or ():
                function = call.function or ChunkFunction()
                events.append(ToolCallDelta(index=call.index, id=call.id, name=function.name,
                                            arguments=function.arguments or "", choice=choice.index))
            if choice.finish_reason:
                self._finished = True
                events.append(Finish(reason=choice.finish_reason, choice=choice.index))
        if chunk.usage is not None:
            events.append(UsageReport(usage=chunk.usage))
        return events
