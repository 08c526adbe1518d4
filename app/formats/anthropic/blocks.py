"""Unified message content → Anthropic content blocks (the provider's request side).

Opaque Anthropic data rides in ``Message.provider_metadata["anthropic"]``:

- ``thinking_blocks``: the assistant turn's ``thinking``/``redacted_thinking`` blocks, verbatim (as
  returned in a non-streamed response); or, as a streamed answer accumulates them,
  ``signature`` (with ``Message.reasoning`` as the thinking text) and ``redacted_thinking``.
- ``is_error``: on a tool message, sent as the ``tool_result``'s ``is_error``.
- ``cache_control``: a ``cache_control`` object put on the message's last block.
"""

from __future__ import annotations

from typing import Any

import msgspec

from junction.errors import InvalidRequest
from junction.formats.anthropic.wire import (
    METADATA_KEY,
    Base64Source,
    CacheControl,
    DocumentBlock,
    ImageBlock,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ThinkingBlocks,
    ToolResultBlock,
    ToolUseBlock,
    URLSource,
)
from junction.schemas.chat import ContentPart, FilePart, ImagePart, Message, RefusalPart, TextPart

_arguments_decoder = msgspec.json.Decoder(dict[str, Any])
_EMPTY_OBJECT = msgspec.Raw(b"{}")

UserBlock = TextBlock | ImageBlock | DocumentBlock


def _invalid(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"{param}: {message}", param=param, code="unsupported_content")


def anthropic_metadata(message: Message) -> dict[str, Any]:
    metadata = message.provider_metadata
    found = metadata.get(METADATA_KEY) if metadata else None
    return found if isinstance(found, dict) else {}


def data_url_source(url: str, param: str) -> Base64Source:
    header, comma, data = url.partition(",")
    media_type, _, encoding = header[5:].partition(";")
    if not comma or encoding != "base64" or not media_type:
        raise _invalid(param, "a data URL must look like 'data:<media type>;base64,<data>'")
    return Base64Source(media_type=media_type, data=data)


def _image(part: ImagePart, param: str) -> ImageBlock:
    url = part.image_url.url
    if url.startswith("data:"):
        return ImageBlock(source=data_url_source(url, param))
    if url.startswith(("https://", "http://")):
        return ImageBlock(source=URLSource(url=url))
    raise _invalid(param, "an image URL must be an http(s) URL or a base64 data URL")


def _document(part: FilePart, param: str) -> DocumentBlock:
    if part.file.file_data and part.file.file_data.startswith("data:"):
        return DocumentBlock(source=data_url_source(part.file.file_data, param), title=part.file.filename)
    raise _invalid(param, "anthropic takes files as base64 data URLs in file_data (file ids are not shared)")


def with_cache_control(blocks: list[Any], message: Message) -> list[Any]:
    """Put the message's cache breakpoint, if it has one, on its last block."""
    cache_control = anthropic_metadata(message).get("cache_control")
    if isinstance(cache_control, dict) and blocks and hasattr(blocks[-1], "cache_control"):
        try:
            blocks[-1].cache_control = msgspec.convert(cache_control, CacheControl)
        except msgspec.ValidationError as error:
            raise InvalidRequest(f"provider_metadata.anthropic.cache_control: {error}",
                                 param="provider_metadata", code="invalid_value") from None
    return blocks


def user_blocks(content: str | list[ContentPart] | None, param: str) -> list[UserBlock]:
    if not content:
        return []
    if isinstance(content, str):
        return [TextBlock(text=content)]
    blocks: list[UserBlock] = []
    for j, part in enumerate(content):
        if isinstance(part, TextPart):
            if part.text:
                blocks.append(TextBlock(text=part.text))
        elif isinstance(part, ImagePart):
            blocks.append(_image(part, f"{param}[{j}]"))
        elif isinstance(part, FilePart):
            blocks.append(_document(part, f"{param}[{j}]"))
        elif isinstance(part, RefusalPart):
            blocks.append(TextBlock(text=part.refusal))
        else:
            raise _invalid(f"{param}[{j}]", "anthropic does not accept audio input")
    return blocks


def system_blocks(message: Message, index: int) -> list[TextBlock]:
    blocks = user_blocks(message.content, f"messages[{index}].content")
    for j, block in enumerate(blocks):
        if not isinstance(block, TextBlock):
            raise _invalid(f"messages[{index}].content[{j}]", "anthropic system prompts may only hold text")
    return with_cache_control(blocks, message)  # type: ignore[return-value]


def _thinking_blocks(message: Message, index: int) -> list[ThinkingBlock | RedactedThinkingBlock]:
    metadata = anthropic_metadata(message)
    if not metadata:
        return []
    stored = metadata.get("thinking_blocks")
    if stored is not None:
        try:
            blocks = msgspec.convert(stored, ThinkingBlocks)
        except msgspec.ValidationError as error:
            param = f"messages[{index}].provider_metadata.anthropic.thinking_blocks"
            raise InvalidRequest(f"{param}: {error}", param=param, code="invalid_value") from None
    else:
        blocks = []
        signature = metadata.get("signature")
        if isinstance(signature, str) and message.reasoning is not None:
            blocks.append(ThinkingBlock(thinking=message.reasoning, signature=signature))
        redacted = metadata.get("redacted_thinking")
        if isinstance(redacted, str) and redacted:
            blocks.append(RedactedThinkingBlock(data=redacted))
    # Thinking without a signature (another provider's reasoning) would be refused upstream.
    return [b for b in blocks if not isinstance(b, ThinkingBlock) or b.signature]


def tool_arguments(arguments: str, param: str) -> msgspec.Raw:
    """Tool-call arguments text as a JSON object for ``tool_use.input`` (Anthropic wants an object)."""
    if not arguments.strip():
        return _EMPTY_OBJECT
    try:
        _arguments_decoder.decode(arguments)
    except msgspec.MsgspecError:
        raise InvalidRequest(f"{param}: must be a JSON object", param=param, code="invalid_value") from None
    return msgspec.Raw(arguments.encode())


def assistant_blocks(message: Message, index: int) -> list[Any]:
    blocks: list[Any] = _thinking_blocks(message, index)
    content = message.content
    if isinstance(content, str):
        if content:
            blocks.append(TextBlock(text=content))
    elif content:
        for j, part in enumerate(content):
            if isinstance(part, TextPart) and part.text:
                blocks.append(TextBlock(text=part.text))
            elif isinstance(part, RefusalPart):
                blocks.append(TextBlock(text=part.refusal))
            elif not isinstance(part, TextPart):
                raise _invalid(f"messages[{index}].content[{j}]", "assistant messages may only hold text")
    for k, call in enumerate(message.tool_calls or ()):
        param = f"messages[{index}].tool_calls[{k}].function.arguments"
        blocks.append(ToolUseBlock(id=call.id, name=call.function.name,
                                   input=tool_arguments(call.function.arguments, param)))
    return with_cache_control(blocks, message)


def tool_result_block(message: Message, index: int) -> ToolResultBlock:
    if not message.tool_call_id:
        param = f"messages[{index}].tool_call_id"
        raise InvalidRequest(f"{param}: required on tool messages", param=param,
                             code="missing_required_parameter")
    blocks = user_blocks(message.content, f"messages[{index}].content")
    content: str | list[UserBlock] | None = blocks or None
    if len(blocks) == 1 and isinstance(blocks[0], TextBlock):
        content = blocks[0].text
    metadata = anthropic_metadata(message)
    result = ToolResultBlock(tool_use_id=message.tool_call_id, content=content,
                             is_error=True if metadata.get("is_error") is True else None)
    with_cache_control([result], message)
    return result
