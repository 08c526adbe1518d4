"""The request checks the fake Anthropic API makes, after Anthropic's API reference.

:func:`request_problem` returns the message the real API would answer with a 400
``invalid_request_error``, or ``None`` for a request it would accept.
"""

from __future__ import annotations

import re
from typing import Any

TOP_LEVEL_FIELDS = {"model", "messages", "max_tokens", "system", "stop_sequences", "stream", "temperature",
                    "top_p", "top_k", "tools", "tool_choice", "thinking", "metadata", "service_tier",
                    "output_config", "container", "context_management", "mcp_servers"}
IMAGE_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}
USER_BLOCKS = {"text", "image", "document", "tool_result", "search_result"}
ASSISTANT_BLOCKS = {"text", "tool_use", "thinking", "redacted_thinking", "server_tool_use"}
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")


def _block_problem(block: Any, where: str, role: str) -> str | None:
    if not isinstance(block, dict) or "type" not in block:
        return f"{where}: Input should be a valid content block object with a `type`"
    kind = block["type"]
    if kind not in (USER_BLOCKS if role == "user" else ASSISTANT_BLOCKS):
        return f"{where}.type: `{kind}` blocks are not allowed in `{role}` messages"
    if kind == "text" and (not isinstance(block.get("text"), str) or not block["text"]):
        return f"{where}: text content blocks must be non-empty"
    if kind == "image":
        source = block.get("source") or {}
        if source.get("type") == "base64":
            if source.get("media_type") not in IMAGE_TYPES:
                return f"{where}.source.media_type: Input should be one of {sorted(IMAGE_TYPES)}"
            if not source.get("data"):
                return f"{where}.source.data: Field required"
        elif source.get("type") == "url":
            if not str(source.get("url", "")).startswith(("http://", "https://")):
                return f"{where}.source.url: Input should be a valid URL"
        else:
            return f"{where}.source.type: Input should be 'base64', 'url' or 'file'"
    if kind == "tool_use":
        if not block.get("id") or not block.get("name") or not isinstance(block.get("input"), dict):
            return f"{where}: tool_use blocks need `id`, `name` and an object `input`"
    if kind == "tool_result":
        if not block.get("tool_use_id"):
            return f"{where}.tool_use_id: Field required"
        content = block.get("content")
        if content is not None and not isinstance(content, (str, list)):
            return f"{where}.content: Input should be a valid string or list of content blocks"
    if kind == "thinking" and not block.get("signature"):
        return f"{where}.signature: Field required"
    if kind == "redacted_thinking" and not block.get("data"):
        return f"{where}.data: Field required"
    return None


def _messages_problem(messages: Any, thinking_enabled: bool) -> str | None:
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    pending_tool_uses: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role")
        if role not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        if i == 0 and role != "user":
            return "messages: first message must use the \"user\" role"
        if i > 0 and messages[i - 1].get("role") == role:
            return ("messages: roles must alternate between \"user\" and \"assistant\", but found "
                    f"multiple \"{role}\" roles in a row")
        content = message.get("content")
        if isinstance(content, str):
            if not content and not (role == "assistant" and i == len(messages) - 1):
                return f"messages.{i}: user messages must have non-empty content"
            blocks: list[Any] = []
        elif isinstance(content, list):
            if not content:
                return f"messages.{i}: all messages must have non-empty content"
            blocks = content
        else:
            return f"messages.{i}.content: Input should be a valid string or list"
        for j, block in enumerate(blocks):
            if (problem := _block_problem(block, f"messages.{i}.content.{j}", role)) is not None:
                return problem
        if role == "user":
            kinds = [b["type"] for b in blocks]
            results = [b["tool_use_id"] for b in blocks if b["type"] == "tool_result"]
            if "tool_result" in kinds and kinds.index("tool_result") > 0 and any(
                    k != "tool_result" for k in kinds[:kinds.index("tool_result")]):
                return f"messages.{i}: tool_result blocks must come first in the user message content"
            unknown = set(results) - pending_tool_uses
            if unknown:
                return (f"messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: "
                        f"{sorted(unknown)[0]}. Each `tool_result` block must have a corresponding "
                        "`tool_use` block in the previous message.")
            if pending_tool_uses - set(results):
                missing = sorted(pending_tool_uses - set(results))[0]
                return (f"messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks "
                        f"immediately after: {missing}")
            pending_tool_uses = set()
        else:
            pending_tool_uses = {b["id"] for b in blocks if b["type"] == "tool_use"}
            thinking_first = blocks and blocks[0]["type"] in ("thinking", "redacted_thinking")
            if thinking_enabled and pending_tool_uses and not thinking_first:
                return (f"messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
                        f"`{blocks[0]['type']}`. When `thinking` is enabled, a final `assistant` message "
                        "must start with a thinking block.")
    if pending_tool_uses:
        return "messages: the conversation ends with tool_use blocks that have no tool_result"
    return None


def _tools_problem(body: dict[str, Any]) -> str | None:
    tools = body.get("tools")
    names = set()
    for k, tool in enumerate(tools or ()):
        if not TOOL_NAME.match(str(tool.get("name", ""))):
            return f"tools.{k}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            return f"tools.{k}.input_schema.type: Input should be 'object'"
        names.add(tool["name"])
    choice = body.get("tool_choice")
    if choice is not None:
        if choice.get("type") not in ("auto", "any", "tool", "none"):
            return "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'"
        if choice["type"] == "tool" and choice.get("name") not in names:
            return f"tool_choice.name: tool `{choice.get('name')}` is not among the tools"
        if choice["type"] in ("any", "tool") and (body.get("thinking") or {}).get("type") == "enabled":
            return "Thinking may not be enabled when tool_choice forces tool use."
    return None


def request_problem(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "body: Input should be a valid dictionary"
    unknown = set(body) - TOP_LEVEL_FIELDS
    if unknown:
        return f"{sorted(unknown)[0]}: Extra inputs are not permitted"
    for required in ("model", "max_tokens", "messages"):
        if required not in body:
            return f"{required}: Field required"
    if not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1:
        return "max_tokens: Input should be greater than or equal to 1"
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        if not isinstance(system, list) or any(b.get("type") != "text" or not b.get("text") for b in system):
            return "system: Input should be a valid string or a list of non-empty text blocks"
    temperature = body.get("temperature")
    if temperature is not None and not 0 <= temperature <= 1:
        return "temperature: Input should be less than or equal to 1"
    stops = body.get("stop_sequences")
    if stops is not None and not (isinstance(stops, list) and all(isinstance(s, str) and s for s in stops)):
        return "stop_sequences: Input should be a list of non-empty strings"
    thinking = body.get("thinking") or {}
    if thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        if budget >= body["max_tokens"]:
            return "`max_tokens` must be greater than `thinking.budget_tokens`"
    if thinking.get("type") in ("enabled", "adaptive"):
        # The sampling rules of extended thinking.
        if temperature is not None and temperature != 1:
            return "`temperature` may only be set to 1 when thinking is enabled."
        if body.get("top_p") is not None and not 0.95 <= body["top_p"] <= 1:
            return "`top_p` must be between 0.95 and 1 when thinking is enabled."
        if body.get("top_k") is not None:
            return "`top_k` is not compatible with thinking."
    if (problem := _tools_problem(body)) is not None:
        return problem
    return _messages_problem(body["messages"], thinking.get("type") == "enabled")
