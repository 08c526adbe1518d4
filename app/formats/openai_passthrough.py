"""What Chat Completions clients send that only OpenAI-compatible upstreams understand.

Unknown members inside messages and content parts are kept on each unified message and written
back, verbatim, into OpenAI-compatible upstream bodies (other providers translate messages and
ignore them). OpenAI's custom tools and its ``allowed_tools`` / custom ``tool_choice`` are kept
unmodelled, as raw extra fields: the ``openai`` provider sends them as they came, every other
provider refuses them with a 400 naming the field.
"""

from __future__ import annotations

from typing import Any

import msgspec

from junction.errors import InvalidRequest
from junction.schemas.chat import MESSAGE_FIELDS, PART_FIELDS, ChatRequest, Message

_encoder = msgspec.json.Encoder()
#: Chat fields whose OpenAI-only forms (custom tools, ``allowed_tools``) travel verbatim to OpenAI.
OPENAI_ONLY_FIELDS = ("tools", "tool_choice")
_raw_items_decoder = msgspec.json.Decoder(list[dict[str, msgspec.Raw]])
_any_decoder = msgspec.json.Decoder()


def openai_only(fields: dict[str, msgspec.Raw]) -> dict[str, msgspec.Raw]:
    """``tools`` holding a custom tool, ``tool_choice`` naming ``allowed_tools`` or a custom tool:
    left unmodelled, so OpenAI gets them verbatim and other providers refuse them by name."""
    moved = {}
    tools = fields.get("tools")
    if tools is not None:
        decoded = _any_decoder.decode(tools)
        if isinstance(decoded, list) and any(
            isinstance(t, dict) and t.get("type") == "custom" for t in decoded
        ):
            moved["tools"] = tools
    choice = fields.get("tool_choice")
    if choice is not None:
        decoded = _any_decoder.decode(choice)
        if isinstance(decoded, dict) and decoded.get("type") in ("allowed_tools", "custom"):
            moved["tool_choice"] = choice
    return moved


def refuse_openai_only(request: ChatRequest, provider: str) -> None:
    """A 400 naming the field when ``request`` holds an OpenAI-only tool form ``provider`` lacks."""
    extras = request.extra_fields
    for name in OPENAI_ONLY_FIELDS:
        if extras and name in extras:
            raise InvalidRequest(
                f"{name}: custom tools and the allowed_tools tool choice are OpenAI's own; "
                f"{provider} does not offer them",
                param=name,
                code="unsupported_parameter",
            )


#: Every member any content part may have, and the modelled message members, refusing any other:
#: one strict decode (C speed) tells whether a request holds unknown members at all, so the common
#: request pays no Python-level scan.
_PartMembers = msgspec.defstruct(
    "_PartMembers",
    [(name, Any, None) for name in set().union(*PART_FIELDS.values())],
    forbid_unknown_fields=True,
)
_MessageMembers = msgspec.defstruct(
    "_MessageMembers",
    [
        (name, str | list[_PartMembers] | None, None) if name == "content" else (name, Any, None)
        for name in sorted(MESSAGE_FIELDS)
    ],
    forbid_unknown_fields=True,
)
_known_members_decoder = msgspec.json.Decoder(list[_MessageMembers])


def keep_message_extras(request: ChatRequest, raw_messages: msgspec.Raw) -> None:
    """Record the members of each message (and content part) that Junction does not model."""
    try:
        _known_members_decoder.decode(raw_messages)
        return
    except msgspec.ValidationError:
        pass  # some member is unknown (or malformed, which the typed decode already refused): look closer
    for message, raw in zip(request.messages, _raw_items_decoder.decode(raw_messages), strict=False):
        if len(raw) > len(MESSAGE_FIELDS & raw.keys()):
            message.extra_fields = {
                k: _any_decoder.decode(v) for k, v in raw.items() if k not in MESSAGE_FIELDS
            }
        content = raw.get("content")
        if content is None or not bytes(content).lstrip().startswith(b"["):
            continue
        parts = _raw_items_decoder.decode(content)
        extras: list[dict[str, Any] | None] = []
        for part in parts:
            known = PART_FIELDS.get(_any_decoder.decode(part["type"])) if "type" in part else None
            unknown = {
                k: _any_decoder.decode(v) for k, v in part.items() if known is not None and k not in known
            }
            extras.append(unknown or None)
        if any(extras):
            message.part_extra_fields = extras


def outgoing_message(message: Message) -> Message | msgspec.Raw:
    stripped = msgspec.structs.replace(
        message, reasoning=None, provider_metadata=None, extra_fields=None, part_extra_fields=None
    )
    if message.extra_fields is None and message.part_extra_fields is None:
        return stripped
    encoded = msgspec.to_builtins(stripped)
    for name, value in (message.extra_fields or {}).items():
        encoded.setdefault(name, value)
    parts = encoded.get("content")
    if isinstance(parts, list) and message.part_extra_fields is not None:
        for part, extra in zip(parts, message.part_extra_fields, strict=False):
            for name, value in (extra or {}).items():
                part.setdefault(name, value)
    return msgspec.Raw(_encoder.encode(encoded))
