"""Gemini ``streamGenerateContent?alt=sse`` → unified stream events.

Each SSE event is a whole ``GenerateContentResponse`` holding the next piece: text arrives in
pieces, each function call arrives whole (several calls may come in one event or in several),
usage metadata grows as it goes and the last one counts. There is no ``[DONE]``: the stream ends.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict

from junction.errors import UpstreamError
from junction.formats.json_body import decode_upstream
from junction.providers.gemini.errors import error_from_status
from junction.providers.gemini.translate import (
    TEXT_SIGNATURE,
    encode_arguments,
    finish_reason,
    made_up_call_id,
    signatures_metadata,
    unified_usage,
)
from junction.providers.gemini.wire import GenerateContentResponse, UsageMetadata, response_decoder
from junction.schemas.stream import (
    Finish,
    ReasoningDelta,
    StreamDone,
    StreamEvent,
    StreamStart,
    TextDelta,
    ToolCallDelta,
    UsageReport,
)


class GeminiStreamReader:
    """State of one stream: whether it started, how many calls each candidate made, the thought
    signatures seen (sent with the candidate's finish), and the latest usage."""

    __slots__ = ("_model", "_started", "_response_id", "_calls", "_signatures", "_usage")

    def __init__(self, model: str) -> None:
        self._model = model
        self._started = False
        self._response_id: str | None = None
        self._calls: defaultdict[int, int] = defaultdict(int)
        self._signatures: defaultdict[int, dict[str, str]] = defaultdict(dict)
        self._usage: UsageMetadata | None = None

    @property
    def started(self) -> bool:
        return self._started

    def read(self, data: str) -> list[StreamEvent]:
        chunk = decode_upstream(response_decoder, data, "gemini", "a stream event")
        if chunk.error is not None:
            raise error_from_status(chunk.error.code or 500, chunk.error, None)
        events: list[StreamEvent] = []
        if not self._started:
            self._started = True
            self._response_id = chunk.response_id
            usage = unified_usage(chunk.usage_metadata) if chunk.usage_metadata is not None else None
            events.append(StreamStart(id=chunk.response_id or f"chatcmpl-{uuid.uuid4().hex}",
                                      model=chunk.model_version or self._model, created=int(time.time()),
                                      usage=usage))
        self._candidates(chunk, events)
        if not chunk.candidates and chunk.prompt_feedback and chunk.prompt_feedback.block_reason:
            events.append(Finish(reason="content_filter"))
        if chunk.usage_metadata is not None:
            self._usage = chunk.usage_metadata
        return events

    def _candidates(self, chunk: GenerateContentResponse, events: list[StreamEvent]) -> None:
        for candidate in chunk.candidates:
            choice = candidate.index
            signatures = self._signatures[choice]
            for part in candidate.content.parts if candidate.content else ():
                call = part.function_call
                if call is not None:
                    position = self._calls[choice]
                    self._calls[choice] += 1
                    call_id = call.id or made_up_call_id(self._response_id, choice, position, call.name)
                    events.append(ToolCallDelta(index=position, id=call_id, name=call.name,
                                                arguments=encode_arguments(call.args), choice=choice))
                    if part.thought_signature:
                        signatures[call_id] = part.thought_signature
                    continue
                if part.thought:
                    if part.text:
                        events.append(ReasoningDelta(text=part.text, choice=choice))
                elif part.text is not None:
                    if part.text:
                        events.append(TextDelta(text=part.text, choice=choice))
                    if part.thought_signature:
                        signatures[TEXT_SIGNATURE] = part.thought_signature
            if candidate.finish_reason:
                if signatures:
                    metadata = signatures_metadata(signatures)
                    events.append(ReasoningDelta(provider_metadata=metadata, choice=choice))
                reason = finish_reason(candidate.finish_reason, self._calls[choice] > 0)
                events.append(Finish(reason=reason or "stop", choice=choice))

    def close(self) -> list[StreamEvent]:
        """The events after the upstream's last byte."""
        if not self._started:
            raise UpstreamError("gemini ended the stream without sending a response",
                                code="upstream_protocol_error")
        tail: list[StreamEvent] = []
        if self._usage is not None:
            tail.append(UsageReport(usage=unified_usage(self._usage)))
        tail.append(StreamDone())
        return tail
