"""Anthropic Messages requests, from clients of ``POST /v1/messages``, → unified requests.

Anthropic-only request options (``thinking``, ``top_k``, ``service_tier``, ``output_config.effort``,
``context_management``, ``container``, ``mcp_servers``) travel exactly in
``provider_options["anthropic"]``, which only the Anthropic provider applies; for other providers
the thinking budget or effort is also approximated as a ``reasoning_effort`` tier.
Thinking blocks, ``is_error`` on tool results and ``cache_control`` travel in ``provider_metadata``
(see :mod:`junction.formats.anthropic.blocks`), so they reach an Anthropic upstream unchanged.
"""

from __future__ import annotations

import base64
from typing import Any

import msgspec

from junction.errors import InvalidRequest
from junction.formats.anthropic.wire import (
    FOREIGN_METADATA_PREFIX,
    METADATA_KEY,
    Base64Source,
    DocumentBlock,
    ImageBlock,
    MessagesRequest,
    PlainTextSource,
    RedactedThinkingBlock,
    RequestBlock,
    TextBlock,
    ThinkingBlock,
    ThinkingBlocks,
    ToolResultBlock,
    ToolUseBlock,
    URLSource,
)
from junction.formats.openai import validation_error
from junction.schemas.chat import (
    ChatRequest,
    ContentPart,
    FilePart,
    FileRef,
    FunctionCall,
    FunctionDefinition,
    ImagePart,
    ImageURL,
    JSONSchemaFormat,
    Message,
    NamedFunction,
    NamedToolChoice,
    ResponseFormat,
    TextPart,
    Tool,
    ToolCall,
)

_request_decoder = msgspec.json.Decoder(MessagesRequest)
_metadata_decoder = msgspec.json.Decoder(dict[str, Any])
#: Thinking budget (tokens) at or below which each ``reasoning_effort`` tier is chosen.
_EFFORT_BY_BUDGET = ((2048, "low"), (8192, "medium"))
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}
_TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}
#: Anthropic-only request fields with no counterpart elsewhere, relayed to Anthropic as they came.
_RELAYED = ("context_management", "container", "mcp_servers")


def _invalid(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"{param}: {message}", param=param, code="invalid_value")


# --- request: Anthropic → unified ---------------------------------------------------------------


def _source_url(source: Any, param: str) -> str:
    if isinstance(source, Base64Source):
        return f"data:{source.media_type};base64,{source.data}"
    if isinstance(source, URLSource):
        return source.url
    raise _invalid(param, "file sources are not supported through the gateway; send base64 or a URL")


def _cache_metadata(blocks: list[Any]) -> dict[str, Any] | None:
    """A message's cache breakpoint, kept so an Anthropic upstream gets it on the same message."""
    marked = [b.cache_control for b in blocks if getattr(b, "cache_control", None) is not None]
    return {METADATA_KEY: {"cache_control": msgspec.to_builtins(marked[-1])}} if marked else None


def _part(block: RequestBlock, param: str) -> ContentPart:
    if isinstance(block, TextBlock):
        return TextPart(text=block.text)
    if isinstance(block, ImageBlock):
        return ImagePart(image_url=ImageURL(url=_source_url(block.source, f"{param}.source")))
    if isinstance(block, DocumentBlock):
        if isinstance(block.source, PlainTextSource):
            return TextPart(text=block.source.data)
        if isinstance(block.source, Base64Source):
            return FilePart(file=FileRef(file_data=_source_url(block.source, param), filename=block.title))
        raise _invalid(f"{param}.source", "documents must be base64 or text through the gateway")
    raise _invalid(f"{param}.type", f"{block.__struct_config__.tag} blocks are not allowed in user messages")


def _simplified(parts: list[ContentPart]) -> str | list[ContentPart]:
    if len(parts) == 1 and isinstance(parts[0], TextPart):
        return parts[0].text
    return parts


