"""Unified requests → Anthropic Messages requests (the ``anthropic`` provider's request side).

Choices made here (each is a difference between the two APIs):

- ``system``/``developer`` messages, wherever they are, become the top-level ``system``.
- Consecutive turns of one role are merged (Anthropic requires user/assistant alternation); tool
  messages become ``tool_result`` blocks at the head of a user turn.
- A conversation that opens with an assistant turn gets a minimal user turn in front, because
  Anthropic requires the first turn to be the user's.
- ``response_format`` json_schema/json_object is served by a forced tool whose input schema is
  the requested schema: it works on every Claude model, needs no beta header, and streams as
  ``input_json_delta`` pieces we relay as text. (Native ``output_config.format`` structured output
  is model-dependent; a client that wants it can send ``output_config`` as an extra field.)
- Anthropic-only settings (``thinking``, ``top_k``, ``service_tier``, ``output_config``...) come
  from ``provider_options["anthropic"]`` (or, as before it existed, from extra fields) and are sent
  exactly. ``reasoning_effort`` is the portable approximation: it becomes an extended-thinking
  budget only when those settings carry no reasoning control of Anthropic's own (``thinking`` or
  ``output_config.effort``), so an exact budget is never rounded to a tier.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import msgspec

from junction.errors import InvalidRequest
from junction.formats.anthropic.blocks import (
    assistant_blocks,
    system_blocks,
    tool_result_block,
    user_blocks,
    with_cache_control,
)
from junction.formats.anthropic.wire import (
    MessageParam,
    MessagesRequest,
    MetadataParam,
    TextBlock,
    ThinkingParam,
    ToolChoiceParam,
    ToolParam,
)
from junction.formats.json_body import option_fields, splice_fields
from junction.formats.openai_passthrough import refuse_openai_only
from junction.schemas.chat import ChatRequest, Message, NamedToolChoice

_encoder = msgspec.json.Encoder()
_thinking_decoder = msgspec.json.Decoder(ThinkingParam)

#: Anthropic-only request fields a client may send as extra fields (the OpenAI SDK's
#: ``extra_body``); they are relayed verbatim. Other unmodelled fields are OpenAI's and dropped.
PASSTHROUGH_FIELDS = frozenset({"thinking", "top_k", "output_config", "context_management", "container"})
#: Fields this encoder writes from unified ones: provider options may not replace them, or one
#: request would carry two answers to the same question.
_UNIFIED_FIELDS = frozenset({"model", "messages", "max_tokens", "system", "stop_sequences", "stream",
                             "temperature", "top_p", "tools", "tool_choice", "metadata"})
#: ``reasoning_effort`` → extended-thinking budget (tokens). "minimal"/"none" mean no thinking.
THINKING_BUDGETS = {"low": 1024, "medium": 4096, "high": 16384}
MIN_THINKING_BUDGET = 1024
#: Anthropic requires the first turn to be the user's; this stands in when it is not.
OPENING_USER_TURN = "(conversation continues)"
_EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}
_RESPONSE_TOOL_DESCRIPTION = "Give the final answer by calling this tool with it as the input."
_TOOL_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


@dataclass(slots=True)
class PreparedRequest:
    body: bytes
    #: Name of the forced tool standing in for a JSON ``response_format``; its input is the answer.
    response_tool: str | None


def _unsupported(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"{param}: {message}", param=param, code="unsupported_parameter")


def _check_parameters(request: ChatRequest) -> None:
    if request.n is not None and request.n > 1:
        raise _unsupported("n", "anthropic returns one choice per request")
    if request.logprobs:
        raise _unsupported("logprobs", "anthropic does not return log probabilities")
    if request.temperature is not None and not 0 <= request.temperature <= 1:
        raise _unsupported("temperature", "anthropic accepts values from 0 to 1")


def _check_sampling_while_thinking(request: ChatRequest, thinking: ThinkingParam | None) -> None:
    """Extended thinking takes temperature 1 only and top_p from 0.95 to 1: refused here, naming the
    parameter, rather than by the upstream after the call."""
    if thinking is None or thinking.type == "disabled":
        return
    if request.temperature is not None and request.temperature != 1:
        raise _unsupported("temperature", "anthropic accepts only 1 while thinking (reasoning_effort or "
                                          "thinking is set)")
    if request.top_p is not None and not 0.95 <= request.top_p <= 1:
        raise _unsupported("top_p", "anthropic accepts 0.95 to 1 while thinking (reasoning_effort or "
                                    "thinking is set)")


def _turns(messages: list[Message]) -> tuple[list[TextBlock], list[MessageParam]]:
    """System blocks and alternating turns: same-role neighbours merged, tool results first."""
    system: list[TextBlock] = []
    # Each turn: (role, tool_result blocks, other blocks); tool results must open a user turn.
    turns: list[tuple[str, list[Any], list[Any]]] = []
    for i, message in enumerate(messages):
        role = message.role
        results: list[Any] = []
        if role == "user":
            blocks = with_cache_control(user_blocks(message.content, f"messages[{i}].content"), message)
        elif role == "assistant":
            blocks = assistant_blocks(message, i)
        elif role == "tool":
            blocks, results = [], [tool_result_block(message, i)]
            role = "user"
        elif role in ("system", "developer"):
            system.extend(system_blocks(message, i))
            continue
        else:
            raise InvalidRequest(f"messages[{i}].role: {role!r} messages are not supported by anthropic; "
                                 "send tool messages", param=f"messages[{i}].role", code="invalid_value")
        if not blocks and not results:
            continue
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(results)
            turns[-1][2].extend(blocks)
        else:
            turns.append((role, results, blocks))
    if not turns:
        raise InvalidRequest("messages: anthropic needs at least one user or assistant message with "
                             "content besides system messages", param="messages", code="invalid_value")
    if turns[0][0] != "user":
        turns.insert(0, ("user", [], [TextBlock(text=OPENING_USER_TURN)]))
    params = []
    for role, results, blocks in turns:
        content = results + blocks
        if len(content) == 1 and isinstance(content[0], TextBlock) and content[0].cache_control is None:
            params.append(MessageParam(role=role, content=content[0].text))  # type: ignore[arg-type]
        else:
            params.append(MessageParam(role=role, content=content))  # type: ignore[arg-type]
    return system, params


def _tool_choice(request: ChatRequest) -> ToolChoiceParam | None:
    choice = request.tool_choice
    disable_parallel = True if request.parallel_tool_calls is False else None
    if choice is None:
        return ToolChoiceParam(type="auto", disable_parallel_tool_use=True) if disable_parallel else None
    if isinstance(choice, NamedToolChoice):
        return ToolChoiceParam(type="tool", name=choice.function.name,
                               disable_parallel_tool_use=disable_parallel)
    if choice == "auto":
        return ToolChoiceParam(type="auto", disable_parallel_tool_use=disable_parallel)
    if choice == "required":
        return ToolChoiceParam(type="any", disable_parallel_tool_use=disable_parallel)
    if choice == "none":
        return ToolChoiceParam(type="none")
    raise InvalidRequest(f"tool_choice: {choice!r} is not one of 'auto', 'none', 'required' or a named "
                         "function", param="tool_choice", code="invalid_value")


def _native_fields(request: ChatRequest) -> tuple[dict[str, msgspec.Raw], str]:
    """Anthropic-only fields to send verbatim: the passthrough extra fields, then
    ``provider_options["anthropic"]`` over them; and the prefix naming where ``thinking`` came from."""
    extras = request.extra_fields
    native = {name: raw for name, raw in extras.items() if name in PASSTHROUGH_FIELDS} if extras else {}
    options = option_fields(request.provider_options, "anthropic", _UNIFIED_FIELDS)
    native.update(options)
    return native, "provider_options.anthropic." if "thinking" in options else ""


class _Effort(msgspec.Struct):
    effort: Any = None


_effort_decoder = msgspec.json.Decoder(_Effort)


def _has_native_effort(native: dict[str, msgspec.Raw]) -> bool:
    raw = native.get("output_config")
    if raw is None:
        return False
    try:
        return _effort_decoder.decode(raw).effort is not None
    except msgspec.MsgspecError:  # not an object: the upstream names the problem
        return False


def _thinking(request: ChatRequest, native: dict[str, msgspec.Raw], where: str, max_tokens: int,
              explicit_limit: bool) -> tuple[ThinkingParam | None, int]:
    """The thinking config and the max_tokens to send with it (thinking counts towards it)."""
    exact = native.pop("thinking", None)
    if exact is not None:
        try:
            return _thinking_decoder.decode(exact), max_tokens
        except msgspec.MsgspecError as error:
            param = f"{where}thinking"
            raise InvalidRequest(f"{param}: {error}", param=param, code="invalid_value") from None
    if _has_native_effort(native):
        return None, max_tokens
    budget = THINKING_BUDGETS.get(request.reasoning_effort or "")
    if budget is None:
        return None, max_tokens
    if not explicit_limit:
        return ThinkingParam(type="enabled", budget_tokens=budget), max_tokens + budget
    budget = min(budget, max_tokens - 1)
    if budget < MIN_THINKING_BUDGET:
        raise InvalidRequest(f"max_tokens: must exceed {MIN_THINKING_BUDGET} when reasoning_effort is set "
                             "(anthropic's smallest thinking budget)", param="max_tokens",
                             code="invalid_value")
    return ThinkingParam(type="enabled", budget_tokens=budget), max_tokens


def _response_tool(request: ChatRequest) -> ToolParam | None:
    response_format = request.response_format
    if response_format is None or response_format.type == "text":
        return None
    spec = response_format.json_schema
    if response_format.type == "json_schema" and spec is not None:
        name = _TOOL_NAME_UNSAFE.sub("_", spec.name)[:64] or "json_response"
        return ToolParam(name=name, description=spec.description or _RESPONSE_TOOL_DESCRIPTION,
                         input_schema=spec.schema or {"type": "object"})
    return ToolParam(name="json_response", description=_RESPONSE_TOOL_DESCRIPTION,
                     input_schema={"type": "object"})


def encode_messages_request(request: ChatRequest, model: str, *, stream: bool,
                            default_max_tokens: int) -> PreparedRequest:
    """The upstream body for ``request`` (raises a 400 naming the field it cannot translate)."""
    refuse_openai_only(request, "anthropic")
    _check_parameters(request)
    system, messages = _turns(request.messages)
    limit = request.output_token_limit()
    native, where = _native_fields(request)
    thinking, max_tokens = _thinking(request, native, where, limit or default_max_tokens, limit is not None)
    _check_sampling_while_thinking(request, thinking)
    tools = [ToolParam(name=tool.function.name, description=tool.function.description,
                       input_schema=tool.function.parameters or _EMPTY_SCHEMA)
             for tool in request.tools or ()]
    tool_choice = _tool_choice(request) if tools else None
    response_tool = _response_tool(request)
    if response_tool is not None:
        # Anthropic refuses forced tool use while thinking; with tools of the caller's own, the
        # model must call one of them or answer through the response tool.
        if thinking is not None and thinking.type != "disabled":
            tool_choice = ToolChoiceParam(type="auto")
        elif tools:
            tool_choice = ToolChoiceParam(type="any")
        else:
            tool_choice = ToolChoiceParam(type="tool", name=response_tool.name)
        tools.append(response_tool)
    stop = [request.stop] if isinstance(request.stop, str) else request.stop
    outgoing = MessagesRequest(
        model=model,
        messages=messages,
        max_tokens=max_tokens,
        system=(system[0].text if len(system) == 1 and system[0].cache_control is None else system) or None,
        stop_sequences=stop or None,
        stream=True if stream else None,
        temperature=request.temperature,
        top_p=request.top_p,
        tools=tools or None,
        tool_choice=tool_choice,
        thinking=thinking,
        metadata=MetadataParam(user_id=request.user) if request.user else None,
    )
    body = splice_fields(_encoder.encode(outgoing), native)
    return PreparedRequest(body, response_tool.name if response_tool else None)

