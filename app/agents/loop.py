"""The tool loop: call the model; when it calls server-side tools, run them (in parallel), append
their results and call it again — at most ``max_tool_rounds`` rounds of tools. When the model
still wants a server tool after them, its last answer is returned without those calls, with the
OpenAI finish reason for "cut off by a limit", ``length``, and the header
``x-junction-finish-reason: max_tool_rounds`` (a stream, whose headers left before, reports each
call left undone as a ``skipped`` tool activity instead).

Tools the client declared are the client's: a round whose calls include any ends the loop after
the server tools of that round ran, and the client receives its own calls only. Every round lands
in ``call.state[ToolTranscript]`` (the bridge chat route stores it in the thread), and the
usage of all rounds is summed into the answer and the call's outcome.

Streams: each round's text is streamed as it comes; the server tools' calls are not shown as tool
calls (the client could not answer them) but as :class:`~junction.schemas.stream.ToolActivity` events,
with :class:`~junction.schemas.stream.KeepAlive` events while a slow tool runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from junction.agents.http_tools import ToolResult
from junction.agents.toolbox import Toolbox
from junction.domain.threads.history import JUNCTION_NOTES
from junction.formats.unified import ChoiceBuilder
from junction.plugins.call import Call
from junction.schemas.chat import ChatResponse, Message, ToolCall, Usage
from junction.schemas.stream import (
    Finish,
    KeepAlive,
    StreamDone,
    StreamEvent,
    StreamStart,
    ToolActivity,
    ToolCallDelta,
    UsageReport,
)

#: Why an answer was cut off by ``max_tool_rounds`` (header ``x-junction-finish-reason``, tool activity).
MAX_TOOL_ROUNDS = "max_tool_rounds"
FINISH_HEADER = "x-junction-finish-reason"


@dataclass(slots=True)
class ToolTranscript:
    """What the rounds added to the conversation: assistant tool calls and tool results (each
    result's ``provider_metadata["junction"]`` says the latency and the error), and the final
    assistant message of a stream."""

    messages: list[Message] = field(default_factory=list)
    final: Message | None = None
    rounds: int = 0


def add_usage(total: Usage | None, more: Usage | None) -> Usage | None:
    if more is None:
        return total
    if total is None:
        return more
    return Usage(prompt_tokens=total.prompt_tokens + more.prompt_tokens,
                 completion_tokens=total.completion_tokens + more.completion_tokens,
                 total_tokens=total.total_tokens + more.total_tokens)


class ToolLoop:
    """Runs the rounds of a call that has a :class:`Toolbox` (see the module docstring)."""

    def __init__(self, *, keepalive_seconds: float) -> None:
        self._keepalive = keepalive_seconds

    # --- running tools ------------------------------------------------------------------------

    @staticmethod
    def _run_all(call: Call, toolbox: Toolbox, calls: list[ToolCall]) -> asyncio.Future[list[ToolResult]]:
        return asyncio.gather(*(toolbox.run(call, c.function.name, c.function.arguments) for c in calls))

    @staticmethod
    def _record(transcript: ToolTranscript, request_messages: list[Message], assistant: Message,
                calls: list[ToolCall], results: list[ToolResult]) -> list[Message]:
        """The round's messages: appended to the transcript (with what the thread keeps) and
        returned as the next request's additions (without it)."""
        sent = [Message(role="tool", tool_call_id=call.id, name=call.function.name, content=result.content)
                for call, result in zip(calls, results, strict=True)]
        transcript.messages.append(assistant)
        transcript.messages.extend(
            msgspec.structs.replace(message, provider_metadata={JUNCTION_NOTES: {
                "latency_ms": round(result.latency_ms, 3), "error": result.error}})
            for message, result in zip(sent, results, strict=True))
        transcript.rounds += 1
        return [*request_messages, msgspec.structs.replace(assistant, tool_calls=calls), *sent]

    # --- JSON -----------------------------------------------------------------------------------

    async def handle(self, call: Call, next: Callable[[Call], Awaitable[Any]], toolbox: Toolbox) -> Any:
        transcript = call.state[ToolTranscript] = ToolTranscript()
        request = toolbox.with_definitions(call.request)
        total: Usage | None = None
        while True:
            call.request = request
            reply: ChatResponse = await next(call)
            total = add_usage(total, reply.usage)
            if not reply.choices:
                break
            choice = reply.choices[0]
            calls = choice.message.tool_calls or []
            server = [c for c in calls if c.function.name in toolbox.tools]
            if not server:
                break
            client = [c for c in calls if c.function.name not in toolbox.tools]
            if transcript.rounds >= toolbox.max_rounds:
                choice.message = msgspec.structs.replace(choice.message, tool_calls=client or None)
                choice.finish_reason = "length"
                call.response_headers[FINISH_HEADER] = MAX_TOOL_ROUNDS
                break
            results = await self._run_all(call, toolbox, server)
            total = _with_tool_usage(total, results)
            messages = self._record(transcript, request.messages, choice.message, server, results)
            if client:  # the client answers its own calls; the server's ran and are in the thread
                choice.message = msgspec.structs.replace(choice.message, tool_calls=client)
                break
            request = msgspec.structs.replace(request, messages=messages)
        reply.usage = total
        call.succeeded(total)
        return reply

    # --- streams --------------------------------------------------------------------------------

    async def stream(self, call: Call, next: Callable[[Call], AsyncIterator[StreamEvent]],
                     toolbox: Toolbox) -> AsyncIterator[StreamEvent]:
        transcript = call.state[ToolTranscript] = ToolTranscript()
        request = toolbox.with_definitions(call.request)
        total: Usage | None = None
        started = False
        client_index: dict[int, int] = {}  # the upstream's tool-call index → the client's
        while True:
            call.request = request
            round_ = ChoiceBuilder()
            async for event in next(call):
                if isinstance(event, StreamStart):
                    if not started:
                        started = True
                        yield event
                elif isinstance(event, UsageReport):
                    total = add_usage(total, event.usage)
                elif isinstance(event, StreamDone):
                    pass
                elif getattr(event, "choice", 0) != 0:
                    yield event  # n > 1: the loop follows the first choice only
                elif isinstance(event, Finish):
                    round_.add(event)
                elif isinstance(event, ToolCallDelta):
                    round_.add(event)
                    if round_.call_name(event.index) not in toolbox.tools:
                        index = client_index.setdefault(event.index, len(client_index))
                        yield msgspec.structs.replace(event, index=index)
                else:
                    round_.add(event)  # type: ignore[arg-type]
                    yield event
            # The round's message keeps what the provider needs back next round (reasoning,
            # thinking signatures, Gemini thought signatures).
            assistant = round_.message()
            calls = assistant.tool_calls or []
            server = [c for c in calls if c.function.name in toolbox.tools]
            client = [c for c in calls if c.function.name not in toolbox.tools]
            if not server:
                transcript.final = assistant
                yield round_.finish or Finish(reason="tool_calls" if client else "stop")
                break
            if transcript.rounds >= toolbox.max_rounds:
                transcript.final = msgspec.structs.replace(assistant, tool_calls=client or None)
                for c in server:
                    yield ToolActivity(round=transcript.rounds + 1, name=c.function.name, call_id=c.id,
                                       status="skipped", error=MAX_TOOL_ROUNDS)
                yield Finish(reason="length")
                break
            number = transcript.rounds + 1
            for c in server:
                yield ToolActivity(round=number, name=c.function.name, call_id=c.id, status="running")
            pending = self._run_all(call, toolbox, server)
            while True:
                done, _ = await asyncio.wait({pending}, timeout=self._keepalive)
                if done:
                    break
                yield KeepAlive()
            results = pending.result()
            total = _with_tool_usage(total, results)
            for c, result in zip(server, results, strict=True):
                yield ToolActivity(round=number, name=c.function.name, call_id=c.id,
                                   status="failed" if result.error else "done",
                                   latency_ms=round(result.latency_ms, 3), error=result.error)
            messages = self._record(transcript, request.messages, assistant, server, results)
            if client:
                transcript.final = msgspec.structs.replace(assistant, tool_calls=client)
                yield Finish(reason="tool_calls")
                break
            request = msgspec.structs.replace(request, messages=messages)
        if total is not None:
            yield UsageReport(usage=total)
        call.succeeded(total)
        yield StreamDone()


def _with_tool_usage(total: Usage | None, results: list[ToolResult]) -> Usage | None:
    """A connected bridge's usage counts in its caller's too."""
    for result in results:
        total = add_usage(total, result.usage)
    return total
