"""Anthropic Messages API wire shapes (API version 2023-06-01), as msgspec Structs.

One set of request Structs serves both directions: the provider encodes them for the upstream and
the ``/v1/messages`` ingress decodes client requests into them (tagged unions, so a bad block
names its path). Responses and stream events read from the upstream are decoded into tolerant
Structs instead, so new block or delta types Anthropic adds do not break existing streams.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from junction.schemas.chat import CompletionTokensDetails, PromptTokensDetails, Usage


class _Wire(msgspec.Struct, omit_defaults=True, kw_only=True):
    pass


class CacheControl(_Wire):
    type: str = "ephemeral"
    ttl: str | None = None


# --- content blocks ---------------------------------------------------------------------------


class Base64Source(_Wire, tag="base64", tag_field="type"):
    media_type: str
    data: str


class URLSource(_Wire, tag="url", tag_field="type"):
    url: str


class PlainTextSource(_Wire, tag="text", tag_field="type"):
    media_type: str
    data: str


class FileSource(_Wire, tag="file", tag_field="type"):
    file_id: str


ImageSource = Base64Source | URLSource | FileSource
DocumentSource = Base64Source | URLSource | PlainTextSource | FileSource


class TextBlock(_Wire, tag="text", tag_field="type"):
    text: str
    cache_control: CacheControl | None = None
    citations: list[Any] | None = None


class ImageBlock(_Wire, tag="image", tag_field="type"):
    source: ImageSource
    cache_control: CacheControl | None = None


class DocumentBlock(_Wire, tag="document", tag_field="type"):
    source: DocumentSource
    title: str | None = None
    context: str | None = None
    cache_control: CacheControl | None = None


class ToolUseBlock(_Wire, tag="tool_use", tag_field="type"):
    id: str
    name: str
    #: The arguments object, kept as raw JSON: it is never inspected, only relayed.
    input: msgspec.Raw
    cache_control: CacheControl | None = None


class ToolResultBlock(_Wire, tag="tool_result", tag_field="type"):
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock | DocumentBlock] | None = None
    is_error: bool | None = None
    cache_control: CacheControl | None = None


class ThinkingBlock(_Wire, tag="thinking", tag_field="type"):
    thinking: str
    #: Required, and written even when empty: the SDKs read it from every thinking block.
    signature: str


class RedactedThinkingBlock(_Wire, tag="redacted_thinking", tag_field="type"):
    data: str


RequestBlock = (TextBlock | ImageBlock | DocumentBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock
                | RedactedThinkingBlock)
#: What an assistant message in a response (or a stream's content_block_start) may hold.
ResponseBlockOut = TextBlock | ThinkingBlock | RedactedThinkingBlock | ToolUseBlock
ThinkingBlocks = list[ThinkingBlock | RedactedThinkingBlock]


# --- request ----------------------------------------------------------------------------------


class MessageParam(_Wire):
    role: Literal["user", "assistant"]
    content: str | list[RequestBlock]


class ToolParam(_Wire):
    name: str
    description: str | None = None
    #: Absent on Anthropic's server tools (``web_search_...``), which carry a ``type`` instead.
    input_schema: dict[str, Any] | None = None
    type: str | None = None
    cache_control: CacheControl | None = None


class ToolChoiceParam(_Wire):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class ThinkingParam(_Wire):
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: int | None = None
    #: "summarized" or "omitted": whether thinking text is returned (newer models omit it by default).
    display: str | None = None


class MetadataParam(_Wire):
    user_id: str | None = None


class OutputFormatParam(_Wire):
    type: Literal["json_schema"]
    schema: dict[str, Any]


class OutputConfigParam(_Wire):
    effort: str | None = None
    format: OutputFormatParam | None = None


class MessagesRequest(_Wire):
    model: str
    messages: list[MessageParam]
    max_tokens: int
    system: str | list[TextBlock] | None = None
    stop_sequences: list[str] | None = None
    stream: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    tools: list[ToolParam] | None = None
    tool_choice: ToolChoiceParam | None = None
    thinking: ThinkingParam | None = None
    metadata: MetadataParam | None = None
    output_config: OutputConfigParam | None = None
    service_tier: str | None = None
    # Relayed to an Anthropic upstream as they came, never inspected.
    context_management: dict[str, Any] | None = None
    container: str | dict[str, Any] | None = None
    mcp_servers: list[dict[str, Any]] | None = None


# --- responses and stream events, as read from the upstream (tolerant) ---------------------------


class UpstreamBlock(msgspec.Struct):
    """Any content block; fields a type does not have stay ``None``."""

    type: str
    text: str | None = None
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None
    id: str | None = None
    name: str | None = None
    #: Empty when the block has no input (msgspec.Raw cannot sit in a union with None).
    input: msgspec.Raw = msgspec.Raw()


class OutputTokensDetails(_Wire):
    thinking_tokens: int | None = None


class AnthropicUsage(_Wire):
    #: Absent from a stream's ``message_delta`` usage until the API reports it cumulatively.
    input_tokens: int | None = None
    output_tokens: int = 0
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    output_tokens_details: OutputTokensDetails | None = None


class UpstreamMessage(msgspec.Struct):
    id: str = ""
    model: str = ""
    content: list[UpstreamBlock] = []
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: AnthropicUsage | None = None


class UpstreamDelta(msgspec.Struct):
    type: str | None = None
    text: str | None = None
    partial_json: str | None = None
    thinking: str | None = None
    signature: str | None = None
    stop_reason: str | None = None
    stop_sequence: str | None = None


class ErrorDetail(msgspec.Struct):
    type: str = "api_error"
    message: str = "no error message"


class UpstreamEvent(msgspec.Struct):
    """Any stream event's data; ``type`` says which fields are set."""

    type: str
    message: UpstreamMessage | None = None
    index: int = 0
    content_block: UpstreamBlock | None = None
    delta: UpstreamDelta | None = None
    usage: AnthropicUsage | None = None
    error: ErrorDetail | None = None


