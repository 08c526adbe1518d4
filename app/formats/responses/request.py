"""A Responses request → the unified :class:`~junction.schemas.chat.ChatRequest`.

Input items become unified messages: a run of assistant items (reasoning, text, function calls)
becomes one assistant message, as every provider wants parallel calls in one turn;
``function_call_output`` becomes a ``tool`` message. Reasoning items carry Junction's opaque
provider metadata (thinking and thought signatures) in ``encrypted_content``, so a client that
manages its own context keeps multi-turn reasoning working. The items are also normalised (ids
given, content as part lists) for ``GET /v1/responses/{id}/input_items``.
"""

from __future__ import annotations

import base64
import binascii
import random
import secrets
from typing import Any

import msgspec

from junction.errors import InvalidRequest
from junction.formats.openai import validation_error
from junction.formats.responses.wire import ResponsesRequest
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
    RefusalPart,
    ResponseFormat,
    StreamOptions,
    TextPart,
    Tool,
    ToolCall,
)

_decoder = msgspec.json.Decoder(ResponsesRequest)
_encoder = msgspec.json.Encoder()
_metadata_decoder = msgspec.json.Decoder(dict[str, Any])
#: Marks ``encrypted_content`` Junction wrote (base64 of the provider metadata, not encrypted).
METADATA_PREFIX = "jn1:"
_TOOL_CHOICES = frozenset({"none", "auto", "required"})
_INCLUDABLE = frozenset(
    {"reasoning.encrypted_content", "message.output_text.logprobs", "message.input_image.image_url"}
)
_USAGE = StreamOptions(include_usage=True)


def new_id(prefix: str) -> str:
    """An item id. Items are reached only through their response (scoped to its org and owner),
    so they need to be unique, not unguessable: no system call per id."""
    return f"{prefix}_{random.getrandbits(128):032x}"


def new_response_id() -> str:
    """A response id: unguessable, like every id a client may present on its own."""
    return f"resp_{secrets.token_hex(16)}"


def _bad(param: str, message: str, code: str = "invalid_value") -> InvalidRequest:
    return InvalidRequest(f"{param}: {message}", param=param, code=code)


def decode_responses_request(body: bytes) -> ResponsesRequest:
    try:
        request = _decoder.decode(body)
    except msgspec.MsgspecError as error:
        raise validation_error(error) from None
    if request.background:
        raise _bad("background", "background responses are not supported", "unsupported_parameter")
    for index, name in enumerate(request.include or ()):
        if name not in _INCLUDABLE:
            raise _bad(
                f"include[{index}]",
                f"{name!r} is not supported (hosted tools are not available)",
                "unsupported_parameter",
            )
    if request.input is None and request.previous_response_id is None:
        raise _bad("input", "required unless previous_response_id is given", "missing_required_parameter")
    return request


# --- metadata ⇄ encrypted_content ---------------------------------------------------------------


def seal_metadata(metadata: dict[str, Any] | None) -> str | None:
    if not metadata:
        return None
    return METADATA_PREFIX + base64.urlsafe_b64encode(_encoder.encode(metadata)).decode()


def open_metadata(value: Any, param: str) -> dict[str, Any] | None:
    """Junction's own ``encrypted_content`` back into provider metadata; another gateway's (or
    OpenAI's) cannot be read by any provider here, and is dropped."""
    if not isinstance(value, str) or not value.startswith(METADATA_PREFIX):
        return None
    try:
        return _metadata_decoder.decode(base64.urlsafe_b64decode(value[len(METADATA_PREFIX) :]))
    except (binascii.Error, ValueError, msgspec.MsgspecError):
        raise _bad(param, "not the encrypted_content Junction issued") from None


# --- input items --------------------------------------------------------------------------------


def _text_of(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise _bad(param, "expected a string")
    return value


def _part(part: Any, param: str) -> ContentPart:
    if not isinstance(part, dict):
        raise _bad(param, "expected a content part object")
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        return TextPart(text=_text_of(part.get("text"), f"{param}.text"))
    if kind == "refusal":
        return RefusalPart(refusal=_text_of(part.get("refusal"), f"{param}.refusal"))
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str):
            raise _bad(
                f"{param}.image_url",
                "an image URL or data: URL is required (file_id is not supported)",
                "unsupported_parameter",
            )
        detail = part.get("detail")
        return ImagePart(
            image_url=ImageURL(url=url, detail=detail if detail in ("low", "high", "auto") else None)
        )
    if kind == "input_file":
        if part.get("file_url") is not None:
            raise _bad(f"{param}.file_url", "not supported; send file_data", "unsupported_parameter")
        return FilePart(
            file=FileRef(
                file_id=part.get("file_id"), file_data=part.get("file_data"), filename=part.get("filename")
            )
        )
    raise _bad(f"{param}.type", f"unsupported content part type {kind!r}")


