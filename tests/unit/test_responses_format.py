"""The Responses wire format ⇄ the unified model, in process (the HTTP behaviour is in
tests/integration/test_responses.py)."""

from __future__ import annotations

import json

import pytest

from junction.errors import InvalidRequest
from junction.formats.responses.request import (
    decode_responses_request,
    items_to_messages,
    normalize_items,
    seal_metadata,
)
from junction.formats.responses.stream import ResponseStreamWriter
from junction.schemas.chat import Usage
from junction.schemas.stream import Finish, ReasoningDelta, StreamStart, TextDelta, ToolCallDelta, UsageReport


def _request(**fields: object) -> bytes:
    return json.dumps({"model": "openai/gpt-4o", **fields}).encode()


def test_a_run_of_assistant_items_is_one_turn_with_its_metadata() -> None:
    metadata = {"gemini": {"thought_signatures": {"call_1": "sig1"}}}
    request = decode_responses_request(
        _request(
            input=[
                {"role": "user", "content": "Weather and time?"},
                {
                    "type": "reasoning",
                    "id": "rs_1",
                    "summary": [{"type": "summary_text", "text": "Two calls."}],
                    "encrypted_content": seal_metadata(metadata),
                },
                {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{}"},
                {"type": "function_call", "call_id": "call_2", "name": "time", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
                {"type": "function_call_output", "call_id": "call_2", "output": "noon"},
            ]
        )
    )
    messages = items_to_messages(normalize_items(request))
    assert [m.role for m in messages] == ["user", "assistant", "tool", "tool"]
    turn = messages[1]
    assert [c.id for c in turn.tool_calls or ()] == ["call_1", "call_2"]
    assert turn.reasoning == "Two calls." and turn.provider_metadata == metadata
    assert messages[0].content == "Weather and time?"


def test_foreign_encrypted_content_is_dropped_and_a_forged_one_refused() -> None:
    foreign = decode_responses_request(
        _request(
            input=[
                {
                    "type": "reasoning",
                    "id": "rs_1",
                    "summary": [],
                    "encrypted_content": "gAAAAB-openai-sealed",
                },
                {"role": "assistant", "content": "hi"},
            ]
        )
    )
    assert items_to_messages(normalize_items(foreign))[0].provider_metadata is None
    forged = decode_responses_request(
        _request(
            input=[
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "jn1:%%%not-base64"}
            ]
        )
    )
    with pytest.raises(InvalidRequest) as raised:
        normalize_items(forged)
    assert raised.value.param == "input[0].encrypted_content"


def test_the_stream_opens_and_closes_each_item_in_order() -> None:
    request = decode_responses_request(_request(input="go", stream=True))
    writer = ResponseStreamWriter(request, "resp_1", 0)
    events = [
        StreamStart(id="x", model="m", created=0),
        ReasoningDelta(text="hmm"),
        TextDelta(text="Hi"),
        ToolCallDelta(index=0, id="call_1", name="f", arguments='{"a"'),
        ToolCallDelta(index=0, arguments=":1}"),
        ReasoningDelta(provider_metadata={"anthropic": {"signature": "s"}}),
        Finish(reason="tool_calls"),
        UsageReport(usage=Usage(prompt_tokens=3, completion_tokens=4, total_tokens=7)),
    ]
    out = b"".join(writer.write(event) or b"" for event in events) + writer.close_items()
    response, message = writer.result()
    out += writer.completed(response)
    frames = [json.loads(line[5:]) for line in out.decode().splitlines() if line.startswith("data:")]
    kinds = [frame["type"] for frame in frames]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [frame["sequence_number"] for frame in frames] == list(range(len(frames)))
    assert [type(item).__name__ for item in response.output] == [
        "ReasoningItem",
        "MessageItem",
        "FunctionCallItem",
    ]
    # The signature came after the reasoning item closed: the final item carries it.
    assert response.output[0].encrypted_content == seal_metadata({"anthropic": {"signature": "s"}})
    assert message.tool_calls is not None and message.tool_calls[0].function.arguments == '{"a":1}'
    assert response.usage.total_tokens == 7 and response.status == "completed"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"input": [{"role": "assistant", "content": [1]}]}, "input[0].content[0]"),
        ({"input": [{"role": "assistant", "content": [{"type": "output_text"}]}]}, "input[0].content[0].text"),
        ({"input": [{"type": "reasoning", "summary": [1]}]}, "input[0].summary[0]"),
        ({"input": [{"role": "user", "content": [1]}]}, "input[0].content[0]"),
        ({"input": [{"type": "function_call"}]}, "input[0].call_id"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
        ({"input": "hi", "tools": [{"type": "code_interpreter"}]}, "tools[0].type"),
        ({"input": "hi", "text": {"format": {"type": "json_schema"}}}, "text.format"),
        ({"input": "hi", "include": ["file_search_call.results"]}, "include[0]"),
        ({"input": "hi", "background": True}, "background"),
        ({}, "input"),
    ],
)
def test_malformed_requests_are_400s_naming_the_field(fields: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        request = decode_responses_request(_request(**fields))
        from junction.formats.responses.request import to_chat_request

        to_chat_request(request, items_to_messages(normalize_items(request)))
    assert raised.value.param == param