class ErrorEnvelope(msgspec.Struct):
    error: ErrorDetail | None = None


# --- responses and stream events, as written by the ingress ------------------------------------


class UsageOut(_Wire):
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    output_tokens_details: OutputTokensDetails | None = None


class MessageOut(_Wire):
    id: str
    model: str
    content: list[ResponseBlockOut]
    usage: UsageOut
    # No defaults on these: omit_defaults must never drop them, the SDKs read them.
    type: str
    role: str
    stop_reason: str | None
    stop_sequence: str | None


class _Event(_Wire, tag_field="type"):
    pass


class MessageStartEvent(_Event, tag="message_start"):
    message: MessageOut


class ContentBlockStartEvent(_Event, tag="content_block_start"):
    index: int
    content_block: ResponseBlockOut


class TextDeltaOut(_Wire, tag="text_delta", tag_field="type"):
    text: str


class InputJSONDeltaOut(_Wire, tag="input_json_delta", tag_field="type"):
    partial_json: str


class ThinkingDeltaOut(_Wire, tag="thinking_delta", tag_field="type"):
    thinking: str


class SignatureDeltaOut(_Wire, tag="signature_delta", tag_field="type"):
    signature: str


class ContentBlockDeltaEvent(_Event, tag="content_block_delta"):
    index: int
    delta: TextDeltaOut | InputJSONDeltaOut | ThinkingDeltaOut | SignatureDeltaOut


class ContentBlockStopEvent(_Event, tag="content_block_stop"):
    index: int


class StopDelta(msgspec.Struct):
    stop_reason: str | None
    stop_sequence: str | None = None


class MessageDeltaEvent(_Event, tag="message_delta"):
    delta: StopDelta
    usage: UsageOut


class MessageStopEvent(_Event, tag="message_stop"):
    pass


class PingEvent(_Event, tag="ping"):
    pass


# --- mappings shared by both directions --------------------------------------------------------

#: Anthropic stop_reason → OpenAI finish_reason.
FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
#: OpenAI finish_reason → Anthropic stop_reason.
STOP_REASONS: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

#: Key of Anthropic's entry in ``provider_metadata`` (messages and reasoning deltas).
METADATA_KEY = "anthropic"
#: Other providers' opaque metadata (e.g. Gemini thought signatures) reaches Anthropic clients as
#: a ``redacted_thinking`` block whose data is this prefix + base64url(JSON): clients pass such
#: blocks back unchanged, which is exactly the round trip that metadata needs.
FOREIGN_METADATA_PREFIX = "junction-metadata:"


def unified_usage(usage: AnthropicUsage, input_tokens: int | None = None) -> Usage:
    """Anthropic counts cached prompt tokens apart from ``input_tokens``; OpenAI's
    ``prompt_tokens`` includes them, with the cached share in ``prompt_tokens_details``."""
    read = usage.cache_read_input_tokens or 0
    written = usage.cache_creation_input_tokens or 0
    uncached = usage.input_tokens if usage.input_tokens is not None else (input_tokens or 0)
    prompt = uncached + read + written
    details = None
    if usage.cache_read_input_tokens is not None or usage.cache_creation_input_tokens is not None:
        details = PromptTokensDetails(cached_tokens=read, cache_creation_tokens=written)
    thinking = usage.output_tokens_details.thinking_tokens if usage.output_tokens_details else None
    return Usage(prompt_tokens=prompt, completion_tokens=usage.output_tokens,
                 total_tokens=prompt + usage.output_tokens, prompt_tokens_details=details,
                 completion_tokens_details=CompletionTokensDetails(reasoning_tokens=thinking)
                 if thinking is not None else None)


def anthropic_usage(usage: Usage | None) -> UsageOut:
    """The inverse of :func:`unified_usage`."""
    if usage is None:
        return UsageOut(input_tokens=0, output_tokens=0)
    details = usage.prompt_tokens_details
    read = details.cached_tokens if details else None
    written = details.cache_creation_tokens if details else None
    reasoning = usage.completion_tokens_details.reasoning_tokens if usage.completion_tokens_details else None
    return UsageOut(
        input_tokens=max(usage.prompt_tokens - (read or 0) - (written or 0), 0),
        output_tokens=usage.completion_tokens,
        cache_creation_input_tokens=written,
        cache_read_input_tokens=read,
        output_tokens_details=OutputTokensDetails(thinking_tokens=reasoning) if reasoning else None,
    )
