"""Unified chat model ⇄ Gemini ``generateContent``.

Decisions worth knowing:

- Structured output uses ``responseJsonSchema`` (and tools ``parametersJsonSchema``): Gemini takes
  the client's JSON Schema as it is, so nothing is lost converting it to the OpenAPI subset that
  ``responseSchema`` / ``parameters`` accept.
- Gemini's function calls may lack ids. Junction then makes one up, deterministically, from the
  response id, the candidate and the call's position (``call_`` + 24 hex digits); when the client
  sends the conversation back, tool results find their function name through the assistant turn's
  ``tool_calls``, and made-up ids are not sent to Gemini (ids Gemini issued are).
- Thought signatures ride in ``Message.provider_metadata["gemini"]["thought_signatures"]``, keyed by
  tool-call id (or ``"text"`` for the text part) and are put back on the same parts next turn.
- A tool result whose text is a JSON object is sent as that object; any other result is wrapped
  as ``{"output": <value>}``, the key Gemini's documentation uses.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
import time
import uuid
from typing import Any

from junction.errors import InvalidRequest, UpstreamError
from junction.formats.json_body import option_fields, splice_fields
from junction.formats.openai_passthrough import refuse_openai_only
from junction.providers.gemini.config import GeminiConfig
from junction.providers.gemini.wire import (
    Blob,
    Content,
    FileData,
    FunctionCall,
    FunctionCallingConfig,
    FunctionDeclaration,
    FunctionResponse,
    GenerateContentRequest,
    GenerateContentResponse,
    GenerationConfig,
    Part,
    ThinkingConfig,
    Tool,
    ToolConfig,
    UsageMetadata,
    encoder,
)
from junction.schemas.chat import (
    AudioPart,
    ChatRequest,
    ChatResponse,
    Choice,
    CompletionTokensDetails,
    FilePart,
    ImagePart,
    Message,
    NamedToolChoice,
    PromptTokensDetails,
    TextPart,
    ToolCall,
    Usage,
)
from junction.schemas.chat import FunctionCall as UnifiedFunctionCall

METADATA_KEY = "gemini"
SIGNATURES = "thought_signatures"
TEXT_SIGNATURE = "text"

_MADE_UP_ID = re.compile(r"call_[0-9a-f]{24}")
_DATA_URL = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*?);base64,(?P<data>.*)", re.S)
_GEMINI_URIS = ("gs://", "https://generativelanguage.googleapis.com/", "https://www.youtube.com/",
                "https://youtu.be/")

#: OpenAI ``reasoning_effort`` → Gemini thinking budget (tokens), as Google's own compatibility
#: layer maps it.
_THINKING_BUDGETS = {"none": 0, "minimal": 1024, "low": 1024, "medium": 8192, "high": 24576}

_CONTENT_FILTER_REASONS = frozenset({
    "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "LANGUAGE", "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION",
})


# --- ids, finish reasons, usage ----------------------------------------------------------------


def made_up_call_id(response_id: str | None, candidate: int, position: int, name: str) -> str:
    seed = f"{response_id or ''}:{candidate}:{position}:{name}"
    return "call_" + hashlib.sha256(seed.encode()).hexdigest()[:24]


#: Finish reasons that mean the model failed to write a valid function call. Gemini then returns
#: no content for the call, so ``stop`` would tell a tool-using client the model chose to answer
#: with nothing (or with the half sentence streamed before it). It is a failure of the upstream
#: to produce an answer, as a 502 (an error event mid-stream): retryable, so retries and fallbacks
#: try again, which is what usually succeeds.
_FAILED_CALL_REASONS = frozenset({"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL"})


def finish_reason(reason: str | None, called_tools: bool) -> str | None:
    """The OpenAI finish reason for Gemini's; raises :class:`UpstreamError` for a failed call."""
    if reason is None:
        return None
    if reason in _FAILED_CALL_REASONS:
        # Gemini's finishMessage quotes the model's invalid output; errors are logged, so it is
        # left out of the message.
        raise UpstreamError(f"gemini: the model produced an invalid function call ({reason}); "
                            "retrying usually succeeds", code=reason.lower())
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _CONTENT_FILTER_REASONS:
        return "content_filter"
    return "tool_calls" if called_tools else "stop"


