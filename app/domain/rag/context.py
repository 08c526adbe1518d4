"""A bridge's knowledge: the ``{{context}}`` of prompt mode, and the ``search_knowledge`` tool of
tool mode (the seam the server-side tool loop calls)."""

from __future__ import annotations

from typing import Any

import msgspec

from junction.errors import InvalidRequest
from junction.schemas.chat import Message

#: The prompt placeholder prompt mode fills, and the response header listing the chunk ids it used.
CONTEXT_VARIABLE = "context"
CONTEXT_HEADER = "x-junction-context-chunks"
TOOL_NAME = "search_knowledge"


def last_user_text(messages: list[Message]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            return message.text()
    return ""


def format_context(results: list[Any]) -> str:
    """Each chunk headed by its id in brackets, so the model can cite it (``[ch_…]``)."""
    return "\n\n".join(f"[{result.chunk_id}] {result.text}" for result in results)


def tool_definition(description: str = "Search the organisation's documents") -> dict[str, Any]:
    """The ``search_knowledge`` function tool, as an OpenAI ``tools`` entry."""
    return {"type": "function", "function": {
        "name": TOOL_NAME, "description": f"{description}; returns the most relevant passages with their ids.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string", "description": "what to look up"}},
                       "required": ["query"]}}}


class ToolArguments(msgspec.Struct):
    query: str


def tool_query(arguments: str) -> str:
    try:
        query = msgspec.json.decode(arguments, type=ToolArguments).query
    except msgspec.MsgspecError:
        raise InvalidRequest(f"{TOOL_NAME}: arguments must be {{\"query\": \"...\"}}", param="arguments",
                             code="invalid_tool_arguments") from None
    return query
