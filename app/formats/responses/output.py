"""Unified answers → the Responses ``response`` object and its output items."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from junction.formats.responses.request import new_id, seal_metadata
from junction.formats.responses.wire import (
    FunctionCallItem,
    IncompleteDetails,
    InputTokensDetails,
    MessageItem,
    OutputContent,
    OutputItem,
    OutputText,
    OutputTokensDetails,
    ReasoningItem,
    ReasoningOut,
    Refusal,
    Response,
    ResponsesRequest,
    ResponseUsage,
    SummaryText,
    empty_usage,
)
from junction.schemas.chat import ChatResponse, Message, Usage

#: Chat finish reasons that leave a response ``incomplete``, and the reason it reports.
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def response_usage(usage: Usage | None) -> ResponseUsage | None:
    if usage is None:
        return None
    prompt = usage.prompt_tokens_details
    return ResponseUsage(
        input_tokens=usage.prompt_tokens,
        input_tokens_details=InputTokensDetails(
            cached_tokens=usage.cached_tokens,
            cache_write_tokens=(prompt.cache_creation_tokens or 0) if prompt else 0,
        ),
        output_tokens=usage.completion_tokens,
        output_tokens_details=OutputTokensDetails(reasoning_tokens=usage.reasoning_tokens),
        total_tokens=usage.total_tokens,
    )


def output_items(message: Message) -> list[OutputItem]:
    """A unified assistant message as output items: reasoning, then the message, then calls."""
    items: list[OutputItem] = []
    if message.reasoning or message.provider_metadata:
        summary = [SummaryText(text=message.reasoning)] if message.reasoning else []
        items.append(
            ReasoningItem(
                id=new_id("rs"), summary=summary, encrypted_content=seal_metadata(message.provider_metadata)
            )
        )
    content: list[OutputContent] = []
    text = message.text()
    if text:
        content.append(OutputText(text=text))
    if message.refusal:
        content.append(Refusal(refusal=message.refusal))
    if content or not message.tool_calls:
        items.append(MessageItem(id=new_id("msg"), status="completed", content=content))
    for call in message.tool_calls or ():
        items.append(
            FunctionCallItem(
                id=new_id("fc"),
                call_id=call.id,
                name=call.function.name,
                arguments=call.function.arguments,
                status="completed",
            )
        )
    return items


def output_text(items: list[OutputItem]) -> str:
    return "".join(
        part.text
        for item in items
        if isinstance(item, MessageItem)
        for part in item.content
        if isinstance(part, OutputText)
    )


def echo_tools(request: ResponsesRequest) -> list[dict[str, Any]]:
    """The request's function tools as the response echoes them (``strict`` is required there)."""
    return [
        {
            "type": "function",
            "name": tool.get("name"),
            "description": tool.get("description"),
            "parameters": tool.get("parameters"),
            "strict": tool.get("strict", True),
        }
        for tool in request.tools or ()
    ]


def shell(request: ResponsesRequest, response_id: str, model: str, created_at: int, status: str) -> Response:
    """The response object before any output: what ``response.created`` carries."""
    text_format: dict[str, Any] = {"type": "text"}
    if request.text is not None and request.text.format is not None:
        text_format = msgspec.to_builtins(request.text.format)
    text: dict[str, Any] = {"format": text_format}
    if request.text is not None and request.text.verbosity is not None:
        text["verbosity"] = request.text.verbosity
    reasoning = request.reasoning
    return Response(
        id=response_id,
        created_at=created_at,
        status=status,
        model=model,
        instructions=request.instructions,
        max_output_tokens=request.max_output_tokens,
        parallel_tool_calls=request.parallel_tool_calls if request.parallel_tool_calls is not None else True,
        previous_response_id=request.previous_response_id,
        reasoning=ReasoningOut(
            effort=reasoning.effort, summary=reasoning.summary or reasoning.generate_summary
        )
        if reasoning is not None
        else ReasoningOut(),
        store=request.store if request.store is not None else True,
        temperature=request.temperature,
        text=text,
        tool_choice=request.tool_choice if request.tool_choice is not None else "auto",
        tools=echo_tools(request),
        top_p=request.top_p,
        truncation=request.truncation or "disabled",
        user=request.user if request.user is not None else msgspec.UNSET,
        metadata=request.metadata or {},
        service_tier=request.service_tier,
    )


def finish(response: Response, items: list[OutputItem], usage: Usage | None, reason: str | None) -> Response:
    """``response`` completed (or incomplete, by ``reason``) with ``items`` and ``usage``."""
    incomplete = _INCOMPLETE.get(reason or "")
    response.output = items
    response.output_text = output_text(items)
    response.usage = response_usage(usage) or empty_usage()
    response.status = "incomplete" if incomplete else "completed"
    response.incomplete_details = IncompleteDetails(reason=incomplete) if incomplete else None
    response.completed_at = None if incomplete else int(time.time())
    return response


def from_chat_response(
    request: ResponsesRequest, response_id: str, chat: ChatResponse
) -> tuple[Response, Message]:
    """The Responses object for a JSON answer, and the assistant message to remember."""
    choice = chat.choices[0] if chat.choices else None
    message = choice.message if choice is not None else Message(role="assistant", content="")
    response = shell(request, response_id, chat.model, int(time.time()), "in_progress")
    return finish(
        response, output_items(message), chat.usage, choice.finish_reason if choice else None
    ), message
