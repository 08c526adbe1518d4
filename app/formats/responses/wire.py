"""The OpenAI Responses API wire format: the request a client sends and the objects it gets back.

Field names and required members follow OpenAI's published OpenAPI document (``Response``,
``OutputItem``, ``ResponseStreamEvent``): members the document requires are always written, with
``null`` where Junction has no value, so generated clients parse every answer.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

# --- request --------------------------------------------------------------------------------------


class TextFormat(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class TextConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class ReasoningConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    effort: str | None = None
    summary: str | None = None
    #: Older spelling of ``summary``.
    generate_summary: str | None = None


class ResponsesRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /v1/responses``. Unknown members are refused (400 naming them), as OpenAI does: a
    Responses parameter has no Chat Completions equivalent to pass it through as."""

    model: str
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    stream: bool | None = None
    previous_response_id: str | None = None
    include: list[str] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    service_tier: str | None = None
    truncation: Literal["auto", "disabled"] | None = None
    top_logprobs: int | None = None
    background: bool | None = None
    max_tool_calls: int | None = None
    stream_options: dict[str, Any] | None = None
    #: Junction's own, as on Chat Completions: provider-specific settings keyed by provider name.
    provider_options: dict[str, dict[str, Any]] | None = None


# --- output items ---------------------------------------------------------------------------------


class OutputText(msgspec.Struct, tag="output_text", tag_field="type", kw_only=True):
    text: str
    annotations: list[Any] = []
    logprobs: list[Any] = []


class Refusal(msgspec.Struct, tag="refusal", tag_field="type", kw_only=True):
    refusal: str


OutputContent = OutputText | Refusal


class SummaryText(msgspec.Struct, tag="summary_text", tag_field="type", kw_only=True):
    text: str


class MessageItem(msgspec.Struct, tag="message", tag_field="type", kw_only=True):
    id: str
    status: str
    role: str = "assistant"
    content: list[OutputContent] = []


class FunctionCallItem(msgspec.Struct, tag="function_call", tag_field="type", kw_only=True):
    id: str
    call_id: str
    name: str
    arguments: str
    status: str


class ReasoningItem(msgspec.Struct, tag="reasoning", tag_field="type", kw_only=True):
    id: str
    summary: list[SummaryText] = []
    #: Junction's opaque provider metadata (signatures), so a client that manages its own context
    #: sends it back; ``None`` when the provider gave none.
    encrypted_content: str | None = None
    #: A string when present (never ``null``): left out of finished items, as OpenAI does.
    status: str | msgspec.UnsetType = msgspec.UNSET


OutputItem = MessageItem | FunctionCallItem | ReasoningItem


# --- the response object --------------------------------------------------------------------------


class InputTokensDetails(msgspec.Struct, kw_only=True):
    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(msgspec.Struct, kw_only=True):
    reasoning_tokens: int = 0


class ResponseUsage(msgspec.Struct, kw_only=True):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int


def empty_usage() -> ResponseUsage:
    return ResponseUsage(
        input_tokens=0,
        input_tokens_details=InputTokensDetails(),
        output_tokens=0,
        output_tokens_details=OutputTokensDetails(),
        total_tokens=0,
    )


class ResponseError(msgspec.Struct, kw_only=True):
    code: str
    message: str


class IncompleteDetails(msgspec.Struct, kw_only=True):
    reason: str


class ReasoningOut(msgspec.Struct, kw_only=True):
    effort: str | None = None
    summary: str | None = None


class PromptCacheOptions(msgspec.Struct, kw_only=True):
    ttl: str = "30m"
    mode: str = "implicit"


class Response(msgspec.Struct, kw_only=True):
    """The ``response`` object. Every member the OpenAPI document requires is always present."""

    id: str
    object: str = "response"
    created_at: int
    status: str
    completed_at: int | None = None
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    model: str
    output: list[OutputItem] = []
    output_text: str | None = None
    parallel_tool_calls: bool = True
    previous_response_id: str | None = None
    reasoning: ReasoningOut | None = None
    store: bool = True
    temperature: float | None = None
    text: dict[str, Any] = {}
    tool_choice: str | dict[str, Any] = "auto"
    tools: list[dict[str, Any]] = []
    top_p: float | None = None
    truncation: str | None = "disabled"
    #: Required (an object) by the OpenAPI document: zeros until the answer is complete.
    usage: ResponseUsage = msgspec.field(default_factory=lambda: empty_usage())
    #: A string when given, else left out (the document does not allow ``null``).
    user: str | msgspec.UnsetType = msgspec.UNSET
    metadata: dict[str, str] = {}
    service_tier: str | None = None
    #: Required by the OpenAPI document (not nullable); Junction applies no prompt-cache options
    #: of its own, so this reports OpenAI's defaults.
    prompt_cache_options: PromptCacheOptions = msgspec.field(default_factory=PromptCacheOptions)
    moderation: None = None
    conversation: None = None
    background: bool = False


class DeletedResponse(msgspec.Struct, kw_only=True):
    id: str
    object: str = "response"
    deleted: bool = True


class InputItemList(msgspec.Struct, kw_only=True):
    object: str = "list"
    data: list[dict[str, Any]]
    #: ``""`` for an empty page: the OpenAPI document types both as required strings.
    first_id: str
    last_id: str
    has_more: bool