def unified_usage(metadata: UsageMetadata) -> Usage:
    """Gemini counts thinking separately from the answer; OpenAI counts it inside completion
    tokens and reports it again as reasoning tokens."""
    prompt = metadata.prompt_token_count + metadata.tool_use_prompt_token_count
    completion = metadata.candidates_token_count + metadata.thoughts_token_count
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=metadata.total_token_count or prompt + completion,
        prompt_tokens_details=(PromptTokensDetails(cached_tokens=metadata.cached_content_token_count)
                               if metadata.cached_content_token_count else None),
        completion_tokens_details=(CompletionTokensDetails(reasoning_tokens=metadata.thoughts_token_count)
                                   if metadata.thoughts_token_count else None),
    )


def encode_arguments(args: dict[str, Any] | None) -> str:
    return encoder.encode(args or {}).decode()


def signatures_metadata(signatures: dict[str, str]) -> dict[str, Any] | None:
    return {METADATA_KEY: {SIGNATURES: signatures}} if signatures else None


def _signatures_of(message: Message) -> dict[str, str]:
    metadata = (message.provider_metadata or {}).get(METADATA_KEY)
    if isinstance(metadata, dict) and isinstance(metadata.get(SIGNATURES), dict):
        return metadata[SIGNATURES]
    return {}


# --- request: unified → Gemini -------------------------------------------------------------------


def _media_part(url: str, where: str, config: GeminiConfig, default_mime: str) -> Part:
    if url.startswith("data:"):
        match = _DATA_URL.fullmatch(url)
        if match is None:
            raise InvalidRequest(f"{where}: only base64 data: URLs are supported", param=where,
                                 code="invalid_value")
        return Part(inline_data=Blob(mime_type=match.group("mime") or default_mime, data=match.group("data")))
    if url.startswith(_GEMINI_URIS) or (config.pass_image_urls and url.startswith(("http://", "https://"))):
        mime = mimetypes.guess_type(url.split("?", 1)[0])[0] or default_mime
        return Part(file_data=FileData(file_uri=url, mime_type=mime))
    raise InvalidRequest(
        f"{where}: gemini takes images as base64 data: URLs or Files API / gs:// URIs, not {url[:60]!r} "
        "(the operator may allow other URLs with providers.gemini.pass_image_urls)",
        param=where, code="unsupported_image_url")


def _user_parts(message: Message, index: int, config: GeminiConfig) -> list[Part]:
    if isinstance(message.content, str):
        return [Part(text=message.content)]
    parts: list[Part] = []
    for position, part in enumerate(message.content or ()):
        where = f"messages[{index}].content[{position}]"
        if isinstance(part, TextPart):
            parts.append(Part(text=part.text))
        elif isinstance(part, ImagePart):
            parts.append(_media_part(part.image_url.url, f"{where}.image_url.url", config, "image/jpeg"))
        elif isinstance(part, AudioPart):
            audio = part.input_audio
            parts.append(Part(inline_data=Blob(mime_type=f"audio/{audio.format}", data=audio.data)))
        elif isinstance(part, FilePart) and part.file.file_data:
            parts.append(_media_part(part.file.file_data, f"{where}.file.file_data", config,
                                     "application/pdf"))
        else:
            raise InvalidRequest(f"{where}: this content part cannot be sent to gemini", param=where,
                                 code="unsupported_content")
    return parts


def _arguments(text: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError:
        raise InvalidRequest(f"{where}: tool-call arguments must be a JSON object", param=where,
                             code="invalid_value") from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where}: tool-call arguments must be a JSON object", param=where,
                             code="invalid_value")
    return value


