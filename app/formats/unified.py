"""A whole answer in either unified form: one :class:`ChatResponse`, or the stream events that
carry the same answer — and the conversion between them.

A stored answer (the response cache) is replayed in whichever form the next caller asks for: a
JSON caller of an answer that was streamed gets the events assembled into a response, a
streaming caller of a JSON answer gets the response as events. Text, refusals, reasoning (with
its opaque provider metadata, e.g. Anthropic's signed thinking blocks), tool calls, the finish
reason and usage survive both ways.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from junction.schemas.chat import ChatResponse, Choice, FunctionCall, Message, ToolCall, Usage
from junction.schemas.stream import (
    Finish,
    ReasoningDelta,
    RefusalDelta,
    StreamDone,
    StreamEvent,
    StreamStart,
    TextDelta,
    ToolCallDelta,
    UsageReport,
)

#: The provider-metadata key of Anthropic's thinking blocks: a JSON answer keeps them as a list
#: (``thinking_blocks``), a stream as a signature (or redacted block) after each block's text.
_ANTHROPIC = "anthropic"


def response_events(response: ChatResponse) -> list[StreamEvent]:
    """The stream events of ``response``, as a provider would have streamed it."""
    events: list[StreamEvent] = [StreamStart(id=response.id, model=response.model, created=response.created,
                                             system_fingerprint=response.system_fingerprint)]
    for choice in response.choices:
        events.extend(_choice_events(choice))
    if response.usage is not None:
        events.append(UsageReport(usage=response.usage))
    events.append(StreamDone())
    return events


def _choice_events(choice: Choice) -> Iterable[StreamEvent]:
    index, message = choice.index, choice.message
    metadata = dict(message.provider_metadata or {})
    anthropic = dict(metadata.pop(_ANTHROPIC, None) or {})
    blocks = anthropic.pop("thinking_blocks", None)
    stop_sequence = anthropic.pop("stop_sequence", None)
    if blocks:
        for block in blocks:
            if block.get("type") == "redacted_thinking":
                yield ReasoningDelta(choice=index, provider_metadata={_ANTHROPIC: {"redacted_thinking": block["data"]}})
            else:
                yield ReasoningDelta(choice=index, text=block.get("thinking", ""))
                yield ReasoningDelta(choice=index, provider_metadata={_ANTHROPIC: {"signature": block.get("signature", "")}})
    elif message.reasoning:
        yield ReasoningDelta(choice=index, text=message.reasoning)
    if anthropic:
        metadata[_ANTHROPIC] = anthropic
    if metadata:
        yield ReasoningDelta(choice=index, provider_metadata=metadata)
    if message.refusal:
        yield RefusalDelta(choice=index, text=message.refusal)
    text = message.text()
    if text:
        yield TextDelta(choice=index, text=text)
    for position, call in enumerate(message.tool_calls or ()):
        yield ToolCallDelta(choice=index, index=position, id=call.id, name=call.function.name,
                            arguments=call.function.arguments)
    yield Finish(choice=index, reason=choice.finish_reason or "stop", stop_sequence=stop_sequence)


class ChoiceBuilder:
    """One choice's message, assembled from its stream events (text, tool calls, reasoning with
    the providers' opaque metadata, refusal, finish)."""

    __slots__ = ("blocks", "calls", "finish", "metadata", "reasoning", "refusal", "text", "thinking")

    def __init__(self) -> None:
        self.text: list[str] = []
        self.refusal: list[str] = []
        self.reasoning: list[str] = []
        self.calls: dict[int, list[Any]] = {}
        self.finish: Finish | None = None
        self.metadata: dict[str, Any] = {}
        self.blocks: list[dict[str, str]] = []
        self.thinking: list[str] = []  # the text of the Anthropic thinking block being read

    def add(self, event: StreamEvent) -> None:
        """Take one event of this choice (``StreamStart``, usage and done belong to no choice)."""
        if isinstance(event, TextDelta):
            self.text.append(event.text)
        elif isinstance(event, ToolCallDelta):
            call = self.calls.setdefault(event.index, [None, None, []])
            call[0] = call[0] or event.id
            call[1] = call[1] or event.name
            call[2].append(event.arguments)
        elif isinstance(event, ReasoningDelta):
            self.reasoned(event)
        elif isinstance(event, RefusalDelta):
            self.refusal.append(event.text)
        elif isinstance(event, Finish):
            self.finish = event

    def call_name(self, index: int) -> str | None:
        """The name of tool call ``index`` (known from its first piece)."""
        call = self.calls.get(index)
        return call[1] if call is not None else None

    def reasoned(self, event: ReasoningDelta) -> None:
        if event.text:
            self.reasoning.append(event.text)
            self.thinking.append(event.text)
        for provider, value in (event.provider_metadata or {}).items():
            own = value if provider == _ANTHROPIC and isinstance(value, dict) else None
            if own is not None and "signature" in own:
                self.blocks.append({"type": "thinking", "thinking": "".join(self.thinking),
                                    "signature": own["signature"]})
                self.thinking = []
            elif own is not None and "redacted_thinking" in own:
                self.blocks.append({"type": "redacted_thinking", "data": own["redacted_thinking"]})
            elif isinstance(value, dict) and isinstance(self.metadata.get(provider), dict):
                self.metadata[provider] = {**self.metadata[provider], **value}
            else:
                self.metadata[provider] = value

    def message(self) -> Message:
        metadata = dict(self.metadata)
        anthropic = dict(metadata.get(_ANTHROPIC) or {})
        if self.blocks:
            anthropic["thinking_blocks"] = self.blocks
        if self.finish is not None and self.finish.stop_sequence is not None:
            anthropic["stop_sequence"] = self.finish.stop_sequence
        if anthropic:
            metadata[_ANTHROPIC] = anthropic
        calls = [ToolCall(id=call[0] or "", function=FunctionCall(name=call[1] or "", arguments="".join(call[2])))
                 for _, call in sorted(self.calls.items())]
        text = "".join(self.text)
        return Message(role="assistant", content=text if text or not calls else None, tool_calls=calls or None,
                       refusal="".join(self.refusal) or None, reasoning="".join(self.reasoning) or None,
                       provider_metadata=metadata or None)


def events_response(events: Iterable[StreamEvent]) -> ChatResponse:
    """The JSON response the events of one complete stream make."""
    start: StreamStart | None = None
    usage: Usage | None = None
    choices: dict[int, ChoiceBuilder] = {}
    for event in events:
        if isinstance(event, StreamStart):
            start, usage = event, event.usage or usage
            continue
        if isinstance(event, UsageReport):
            usage = event.usage
            continue
        if isinstance(event, StreamDone):
            continue
        builder = choices.get(event.choice)  # type: ignore[union-attr]
        if builder is None:
            builder = choices[event.choice] = ChoiceBuilder()  # type: ignore[union-attr]
        builder.add(event)
    if start is None:
        raise ValueError("a stream's events start with StreamStart")
    return ChatResponse(
        id=start.id, created=start.created, model=start.model, system_fingerprint=start.system_fingerprint,
        usage=usage,
        choices=[Choice(index=index, message=builder.message(),
                        finish_reason=builder.finish.reason if builder.finish else None)
                 for index, builder in sorted(choices.items())])
