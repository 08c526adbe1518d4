"""Groq: OpenAI Chat Completions with Groq's differences.

- Groq answers 400 to ``logprobs``, ``top_logprobs``, ``logit_bias`` and ``n`` other than 1; Junction
  refuses them itself, naming the parameter, before anything is sent.
- ``messages[].name`` is not supported either; it only labels a participant, so it is dropped.
- Streams report usage in ``x_groq.usage`` on the finish chunk (and, when asked with
  ``stream_options``, again in a trailing usage chunk): the trailing chunk wins, ``x_groq`` is the
  fallback, and usage is reported once.
- Groq has no embeddings endpoint, so this adapter is not an ``EmbeddingsAdapter``.
- HTTP 498 is Groq's own status for "flex tier capacity exceeded" (``service_tier: "flex"``): the
  request was fine, capacity was not, so it is a 503 overloaded error, which fallbacks retry on the
  next deployment, rather than the 400 any other 4xx would be.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import msgspec

from junction.errors import InvalidRequest, JunctionError, UpstreamOverloaded
from junction.formats.openai import ChunkReader, encode_chat_request
from junction.plugins import ProviderConfig, UpstreamTarget
from junction.providers.openai.adapter import OpenAIAdapter
from junction.schemas.chat import ChatRequest, Usage
from junction.schemas.stream import StreamDone, StreamEvent, UsageReport
from junction.upstream.http import error_for_status, upstream_error_message


class GroqConfig(ProviderConfig):
    base_url: str = "https://api.groq.com/openai/v1"


class _XGroq(msgspec.Struct):
    usage: Usage | None = None


class _GroqExtras(msgspec.Struct):
    x_groq: _XGroq | None = None


_extras_decoder = msgspec.json.Decoder(_GroqExtras)
_REFUSED = ("logprobs", "top_logprobs", "logit_bias")


class GroqChunkReader(ChunkReader):
    __slots__ = ("_usage_reported", "_groq_usage")

    def __init__(self, provider: str) -> None:
        super().__init__(provider)
        self._usage_reported = False
        self._groq_usage: Usage | None = None

    def read(self, data: str) -> list[StreamEvent]:
        events = super().read(data)
        if any(isinstance(event, UsageReport) for event in events):
            self._usage_reported = True
        if '"x_groq"' in data:  # a cheap check: only the finish chunk carries it
            extras = _extras_decoder.decode(data)
            if extras.x_groq is not None and extras.x_groq.usage is not None:
                self._groq_usage = extras.x_groq.usage
        if events and isinstance(events[-1], StreamDone) and not self._usage_reported and self._groq_usage:
            events.insert(len(events) - 1, UsageReport(usage=self._groq_usage))
            self._usage_reported = True
        return events


#: Groq's status for a flex-tier request refused for want of capacity.
FLEX_CAPACITY_EXCEEDED = 498


def map_groq_error(provider: str, status: int, body: bytes, headers: Mapping[str, str]) -> JunctionError:
    if status == FLEX_CAPACITY_EXCEEDED:
        message, code = upstream_error_message(body)
        return UpstreamOverloaded(f"{provider}: {message}", code=code or "capacity_exceeded")
    return error_for_status(provider, status, body, headers)


class GroqAdapter(OpenAIAdapter):
    name: ClassVar[str] = "groq"
    map_error = staticmethod(map_groq_error)

    def prepare(self, request: ChatRequest, target: UpstreamTarget, *, stream: bool) -> bytes:
        for field in _REFUSED:
            if getattr(request, field) not in (None, False):
                raise InvalidRequest(f"{field}: not supported by groq", param=field,
                                     code="unsupported_parameter")
        if request.n not in (None, 1):
            raise InvalidRequest("n: groq only supports n = 1", param="n", code="unsupported_parameter")
        if any(message.name is not None for message in request.messages):
            messages = [msgspec.structs.replace(message, name=None) for message in request.messages]
            request = msgspec.structs.replace(request, messages=messages)
        return encode_chat_request(request, target.model, stream=stream, provider=self.name)

    def chunk_reader(self) -> ChunkReader:
        return GroqChunkReader(self.name)