def _model_parts(message: Message, index: int) -> list[Part]:
    signatures = _signatures_of(message)
    parts: list[Part] = []
    text = message.text()
    if text or TEXT_SIGNATURE in signatures:
        parts.append(Part(text=text, thought_signature=signatures.get(TEXT_SIGNATURE)))
    for position, call in enumerate(message.tool_calls or ()):
        where = f"messages[{index}].tool_calls[{position}].function.arguments"
        call_id = None if _MADE_UP_ID.fullmatch(call.id) else call.id
        parts.append(Part(
            function_call=FunctionCall(name=call.function.name, id=call_id,
                                       args=_arguments(call.function.arguments, where)),
            thought_signature=signatures.get(call.id)))
    return parts


def _tool_result(message: Message, index: int, names: dict[str, str]) -> Part:
    call_id = message.tool_call_id or ""
    name = names.get(call_id) or message.name
    if not name:
        where = f"messages[{index}].tool_call_id"
        raise InvalidRequest(f"{where}: {call_id!r} matches no tool call of an earlier assistant message",
                             param=where, code="invalid_value")
    text = message.text()
    try:
        value: Any = json.loads(text)
    except json.JSONDecodeError:
        value = text
    response = value if isinstance(value, dict) else {"output": value}
    return Part(function_response=FunctionResponse(
        name=name, response=response, id=None if _MADE_UP_ID.fullmatch(call_id) else call_id or None))


def _contents(request: ChatRequest, config: GeminiConfig) -> tuple[list[Content], list[str]]:
    contents: list[Content] = []
    system: list[str] = []
    names: dict[str, str] = {}
    for index, message in enumerate(request.messages):
        if message.role in ("system", "developer"):
            system.append(message.text())
            continue
        if message.role == "assistant":
            role, parts = "model", _model_parts(message, index)
            names.update((call.id, call.function.name) for call in message.tool_calls or ())
        elif message.role in ("tool", "function"):
            role, parts = "user", [_tool_result(message, index, names)]
        else:
            role, parts = "user", _user_parts(message, index, config)
        if not parts:
            continue
        if contents and contents[-1].role == role:
            # Gemini wants turns to alternate, and all results of parallel calls in one turn.
            contents[-1].parts.extend(parts)
        else:
            contents.append(Content(role=role, parts=parts))
    if not contents:
        raise InvalidRequest("messages: gemini needs at least one user or assistant message",
                             param="messages", code="invalid_value")
    return contents, system


def _tool_config(choice: str | NamedToolChoice | None) -> ToolConfig | None:
    if choice is None:
        return None
    if isinstance(choice, NamedToolChoice):
        return ToolConfig(function_calling_config=FunctionCallingConfig(
            mode="ANY", allowed_function_names=[choice.function.name]))
    modes = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
    if choice not in modes:
        raise InvalidRequest(f"tool_choice: {choice!r} is not one of auto, none, required",
                             param="tool_choice", code="invalid_value")
    return ToolConfig(function_calling_config=FunctionCallingConfig(mode=modes[choice]))


def _refuse_unsupported(request: ChatRequest) -> None:
    for name in ("logprobs", "top_logprobs", "logit_bias"):
        if getattr(request, name) not in (None, False):
            raise InvalidRequest(f"{name}: not supported by the gemini provider", param=name,
                                 code="unsupported_parameter")


def _generation_config(request: ChatRequest) -> GenerationConfig | None:
    stop = [request.stop] if isinstance(request.stop, str) else request.stop
    mime, schema = None, None
    if request.response_format is not None and request.response_format.type != "text":
        mime = "application/json"
        if request.response_format.json_schema is not None:
            schema = request.response_format.json_schema.schema
    thinking = None
    if request.reasoning_effort is not None:
        if request.reasoning_effort not in _THINKING_BUDGETS:
            raise InvalidRequest(f"reasoning_effort: {request.reasoning_effort!r} is not one of "
                                 f"{', '.join(_THINKING_BUDGETS)}", param="reasoning_effort",
                                 code="invalid_value")
        budget = _THINKING_BUDGETS[request.reasoning_effort]
        thinking = ThinkingConfig(thinking_budget=budget, include_thoughts=budget > 0 or None)
    config = GenerationConfig(
        temperature=request.temperature, top_p=request.top_p,
        max_output_tokens=request.output_token_limit(), stop_sequences=stop or None,
        candidate_count=request.n, seed=request.seed, presence_penalty=request.presence_penalty,
        frequency_penalty=request.frequency_penalty, response_mime_type=mime,
        response_json_schema=schema, thinking_config=thinking)
    return None if config == GenerationConfig() else config


