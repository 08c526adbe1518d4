"""Chat requests and responses in Junction's unified model.

Field names follow OpenAI Chat Completions, the lingua franca of the ingresses and most providers,
so the OpenAI wire format decodes straight into these Structs. Provider adapters translate them
into their own formats; nothing translates provider-to-provider.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class _Model(msgspec.Struct, omit_defaults=True, kw_only=True):
    """Unset optional fields are left out when encoded, so upstreams see only what was asked."""


# --- content parts (tagged by "type", as on the wire) ------------------------------------------


class TextPart(_Model, tag="text", tag_field="type"):
    text: str


class ImageURL(_Model):
    url: str
    detail: str | None = None


class ImagePart(_Model, tag="image_url", tag_field="type"):
    image_url: ImageURL


class InputAudio(_Model):
    data: str
    format: str


class AudioPart(_Model, tag="input_audio", tag_field="type"):
    input_audio: InputAudio


class FileRef(_Model):
    file_id: str | None = None
    file_data: str | None = None
    filename: str | None = None


class FilePart(_Model, tag="file", tag_field="type"):
    file: FileRef


class RefusalPart(_Model, tag="refusal", tag_field="type"):
    refusal: str


ContentPart = TextPart | ImagePart | AudioPart | FilePart | RefusalPart


# --- tools ----------------------------------------------------------------------------------------


class FunctionCall(_Model, omit_defaults=False):
    # Never omitted: OpenAI requires ``arguments`` (and ``type`` below) even at their defaults, and
    # msgspec's omit_defaults drops a default-valued field whenever the value *is* the default.
    name: str
    arguments: str = ""


class ToolCall(_Model, omit_defaults=False):
    id: str
    function: FunctionCall
    type: str = "function"


class FunctionDefinition(_Model):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Model, omit_defaults=False):
    function: FunctionDefinition
    type: str = "function"


class NamedFunction(_Model):
    name: str


class NamedToolChoice(_Model, omit_defaults=False):
    function: NamedFunction
    type: str = "function"


# --- messages -------------------------------------------------------------------------------------

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class Message(_Model):
    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    #: The deprecated ``functions`` API's call, in the history of conversations that still use it.
    function_call: FunctionCall | None = None
    refusal: str | None = None
    #: Reasoning text a model returned (OpenAI-compatible providers call it ``reasoning``).
    reasoning: str | None = None
    #: Opaque provider data (e.g. thinking or thought signatures) carried unchanged between turns.
    provider_metadata: dict[str, Any] | None = None
    #: Members of the client's message Junction does not model, kept so that OpenAI-compatible
    #: upstreams receive them unchanged (set by the OpenAI ingress; other providers ignore them).
    extra_fields: dict[str, Any] | None = None
    #: The same for each content part, by position (``None`` for a part with none).
    part_extra_fields: list[dict[str, Any] | None] | None = None

    def text(self) -> str:
        """The message's text content, parts joined; empty when it has none."""
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        return "".join(part.text for part in self.content if isinstance(part, TextPart))


# --- request --------------------------------------------------------------------------------------


class JSONSchemaFormat(_Model):
    name: str
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(_Model):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None


class StreamOptions(_Model):
    include_usage: bool | None = None


class ChatRequest(_Model):
    model: str
    messages: list[Message]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    tools: list[Tool] | None = None
    tool_choice: str | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    reasoning_effort: str | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    #: Provider-specific settings keyed by provider name (``{"anthropic": {"top_k": 40}}``): each
    #: provider applies its own entry exactly and ignores the others, so a request may fall back
    #: across providers safely. Never sent upstream as a field. The Anthropic ingress sets it from
    #: Anthropic-only request fields; OpenAI-ingress clients may send it.
    provider_options: dict[str, dict[str, Any]] | None = None
    #: Top-level request fields Junction does not model, kept verbatim (raw JSON) so that
    #: OpenAI-compatible upstreams receive new parameters unchanged. Set by the ingress.
    extra_fields: dict[str, msgspec.Raw] | None = None

    @property
    def wants_usage_in_stream(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def output_token_limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


#: Names of the modelled message members; anything else in a client's message is an extra field.
MESSAGE_FIELDS = frozenset(Message.__struct_fields__) - {"extra_fields", "part_extra_fields"}
#: Modelled members of each content part type.
PART_FIELDS = {part.__struct_config__.tag: frozenset(part.__struct_fields__) | {"type"}
               for part in (TextPart, ImagePart, AudioPart, FilePart, RefusalPart)}

#: Names of the modelled request fields; anything else in a request body is an extra field.
CHAT_REQUEST_FIELDS = frozenset(ChatRequest.__struct_fields__) - {"extra_fields"}


# --- response -------------------------------------------------------------------------------------


class PromptTokensDetails(_Model):
    cached_tokens: int | None = None
    audio_tokens: int | None = None
    #: Tokens written to a provider-side prompt cache (Anthropic's cache_creation_input_tokens).
    cache_creation_tokens: int | None = None


class CompletionTokensDetails(_Model):
    reasoning_tokens: int | None = None
    audio_tokens: int | None = None
    accepted_prediction_tokens: int | None = None
    rejected_prediction_tokens: int | None = None


class Usage(_Model):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None

    @property
    def cached_tokens(self) -> int:
        details = self.prompt_tokens_details
        return (details.cached_tokens or 0) if details else 0

    @property
    def reasoning_tokens(self) -> int:
        details = self.completion_tokens_details
        return (details.reasoning_tokens or 0) if details else 0


FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]


class Choice(msgspec.Struct, kw_only=True):
    index: int
    message: Message
    finish_reason: str | None = None
    logprobs: Any = None


class ChatResponse(msgspec.Struct, kw_only=True):
    id: str
    created: int
    model: str
    choices: list[Choice]
    usage: Usage | None = None
    object: str = "chat.completion"
    system_fingerprint: str | None = None
    service_tier: str | None = None
