"""Stream events: the tagged union every provider's stream is translated into.

A provider adapter yields these; an ingress turns them into its own wire format (OpenAI chunks,
Anthropic SSE events). ``choice`` is the index of the choice an event belongs to (``n > 1``).
"""

from __future__ import annotations

from typing import Any

import msgspec

from junction.schemas.chat import Usage


class _Event(msgspec.Struct, tag_field="type", omit_defaults=True, kw_only=True):
    pass


class StreamStart(_Event, tag="start"):
    """First event of every stream: the identity of the response."""

    id: str
    model: str
    created: int
    system_fingerprint: str | None = None
    #: The prompt's usage when the provider reports it up front (Anthropic's ``message_start``,
    #: Gemini's first chunk); Anthropic clients read input tokens from ``message_start``.
    usage: Usage | None = None


class TextDelta(_Event, tag="text_delta"):
    text: str
    choice: int = 0


class RefusalDelta(_Event, tag="refusal_delta"):
    text: str
    choice: int = 0


class ReasoningDelta(_Event, tag="reasoning_delta"):
    """Reasoning ("thinking") text; ``provider_metadata`` carries opaque signatures unchanged."""

    text: str = ""
    choice: int = 0
    provider_metadata: dict[str, Any] | None = None


class ToolCallDelta(_Event, tag="tool_call_delta"):
    """A piece of a tool call. ``id`` and ``name`` come with the first piece of call ``index``;
    ``arguments`` is a fragment of the JSON arguments text, to be concatenated."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    choice: int = 0


class Finish(_Event, tag="finish"):
    reason: str
    choice: int = 0
    #: The stop sequence that ended the choice, when the provider names it (Anthropic does).
    stop_sequence: str | None = None


class UsageReport(_Event, tag="usage"):
    usage: Usage


class StreamDone(_Event, tag="done"):
    """The upstream stream ended normally."""


class ToolActivity(_Event, tag="tool_activity"):
    """The gateway's tool loop ran a server-side tool between two model calls (see
    :mod:`junction.agents`). Not the model's output: the OpenAI ingress writes it as an SSE comment,
    which SDKs ignore; other formats leave it out."""

    round: int
    name: str
    call_id: str
    #: ``running`` when the tool starts, then ``done`` or ``failed``; ``skipped`` (error
    #: ``max_tool_rounds``) for a call the round limit left undone.
    status: str
    latency_ms: float | None = None
    error: str | None = None


class KeepAlive(_Event, tag="keep_alive"):
    """Nothing to say yet (a slow tool runs); ingresses send a keep-alive the clients ignore."""


StreamEvent = (StreamStart | TextDelta | RefusalDelta | ReasoningDelta | ToolCallDelta | Finish | UsageReport
               | StreamDone | ToolActivity | KeepAlive)