def _user_messages(content: str | list[RequestBlock], index: int) -> list[Message]:
    if isinstance(content, str):
        return [Message(role="user", content=content)]
    messages: list[Message] = []
    parts: list[ContentPart] = []
    for j, block in enumerate(content):
        param = f"messages[{index}].content[{j}]"
        if isinstance(block, ToolResultBlock):
            result = block.content
            if isinstance(result, list):
                result = _simplified([_part(b, f"{param}.content") for b in result])
            metadata = _cache_metadata([block]) or {}
            if block.is_error:
                metadata.setdefault(METADATA_KEY, {})["is_error"] = True
            messages.append(Message(role="tool", tool_call_id=block.tool_use_id, content=result or "",
                                    provider_metadata=metadata or None))
        else:
            parts.append(_part(block, param))
    if parts:
        others = [b for b in content if not isinstance(b, ToolResultBlock)]
        messages.append(Message(role="user", content=_simplified(parts),
                                provider_metadata=_cache_metadata(others)))
    return messages


def _assistant_message(content: str | list[RequestBlock], index: int) -> Message:
    if isinstance(content, str):
        return Message(role="assistant", content=content)
    texts: list[str] = []
    calls: list[ToolCall] = []
    reasoning: list[str] = []
    thinking: ThinkingBlocks = []
    foreign: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ToolUseBlock):
            calls.append(ToolCall(id=block.id, function=FunctionCall(name=block.name,
                                                                     arguments=bytes(block.input).decode())))
        elif isinstance(block, ThinkingBlock):
            reasoning.append(block.thinking)
            thinking.append(block)
        elif isinstance(block, RedactedThinkingBlock):
            if block.data.startswith(FOREIGN_METADATA_PREFIX):
                foreign.append(_foreign_metadata(block.data, f"messages[{index}].content[{j}].data"))
            else:
                thinking.append(block)
        else:
            raise _invalid(f"messages[{index}].content[{j}].type",
                           f"{block.__struct_config__.tag} blocks are not allowed in assistant messages")
    metadata = _cache_metadata(list(content)) or {}
    if thinking:
        metadata.setdefault(METADATA_KEY, {})["thinking_blocks"] = msgspec.to_builtins(thinking)
    for entry in foreign:
        for provider, value in entry.items():
            known = metadata.get(provider)
            both_tables = isinstance(known, dict) and isinstance(value, dict)
            metadata[provider] = {**known, **value} if both_tables else value
    return Message(role="assistant", content="".join(texts) if texts or not calls else None,
                   tool_calls=calls or None, reasoning="".join(reasoning) if reasoning else None,
                   provider_metadata=metadata or None)


def _foreign_metadata(data: str, param: str) -> dict[str, Any]:
    """Other providers' metadata from the block that carried it to the client and back."""
    try:
        return _metadata_decoder.decode(base64.urlsafe_b64decode(data[len(FOREIGN_METADATA_PREFIX):]))
    except (ValueError, msgspec.MsgspecError):
        raise _invalid(param, "this redacted_thinking block was altered; send it back unchanged") from None


def _reasoning_effort(wire: MessagesRequest) -> str | None:
    if wire.output_config is not None and wire.output_config.effort:
        return _EFFORTS.get(wire.output_config.effort, "medium")
    thinking = wire.thinking
    if thinking is None or thinking.type == "disabled":
        return None
    if thinking.type == "adaptive" or thinking.budget_tokens is None:
        return "medium"
    return next((effort for limit, effort in _EFFORT_BY_BUDGET if thinking.budget_tokens <= limit), "high")


