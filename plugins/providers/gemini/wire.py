"""The Gemini ``generateContent`` wire format, as msgspec Structs (field names camelCased on the
wire by ``rename="camel"``). Only what Junction reads or writes is modelled; unknown response
fields (safety ratings, citations, grounding) are ignored when decoding."""

from __future__ import annotations

from typing import Any

import msgspec


class _Wire(msgspec.Struct, omit_defaults=True, rename="camel", kw_only=True):
    pass


# --- content ---------------------------------------------------------------------------------


class Blob(_Wire):
    mime_type: str
    data: str


class FileData(_Wire):
    file_uri: str
    mime_type: str | None = None


class FunctionCall(_Wire):
    name: str
    args: dict[str, Any] | None = None
    #: Newer models number their calls; older ones do not (Junction then makes ids up).
    id: str | None = None


class FunctionResponse(_Wire):
    name: str
    response: dict[str, Any]
    id: str | None = None


class Part(_Wire):
    text: str | None = None
    inline_data: Blob | None = None
    file_data: FileData | None = None
    function_call: FunctionCall | None = None
    function_response: FunctionResponse | None = None
    #: A thought summary part (only with ``includeThoughts``).
    thought: bool | None = None
    #: Opaque; must be sent back on the same part in the next turn.
    thought_signature: str | None = None


class Content(_Wire):
    #: Absent from a candidate that has nothing to say, e.g. a thinking model that spent its whole
    #: output budget on thoughts answers ``"content": {"role": "model"}``.
    parts: list[Part] = []
    role: str | None = None


# --- request ---------------------------------------------------------------------------------


class FunctionDeclaration(_Wire):
    name: str
    description: str | None = None
    #: JSON Schema as given by the client (Gemini's OpenAPI-subset ``parameters`` is not used).
    parameters_json_schema: dict[str, Any] | None = None


class Tool(_Wire):
    function_declarations: list[FunctionDeclaration]


class FunctionCallingConfig(_Wire):
    mode: str
    allowed_function_names: list[str] | None = None


class ToolConfig(_Wire):
    function_calling_config: FunctionCallingConfig


class ThinkingConfig(_Wire):
    thinking_budget: int | None = None
    include_thoughts: bool | None = None


class GenerationConfig(_Wire):
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    stop_sequences: list[str] | None = None
    candidate_count: int | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    response_mime_type: str | None = None
    response_json_schema: dict[str, Any] | None = None
    thinking_config: ThinkingConfig | None = None


class GenerateContentRequest(_Wire):
    contents: list[Content]
    system_instruction: Content | None = None
    tools: list[Tool] | None = None
    tool_config: ToolConfig | None = None
    generation_config: GenerationConfig | None = None


# --- response --------------------------------------------------------------------------------


class Candidate(_Wire):
    content: Content | None = None
    finish_reason: str | None = None
    index: int = 0


class UsageMetadata(_Wire):
    prompt_token_count: int = 0
    candidates_token_count: int = 0
    cached_content_token_count: int = 0
    thoughts_token_count: int = 0
    tool_use_prompt_token_count: int = 0
    total_token_count: int = 0


class PromptFeedback(_Wire):
    block_reason: str | None = None


class ErrorDetail(_Wire):
    type: str | None = msgspec.field(default=None, name="@type")
    reason: str | None = None
    retry_delay: str | None = None


class Status(_Wire):
    """Google's error body (``google.rpc.Status``)."""

    code: int | None = None
    message: str = ""
    status: str | None = None
    details: list[ErrorDetail] = []


class GenerateContentResponse(_Wire):
    candidates: list[Candidate] = []
    prompt_feedback: PromptFeedback | None = None
    usage_metadata: UsageMetadata | None = None
    model_version: str | None = None
    response_id: str | None = None
    #: Set when a stream fails after it started.
    error: Status | None = None


class ErrorEnvelope(_Wire):
    error: Status | None = None


# --- embeddings and models -------------------------------------------------------------------


class EmbedContentRequest(_Wire):
    model: str
    content: Content
    output_dimensionality: int | None = None
    task_type: str | None = None


class BatchEmbedContentsRequest(_Wire):
    requests: list[EmbedContentRequest]


class ContentEmbedding(_Wire):
    values: list[float]


class BatchEmbedContentsResponse(_Wire):
    embeddings: list[ContentEmbedding]


class ModelInfo(_Wire):
    name: str
    supported_generation_methods: list[str] = []


class ModelPage(_Wire):
    models: list[ModelInfo] = []
    next_page_token: str | None = None


encoder = msgspec.json.Encoder()
response_decoder = msgspec.json.Decoder(GenerateContentResponse)
#: The streaming endpoint reports errors as a one-element JSON array.
error_decoder = msgspec.json.Decoder(ErrorEnvelope | list[ErrorEnvelope])
embeddings_decoder = msgspec.json.Decoder(BatchEmbedContentsResponse)
model_page_decoder = msgspec.json.Decoder(ModelPage)
