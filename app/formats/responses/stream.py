"""Unified stream events → the Responses SSE event sequence.

``response.created`` and ``response.in_progress`` open the stream; each output item is announced
with ``response.output_item.added``, filled by its deltas (``response.output_text.delta``,
``response.function_call_arguments.delta``, ``response.reasoning_summary_text.delta``) and closed
with its ``…done`` events and ``response.output_item.done``. The ingress stores the response and
then writes ``response.completed`` (or ``response.failed``). Every event has a ``sequence_number``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from junction.errors import JunctionError, UpstreamError
from junction.formats.responses.output import finish, shell
from junction.formats.responses.request import _merge, new_id, seal_metadata
from junction.formats.responses.wire import (
    FunctionCallItem,
    MessageItem,
    OutputItem,
    OutputText,
    ReasoningItem,
    Refusal,
    Response,
    ResponseError,
    ResponsesRequest,
    SummaryText,
)
from junction.schemas.chat import FunctionCall, Message, ToolCall, Usage
from junction.schemas.stream import (
    Finish,
    ReasoningDelta,
    RefusalDelta,
    StreamEvent,
    StreamStart,
    TextDelta,
    ToolCallDelta,
    UsageReport,
)

_encoder = msgspec.json.Encoder()

#: Error codes the OpenAPI document allows in ``response.error.code``.
_ERROR_CODES = {429: "rate_limit_exceeded", 400: "invalid_prompt"}


class _Call:
    __slots__ = ("arguments", "call_id", "index", "item_id", "name")

    def __init__(self, index: int, call_id: str, name: str) -> None:
        self.index, self.item_id, self.call_id, self.name = index, new_id("fc"), call_id, name
        self.arguments: list[str] = []


class ResponseStreamWriter:
    """One response's SSE events. ``write`` each unified event; at the end, ``close_items``, then
    (after storing) ``completed``; on a failure after the start, ``failed``."""

    def __init__(self, request: ResponsesRequest, response_id: str, created_at: int) -> None:
        self._request = request
        self._id = response_id
        self._created_at = created_at
        self._seq = 0
        self.response: Response | None = None
        self._items: list[OutputItem | None] = []
        self._open: str | None = None  # "message" | "reasoning" | None
        self._message_index = -1
        self._message_id = ""
        self._text: list[str] = []
        self._refusal: list[str] | None = None
        self._reasoning_index = -1
        self._reasoning_id = ""
        self._reasoning_text: list[str] = []
        self._all_reasoning: list[str] = []
        self._metadata: dict[str, Any] | None = None
        self._calls: dict[int, _Call] = {}
        self._open_calls: list[_Call] = []
        self._all_text: list[str] = []
        self._refusals: list[str] = []
        self.usage: Usage | None = None
        self.finish_reason: str | None = None

    # --- framing -------------------------------------------------------------------------------

    def _event(self, kind: str, **fields: Any) -> bytes:
        fields["type"] = kind
        fields["sequence_number"] = self._seq
        self._seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + _encoder.encode(fields) + b"\n\n"

    def _add_item(self, item: OutputItem) -> tuple[int, bytes]:
        index = len(self._items)
        self._items.append(None)
        return index, self._event("response.output_item.added", output_index=index, item=item)

    def _done_item(self, index: int, item: OutputItem) -> bytes:
        self._items[index] = item
        return self._event("response.output_item.done", output_index=index, item=item)

    # --- items ---------------------------------------------------------------------------------

    def _close_message(self) -> bytes:
        out = b""
        if self._refusal is not None:
            out += self._close_refusal()
        text = "".join(self._text)
        part = OutputText(text=text)
        common = {"item_id": self._message_id, "output_index": self._message_index, "content_index": 0}
        out += self._event("response.output_text.done", **common, text=text, logprobs=[])
        out += self._event("response.content_part.done", **common, part=part)
        content: list[Any] = [part, *([Refusal(refusal="".join(self._refusals))] if self._refusals else [])]
        out += self._done_item(
            self._message_index, MessageItem(id=self._message_id, status="completed", content=content)
        )
        self._open = None
        return out

    def _close_refusal(self) -> bytes:
        refusal = "".join(self._refusal or ())
        self._refusals.append(refusal)
        self._refusal = None
        common = {"item_id": self._message_id, "output_index": self._message_index, "content_index": 1}
        return self._event("response.refusal.done", **common, refusal=refusal) + self._event(
            "response.content_part.done", **common, part=Refusal(refusal=refusal)
        )

    def _close_reasoning(self) -> bytes:
        text = "".join(self._reasoning_text)
        common = {"item_id": self._reasoning_id, "output_index": self._reasoning_index, "summary_index": 0}
        out = self._event("response.reasoning_summary_text.done", **common, text=text)
        out += self._event("response.reasoning_summary_part.done", **common, part=SummaryText(text=text))
        item = ReasoningItem(
            id=self._reasoning_id,
            summary=[SummaryText(text=text)],
            encrypted_content=seal_metadata(self._metadata),
        )
        self._open = None
        return out + self._done_item(self._reasoning_index, item)

    def _close_open(self) -> bytes:
        if self._open == "message":
            return self._close_message()
        if self._open == "reasoning":
            return self._close_reasoning()
        return b""

    def _close_calls(self) -> bytes:
        out = b""
        for call in self._open_calls:
            arguments = "".join(call.arguments)
            out += self._event(
                "response.function_call_arguments.done",
                item_id=call.item_id,
                name=call.name,
                output_index=call.index,
                arguments=arguments,
            )
            out += self._done_item(
                call.index,
                FunctionCallItem(
                    id=call.item_id,
                    call_id=call.call_id,
                    name=call.name,
                    arguments=arguments,
                    status="completed",
                ),
            )
        self._open_calls.clear()
        return out

    def _ensure_message(self) -> bytes:
        if self._open == "message":
            return b""
        out = self._close_open()
        self._message_id = new_id("msg")
        self._text = []
        self._message_index, added = self._add_item(MessageItem(id=self._message_id, status="in_progress"))
        out += added + self._event(
            "response.content_part.added",
            item_id=self._message_id,
            output_index=self._message_index,
            content_index=0,
            part=OutputText(text=""),
        )
        self._open = "message"
        return out

    # --- events --------------------------------------------------------------------------------

    def write(self, event: StreamEvent) -> bytes | None:
        if isinstance(event, TextDelta):
            if event.choice:
                return None
            out = self._ensure_message()
            self._text.append(event.text)
            self._all_text.append(event.text)
            return out + self._event(
                "response.output_text.delta",
                item_id=self._message_id,
                output_index=self._message_index,
                content_index=0,
                delta=event.text,
                logprobs=[],
            )
        if isinstance(event, ToolCallDelta):
            return self._tool_call(event) if not event.choice else None
        if isinstance(event, ReasoningDelta):
            return self._reasoning(event) if not event.choice else None
        if isinstance(event, RefusalDelta):
            if event.choice:
                return None
            out = self._ensure_message()
            if self._refusal is None:
                self._refusal = []
                out += self._event(
                    "response.content_part.added",
                    item_id=self._message_id,
                    output_index=self._message_index,
                    content_index=1,
                    part=Refusal(refusal=""),
                )
            self._refusal.append(event.text)
            return out + self._event(
                "response.refusal.delta",
                item_id=self._message_id,
                output_index=self._message_index,
                content_index=1,
                delta=event.text,
            )
        if isinstance(event, StreamStart):
            self.response = shell(self._request, self._id, event.model, self._created_at, "in_progress")
            return self._event("response.created", response=self.response) + self._event(
                "response.in_progress", response=self.response
            )
        if isinstance(event, Finish):
            if not event.choice:
                self.finish_reason = event.reason
            return None
        if isinstance(event, UsageReport):
            self.usage = event.usage
        return None

    def _tool_call(self, event: ToolCallDelta) -> bytes:
        out = self._close_open()
        call = self._calls.get(event.index)
        if call is None:
            if event.id is None or event.name is None:
                raise UpstreamError(
                    "a tool-call piece arrived before its call started", code="upstream_protocol_error"
                )
            index = len(self._items)
            call = self._calls[event.index] = _Call(index, event.id, event.name)
            self._open_calls.append(call)
            _, added = self._add_item(
                FunctionCallItem(
                    id=call.item_id, call_id=call.call_id, name=call.name, arguments="", status="in_progress"
                )
            )
            out += added
        if event.arguments:
            call.arguments.append(event.arguments)
            out += self._event(
                "response.function_call_arguments.delta",
                item_id=call.item_id,
                output_index=call.index,
                delta=event.arguments,
            )
        return out

    def _reasoning(self, event: ReasoningDelta) -> bytes | None:
        self._metadata = _merge(self._metadata, event.provider_metadata)
        if not event.text:
            return None
        out = b""
        if self._open != "reasoning":
            out += self._close_open()
            self._reasoning_id = new_id("rs")
            self._reasoning_text = []
            self._reasoning_index, added = self._add_item(
                ReasoningItem(id=self._reasoning_id, status="in_progress")
            )
            out += added + self._event(
                "response.reasoning_summary_part.added",
                item_id=self._reasoning_id,
                output_index=self._reasoning_index,
                summary_index=0,
                part=SummaryText(text=""),
            )
            self._open = "reasoning"
        self._reasoning_text.append(event.text)
        self._all_reasoning.append(event.text)
        return out + self._event(
            "response.reasoning_summary_text.delta",
            item_id=self._reasoning_id,
            output_index=self._reasoning_index,
            summary_index=0,
            delta=event.text,
        )

    # --- the end -------------------------------------------------------------------------------

    def close_items(self) -> bytes:
        """Close every open item. Metadata that came with no reasoning text (signatures only) gets
        a reasoning item of its own, so it travels back with the output."""
        out = self._close_open() + self._close_calls()
        if self._metadata and not any(isinstance(item, ReasoningItem) for item in self._items):
            item = ReasoningItem(id=new_id("rs"), encrypted_content=seal_metadata(self._metadata))
            index, added = self._add_item(ReasoningItem(id=item.id, status="in_progress"))
            out += added + self._done_item(index, item)
        elif self._metadata:
            # Signatures may arrive after the reasoning item closed: the final items carry them.
            sealed = seal_metadata(self._metadata)
            for item in self._items:
                if isinstance(item, ReasoningItem):
                    item.encrypted_content = sealed
        return out

    def result(self) -> tuple[Response, Message]:
        """The final response object and the assistant message to remember."""
        items = [item for item in self._items if item is not None]
        if self.response is None:
            raise UpstreamError("the stream ended before it started", code="upstream_protocol_error")
        calls = [
            ToolCall(
                id=call.call_id, function=FunctionCall(name=call.name, arguments="".join(call.arguments))
            )
            for call in self._calls.values()
        ]
        text = "".join(self._all_text)
        message = Message(
            role="assistant",
            content=text if text or not calls else None,
            tool_calls=calls or None,
            refusal="".join(self._refusals) or None,
            reasoning="".join(self._all_reasoning) or None,
            provider_metadata=self._metadata,
        )
        return finish(self.response, items, self.usage, self.finish_reason), message

    def completed(self, response: Response) -> bytes:
        kind = "response.incomplete" if response.status == "incomplete" else "response.completed"
        return self._event(kind, response=response)

    def failed(self, error: Exception) -> bytes:
        """``response.failed`` after the start; before it, an ``error`` event."""
        if not isinstance(error, JunctionError):
            error = UpstreamError("the stream failed; the gateway log has the details")
        if self.response is None:
            return self._event(
                "error", code=error.code or error.error_type, message=error.message, param=error.param
            )
        response = self.response
        response.status = "failed"
        response.output = [item for item in self._items if item is not None]
        response.error = ResponseError(
            code=_ERROR_CODES.get(error.status, "server_error"), message=error.message
        )
        return self._event("response.failed", response=response)
