"""OpenRouter: OpenAI Chat Completions in front of many upstreams.

- Attribution: ``site_url`` and ``app_name`` become the ``HTTP-Referer`` and ``X-Title`` headers
  OpenRouter uses to credit an app in its rankings (both optional).
- OpenRouter's own request fields (``provider`` routing preferences, ``models`` fallbacks,
  ``transforms``, ``reasoning``...) are not modelled by Junction and reach OpenRouter verbatim as
  extra fields. Model ids keep their vendor prefix: ``openrouter/anthropic/claude-sonnet-4.5``.
- ``reasoning_details`` (the upstream's signed or encrypted reasoning: Claude's thinking signatures,
  Gemini's thought signatures) ride in ``provider_metadata["openrouter"]`` and go back on the
  assistant turn, which OpenRouter requires to continue a tool-calling conversation. A stream's
  pieces are joined here (by their ``index``) and reported once, before the choice's finish.
- Everything else — SSE comments while it routes, ``error`` chunks mid-stream, ``reasoning`` deltas,
  usage with cached and reasoning tokens — is what the OpenAI format reader already handles.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from junction.formats.openai import ChunkReader
from junction.plugins import ProviderConfig, UpstreamTarget
from junction.providers.openai.adapter import OpenAIAdapter
from junction.schemas.chat import ChatRequest, ChatResponse, Message
from junction.schemas.stream import Finish, ReasoningDelta, StreamEvent

METADATA_KEY = "openrouter"
DETAILS = "reasoning_details"
#: The members of a reasoning detail whose streamed pieces are concatenated.
_JOINED = ("text", "summary", "data")


class OpenRouterConfig(ProviderConfig):
    base_url: str = "https://openrouter.ai/api/v1"
    #: Sent as ``HTTP-Referer``: the URL of the app, for OpenRouter's attribution.
    site_url: str | None = None
    #: Sent as ``X-Title``: the app's name, for OpenRouter's attribution.
    app_name: str | None = None


class _Details(msgspec.Struct):
    reasoning_details: list[dict[str, Any]] | None = None


class _DetailsChoice(msgspec.Struct):
    index: int = 0
    message: _Details | None = None
    delta: _Details | None = None


class _DetailsBody(msgspec.Struct):
    """Only what OpenRouter adds to the OpenAI shapes, read after the OpenAI reader has run."""

    choices: list[_DetailsChoice] = []


class _AssistantTurn(Message):
    """An assistant message with its reasoning details back in OpenRouter's own member."""

    reasoning_details: list[Any] | None = None


_details_decoder = msgspec.json.Decoder(_DetailsBody)


def _details_of(message: Message) -> list[Any] | None:
    metadata = (message.provider_metadata or {}).get(METADATA_KEY)
    details = metadata.get(DETAILS) if isinstance(metadata, dict) else None
    return details if isinstance(details, list) and details else None


def _with_details(message: Message) -> Message:
    details = _details_of(message) if message.role == "assistant" else None
    if details is None:
        return message
    fields = {name: getattr(message, name) for name in message.__struct_fields__}
    return _AssistantTurn(**fields, reasoning_details=details)


def _merge(joined: list[dict[str, Any]], pieces: list[dict[str, Any]]) -> None:
    """Add streamed pieces to the details joined so far: same ``index``, same detail."""
    for piece in pieces:
        index = piece.get("index", len(joined))
        known = next((detail for detail in joined if detail.get("index", -1) == index), None)
        if known is None:
            joined.append(dict(piece))
            continue
        for key, value in piece.items():
            if key in _JOINED and isinstance(value, str):
                known[key] = (known.get(key) or "") + value
            elif value is not None:
                known[key] = value


class OpenRouterChunkReader(ChunkReader):
    __slots__ = ("_details",)

    def __init__(self, provider: str) -> None:
        super().__init__(provider)
        self._details: dict[int, list[dict[str, Any]]] = {}

    def read(self, data: str) -> list[StreamEvent]:
        events = super().read(data)
        if '"reasoning_details"' in data:  # a cheap check: most chunks have none
            for choice in _details_decoder.decode(data).choices:
                if choice.delta is not None and choice.delta.reasoning_details:
                    _merge(self._details.setdefault(choice.index, []), choice.delta.reasoning_details)
        if self._details:
            for i in range(len(events) - 1, -1, -1):
                event = events[i]
                if isinstance(event, Finish) and event.choice in self._details:
                    details = self._details.pop(event.choice)
                    events.insert(i, ReasoningDelta(choice=event.choice,
                                                    provider_metadata={METADATA_KEY: {DETAILS: details}}))
        return events


class OpenRouterAdapter(OpenAIAdapter):
    name: ClassVar[str] = "openrouter"

    def build_headers(self, api_key: str | None) -> dict[str, str]:
        headers = super().build_headers(api_key)
        config: OpenRouterConfig = self.config  # type: ignore[assignment]
        if config.site_url:
            headers["http-referer"] = config.site_url
        if config.app_name:
            headers["x-title"] = config.app_name
        return headers

    def prepare(self, request: ChatRequest, target: UpstreamTarget, *, stream: bool) -> bytes:
        if request.max_completion_tokens is not None and request.max_tokens is None:
            # OpenRouter documents the output limit as max_tokens only.
            request = msgspec.structs.replace(request, max_tokens=request.max_completion_tokens,
                                              max_completion_tokens=None)
        if any(_details_of(message) for message in request.messages):
            request = msgspec.structs.replace(request, messages=[_with_details(m) for m in request.messages])
        return super().prepare(request, target, stream=stream)

    def read_response(self, payload: bytes) -> ChatResponse:
        response = super().read_response(payload)
        if b'"reasoning_details"' in payload:
            extras = {choice.index: choice.message for choice in _details_decoder.decode(payload).choices}
            for choice in response.choices:
                found = extras.get(choice.index)
                if found is not None and found.reasoning_details:
                    metadata = dict(choice.message.provider_metadata or {})
                    metadata[METADATA_KEY] = {DETAILS: found.reasoning_details}
                    choice.message.provider_metadata = metadata
        return response

    def chunk_reader(self) -> ChunkReader:
        return OpenRouterChunkReader(self.name)