def to_gemini(request: ChatRequest, config: GeminiConfig) -> GenerateContentRequest:
    """The ``generateContent`` body for ``request``; 400s name the field Gemini cannot take."""
    refuse_openai_only(request, "gemini")
    _refuse_unsupported(request)
    contents, system = _contents(request, config)
    tools = None
    if request.tools:
        tools = [Tool(function_declarations=[
            FunctionDeclaration(name=tool.function.name, description=tool.function.description,
                                parameters_json_schema=tool.function.parameters)
            for tool in request.tools])]
    return GenerateContentRequest(
        contents=contents,
        system_instruction=Content(parts=[Part(text="\n\n".join(system))]) if system else None,
        tools=tools,
        tool_config=_tool_config(request.tool_choice) if request.tools else None,
        generation_config=_generation_config(request))


#: Gemini request fields a client may send as extra fields (in either spelling); they are spliced
#: into the body verbatim. Other unmodelled fields are OpenAI-specific and not sent to Gemini.
_PASSED_THROUGH = {"safety_settings": "safetySettings", "safetySettings": "safetySettings",
                   "cached_content": "cachedContent", "cachedContent": "cachedContent"}


#: The body's members that come from the unified request (both spellings Gemini accepts).
_MODELLED = frozenset({"contents", "systemInstruction", "system_instruction", "tools", "toolConfig",
                       "tool_config", "generationConfig", "generation_config"})


def gemini_body(request: ChatRequest, config: GeminiConfig) -> bytes:
    """The encoded ``generateContent`` body, with Gemini-native extra fields and
    ``provider_options.gemini`` spliced in."""
    body = encoder.encode(to_gemini(request, config))
    extras = {_PASSED_THROUGH[name]: raw for name, raw in (request.extra_fields or {}).items()
              if name in _PASSED_THROUGH}
    extras.update(option_fields(request.provider_options, METADATA_KEY, _MODELLED))
    return splice_fields(body, extras)


# --- response: Gemini → unified ------------------------------------------------------------------


def to_unified(response: GenerateContentResponse, model: str) -> ChatResponse:
    choices: list[Choice] = []
    for candidate in response.candidates:
        text: list[str] = []
        reasoning: list[str] = []
        calls: list[ToolCall] = []
        signatures: dict[str, str] = {}
        for part in candidate.content.parts if candidate.content else ():
            if part.function_call is not None:
                call = part.function_call
                call_id = call.id or made_up_call_id(response.response_id, candidate.index, len(calls),
                                                     call.name)
                calls.append(ToolCall(id=call_id, function=UnifiedFunctionCall(
                    name=call.name, arguments=encode_arguments(call.args))))
                if part.thought_signature:
                    signatures[call_id] = part.thought_signature
            elif part.thought:
                reasoning.append(part.text or "")
            elif part.text is not None:
                text.append(part.text)
                if part.thought_signature:
                    signatures[TEXT_SIGNATURE] = part.thought_signature
        message = Message(role="assistant", content="".join(text) or None, tool_calls=calls or None,
                          reasoning="".join(reasoning) or None,
                          provider_metadata=signatures_metadata(signatures))
        choices.append(Choice(index=candidate.index, message=message,
                              finish_reason=finish_reason(candidate.finish_reason or "STOP", bool(calls))))
    if not choices and response.prompt_feedback and response.prompt_feedback.block_reason:
        # The prompt itself was blocked: no candidate at all.
        choices.append(Choice(index=0, message=Message(role="assistant"), finish_reason="content_filter"))
    return ChatResponse(
        id=response.response_id or f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=response.model_version or model,
        choices=choices,
        usage=unified_usage(response.usage_metadata) if response.usage_metadata else None,
    )