def _provider_options(wire: MessagesRequest) -> dict[str, dict[str, Any]] | None:
    """The request's Anthropic-only settings, exactly as sent (``output_config.format`` is served
    through ``response_format`` instead, so only the effort is kept)."""
    options: dict[str, Any] = {}
    if wire.thinking is not None:
        options["thinking"] = msgspec.to_builtins(wire.thinking)
    if wire.top_k is not None:
        options["top_k"] = wire.top_k
    if wire.service_tier is not None:
        options["service_tier"] = wire.service_tier
    if wire.output_config is not None and wire.output_config.effort is not None:
        options["output_config"] = {"effort": wire.output_config.effort}
    for name in _RELAYED:
        if (value := getattr(wire, name)) is not None:
            options[name] = value
    return {METADATA_KEY: options} if options else None


def _tools(wire: MessagesRequest) -> list[Tool] | None:
    if not wire.tools:
        return None
    tools = []
    for k, tool in enumerate(wire.tools):
        if tool.input_schema is None or tool.type not in (None, "custom"):
            raise InvalidRequest(f"tools[{k}]: Anthropic server tools ({tool.type or 'no input_schema'}) are "
                                 "not supported through the gateway", param=f"tools[{k}]",
                                 code="unsupported_parameter")
        tools.append(Tool(function=FunctionDefinition(name=tool.name, description=tool.description,
                                                      parameters=tool.input_schema)))
    return tools


def _tool_choice(wire: MessagesRequest) -> tuple[str | NamedToolChoice | None, bool | None]:
    choice = wire.tool_choice
    if choice is None:
        return None, None
    parallel = False if choice.disable_parallel_tool_use else None
    if choice.type == "tool":
        if not choice.name:
            raise InvalidRequest("tool_choice.name: required when type is 'tool'", param="tool_choice.name",
                                 code="missing_required_parameter")
        return NamedToolChoice(function=NamedFunction(name=choice.name)), parallel
    return _TOOL_CHOICES[choice.type], parallel


def decode_messages_request(body: bytes) -> ChatRequest:
    """A client's Messages request as a unified request; bad input is a 400 naming the field."""
    try:
        wire = _request_decoder.decode(body)
    except msgspec.MsgspecError as error:
        raise validation_error(error) from None
    if not wire.messages:
        raise _invalid("messages", "must contain at least one message")
    if wire.max_tokens < 1:
        raise _invalid("max_tokens", "must be at least 1")
    # Anthropic's documented ranges (narrower than OpenAI's for temperature).
    for name, value, high in (("temperature", wire.temperature, 1), ("top_p", wire.top_p, 1)):
        if value is not None and not 0 <= value <= high:
            raise _invalid(name, f"{value!r} is out of range (must be between 0 and {high})")
    if wire.top_k is not None and wire.top_k < 0:
        raise _invalid("top_k", "must be at least 0")
    messages: list[Message] = []
    if wire.system:
        system = wire.system
        content = system if isinstance(system, str) else _simplified([TextPart(text=b.text) for b in system])
        cache = None if isinstance(system, str) else _cache_metadata(system)
        messages.append(Message(role="system", content=content, provider_metadata=cache))
    for i, message in enumerate(wire.messages):
        if message.role == "user":
            messages.extend(_user_messages(message.content, i))
        else:
            messages.append(_assistant_message(message.content, i))
    tool_choice, parallel = _tool_choice(wire)
    output_format = wire.output_config.format if wire.output_config else None
    return ChatRequest(
        model=wire.model,
        messages=messages,
        stream=wire.stream,
        # OpenAI's current name for the output limit: its reasoning models refuse max_tokens, and
        # dialects that only know max_tokens translate it back (Mistral, OpenRouter).
        max_completion_tokens=wire.max_tokens,
        stop=wire.stop_sequences or None,
        temperature=wire.temperature,
        top_p=wire.top_p,
        tools=_tools(wire),
        tool_choice=tool_choice,
        parallel_tool_calls=parallel,
        reasoning_effort=_reasoning_effort(wire),
        response_format=ResponseFormat(type="json_schema", json_schema=JSONSchemaFormat(
            name="response", schema=output_format.schema)) if output_format else None,
        user=wire.metadata.user_id if wire.metadata else None,
        provider_options=_provider_options(wire),
    )