def _content(value: Any, param: str) -> str | list[ContentPart]:
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise _bad(param, "expected a string or a list of content parts")
    if len(value) == 1 and isinstance(value[0], dict) and value[0].get("type") == "input_text":
        return _text_of(value[0].get("text"), f"{param}[0].text")  # plain text stays a string upstream
    return [_part(part, f"{param}[{index}]") for index, part in enumerate(value)]


class _Assistant:
    """The assistant turn being assembled from consecutive assistant-side items."""

    __slots__ = ("calls", "metadata", "reasoning", "refusal", "texts")

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.refusal: str | None = None
        self.calls: list[ToolCall] = []
        self.reasoning: list[str] = []
        self.metadata: dict[str, Any] | None = None

    def message(self) -> Message:
        return Message(
            role="assistant",
            content="".join(self.texts) if self.texts or not self.calls else None,
            tool_calls=self.calls or None,
            refusal=self.refusal,
            reasoning="".join(self.reasoning) if self.reasoning else None,
            provider_metadata=self.metadata,
        )


def _merge(into: dict[str, Any] | None, more: dict[str, Any] | None) -> dict[str, Any] | None:
    """Provider metadata of two pieces of one turn: nested objects merged, other values replaced."""
    if not more:
        return into
    merged = dict(into or {})
    for key, value in more.items():
        old = merged.get(key)
        merged[key] = _merge(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
    return merged


def items_to_messages(items: list[dict[str, Any]], param: str = "input") -> list[Message]:
    """Normalised input items (see :func:`normalize_items`) as unified messages."""
    messages: list[Message] = []
    turn: _Assistant | None = None

    def close() -> None:
        nonlocal turn
        if turn is not None:
            messages.append(turn.message())
            turn = None

    for index, item in enumerate(items):
        where = f"{param}[{index}]"
        kind = item.get("type")
        if kind == "message" and item.get("role") == "assistant":
            turn = turn or _Assistant()
            for part in item.get("content") or ():
                if part.get("type") == "refusal":
                    turn.refusal = part.get("refusal")
                else:
                    turn.texts.append(part.get("text") or "")
        elif kind == "message":
            close()
            messages.append(
                Message(role=item["role"], content=_content(item.get("content"), f"{where}.content"))
            )
        elif kind == "function_call":
            turn = turn or _Assistant()
            turn.calls.append(
                ToolCall(
                    id=item["call_id"],
                    function=FunctionCall(name=item["name"], arguments=item.get("arguments") or ""),
                )
            )
        elif kind == "reasoning":
            # Reasoning belongs to the assistant turn it is in, wherever it stands (a streamed
            # answer may list signatures after the calls they sign).
            turn = turn or _Assistant()
            turn.reasoning.extend(part.get("text") or "" for part in item.get("summary") or ())
            turn.metadata = _merge(
                turn.metadata, open_metadata(item.get("encrypted_content"), f"{where}.encrypted_content")
            )
        elif kind == "function_call_output":
            close()
            output = item.get("output")
            content = output if isinstance(output, str) else _content(output, f"{where}.output")
            messages.append(Message(role="tool", tool_call_id=item["call_id"], content=content))
    close()
    return messages


def _assistant_part(part: Any, where: str) -> dict[str, Any]:
    """An assistant message's part as listed items show it (``output_text`` or ``refusal``)."""
    if not isinstance(part, dict):
        raise _bad(where, "expected a content part object")
    kind = part.get("type")
    if kind == "refusal":
        _text_of(part.get("refusal"), f"{where}.refusal")
        return part
    if kind not in ("output_text", "input_text", "text"):
        raise _bad(f"{where}.type", f"an assistant message holds output_text or refusal parts, not {kind!r}")
    text = _text_of(part.get("text"), f"{where}.text")
    return {
        "type": "output_text",
        "text": text,
        "annotations": part.get("annotations") or [],
        "logprobs": part.get("logprobs") or [],
    }


def _normal_item(item: Any, where: str) -> dict[str, Any]:
    """One input item with an id and the shape the OpenAPI document gives listed items."""
    if not isinstance(item, dict):
        raise _bad(where, "expected an input item object")
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if role not in ("user", "system", "developer", "assistant"):
            raise _bad(f"{where}.role", "must be one of user, system, developer, assistant")
        content = item.get("content")
        parts: list[Any]
        if isinstance(content, str):
            parts = [{"type": "output_text" if role == "assistant" else "input_text", "text": content}]
        elif isinstance(content, list):
            parts = list(content)  # each part is checked when it becomes a unified one
        else:
            raise _bad(f"{where}.content", "expected a string or a list of content parts")
        if role == "assistant":
            parts = [_assistant_part(part, f"{where}.content[{index}]") for index, part in enumerate(parts)]
        return {
            "id": item.get("id") or new_id("msg"),
            "type": "message",
            "role": role,
            "content": parts,
            "status": item.get("status") or "completed",
        }
    if kind == "function_call":
        for name in ("call_id", "name", "arguments"):
            _text_of(item.get(name), f"{where}.{name}")
        return {
            "id": item.get("id") or new_id("fc"),
            "type": "function_call",
            "call_id": item["call_id"],
            "name": item["name"],
            "arguments": item["arguments"],
            "status": item.get("status") or "completed",
        }
    if kind == "function_call_output":
        _text_of(item.get("call_id"), f"{where}.call_id")
        output = item.get("output")
        if not isinstance(output, str | list):
            raise _bad(f"{where}.output", "expected a string or a list of content parts")
        return {
            "id": item.get("id") or new_id("fco"),
            "type": "function_call_output",
            "call_id": item["call_id"],
            "output": output,
            "status": item.get("status") or "completed",
        }
    if kind == "reasoning":
        summary = item.get("summary") or []
        if not isinstance(summary, list):
            raise _bad(f"{where}.summary", "expected a list")
        for index, part in enumerate(summary):
            if not isinstance(part, dict):
                raise _bad(f"{where}.summary[{index}]", "expected a summary_text object")
            _text_of(part.get("text"), f"{where}.summary[{index}].text")
        open_metadata(item.get("encrypted_content"), f"{where}.encrypted_content")  # validates
        return {
            "id": item.get("id") or new_id("rs"),
            "type": "reasoning",
            "summary": summary,
            "encrypted_content": item.get("encrypted_content"),
        }
    if kind == "item_reference":
        raise _bad(
            f"{where}.type",
            "item_reference is not supported; use previous_response_id",
            "unsupported_parameter",
        )
    raise _bad(
        f"{where}.type",
        f"input item type {kind!r} is not supported (only messages, function calls, "
        "their outputs and reasoning: hosted tools are not available)",
        "unsupported_parameter",
    )


def normalize_items(request: ResponsesRequest) -> list[dict[str, Any]]:
    value = request.input
    if value is None:
        return []
    if isinstance(value, str):
        return [
            {
                "id": new_id("msg"),
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": value}],
                "status": "completed",
            }
        ]
    return [_normal_item(item, f"input[{index}]") for index, item in enumerate(value)]


# --- tools and options ------------------------------------------------------------------------------


def _tools(request: ResponsesRequest) -> list[Tool] | None:
    if not request.tools:
        return None
    tools = []
    for index, tool in enumerate(request.tools):
        kind = tool.get("type")
        if kind != "function":
            raise _bad(
                f"tools[{index}].type",
                f"the hosted tool {kind!r} is not available through Junction; "
                "declare function tools and run them yourself",
                "unsupported_tool",
            )
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise _bad(f"tools[{index}].name", "required")
        tools.append(
            Tool(
                function=FunctionDefinition(
                    name=name,
                    description=tool.get("description"),
                    parameters=tool.get("parameters"),
                    strict=tool.get("strict"),
                )
            )
        )
    return tools


def _tool_choice(choice: str | dict[str, Any] | None) -> str | NamedToolChoice | None:
    if choice is None or (isinstance(choice, str) and choice in _TOOL_CHOICES):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return NamedToolChoice(function=NamedFunction(name=choice["name"]))
    kind = choice.get("type") if isinstance(choice, dict) else choice
    raise _bad(
        "tool_choice",
        f"{kind!r} is not supported: use none, auto, required or a function",
        "unsupported_parameter",
    )


def _response_format(request: ResponsesRequest) -> ResponseFormat | None:
    fmt = request.text.format if request.text is not None else None
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return ResponseFormat(type="json_object")
    if not fmt.name or fmt.schema is None:
        raise _bad("text.format", "json_schema needs name and schema", "missing_required_parameter")
    return ResponseFormat(
        type="json_schema",
        json_schema=JSONSchemaFormat(
            name=fmt.name, schema=fmt.schema, description=fmt.description, strict=fmt.strict
        ),
    )


def to_chat_request(request: ResponsesRequest, conversation: list[Message]) -> ChatRequest:
    """The unified request: instructions first (never carried over from earlier responses, as on
    OpenAI), then ``conversation`` (the stored one, then this request's input)."""
    messages: list[Message] = []
    if request.instructions:
        messages.append(Message(role="system", content=request.instructions))
    messages.extend(conversation)
    if not messages:
        raise _bad("input", "must hold at least one item", "missing_required_parameter")
    return ChatRequest(
        model=request.model,
        messages=messages,
        stream=True if request.stream else None,
        stream_options=_USAGE if request.stream else None,
        tools=_tools(request),
        tool_choice=_tool_choice(request.tool_choice),
        parallel_tool_calls=request.parallel_tool_calls,
        response_format=_response_format(request),
        temperature=request.temperature,
        top_p=request.top_p,
        max_completion_tokens=request.max_output_tokens,
        reasoning_effort=request.reasoning.effort if request.reasoning is not None else None,
        user=request.user,
        # ``metadata`` describes the stored response; it is not sent upstream.
        provider_options=request.provider_options,
    )
