"""Translation between the unified model and Anthropic Messages, both directions, on realistic
multi-turn payloads (tool results, images, thinking signatures, cache tokens)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from junction.errors import (
    AuthenticationFailed,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    UpstreamError,
    UpstreamOverloaded,
)
from junction.formats.anthropic.client_request import decode_messages_request
from junction.formats.anthropic.client_response import MessageStreamWriter, encode_message_response
from junction.formats.anthropic.upstream_request import OPENING_USER_TURN, encode_messages_request
from junction.formats.anthropic.upstream_response import EventReader, decode_message_response, map_error
from junction.formats.openai import decode_chat_request
from junction.schemas.chat import ChatResponse, Usage
from junction.schemas.stream import (
    Finish,
    ReasoningDelta,
    StreamDone,
    StreamStart,
    TextDelta,
    ToolCallDelta,
    UsageReport,
)
from tests.fakes.sse import named_events

PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def to_anthropic(
    body: dict[str, Any], *, stream: bool = False, default_max_tokens: int = 4096
) -> dict[str, Any]:
    request = decode_chat_request(json.dumps(body).encode())
    prepared = encode_messages_request(
        request, "claude-sonnet-4-5", stream=stream, default_max_tokens=default_max_tokens
    )
    return json.loads(prepared.body)


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "anthropic/claude-sonnet-4-5", **fields}


# --- unified → Anthropic request --------------------------------------------------------------


def test_multi_turn_with_tools_images_and_system_prompts():
    sent = to_anthropic(
        chat(
            messages=[
                {"role": "system", "content": "You are a weather assistant."},
                {"role": "developer", "content": [{"type": "text", "text": "Answer in metric units."}]},
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "text",
                            "text": "What is in this picture, and the weather in Oslo and Bergen?",
                        },
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
                        {"type": "image_url", "image_url": {"url": "https://example.com/fjord.jpg"}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": "Let me check both cities.",
                    "tool_calls": [
                        {
                            "id": "toolu_01A",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                        },
                        {
                            "id": "toolu_01B",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Bergen"}'},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "toolu_01A", "content": '{"temp_c": 4}'},
                {
                    "role": "tool",
                    "tool_call_id": "toolu_01B",
                    "content": [{"type": "text", "text": '{"temp_c": 7}'}],
                },
                {"role": "user", "content": "Thanks! Which one is warmer?"},
                {"role": "user", "content": "And by how much?"},
            ],
            tools=[WEATHER_TOOL],
            stop="\n\nHuman:",
            temperature=0.2,
            top_p=0.9,
            user="user-42",
        )
    )
    assert sent["system"] == [
        {"type": "text", "text": "You are a weather assistant."},
        {"type": "text", "text": "Answer in metric units."},
    ]
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    first = sent["messages"][0]["content"]
    assert first[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
    }
    assert first[2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/fjord.jpg"}}
    assert sent["messages"][1]["content"] == [
        {"type": "text", "text": "Let me check both cities."},
        {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Oslo"}},
        {"type": "tool_use", "id": "toolu_01B", "name": "get_weather", "input": {"city": "Bergen"}},
    ]
    # Tool results open the merged user turn; the two user messages follow in order.
    assert sent["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_01A", "content": '{"temp_c": 4}'},
        {"type": "tool_result", "tool_use_id": "toolu_01B", "content": '{"temp_c": 7}'},
        {"type": "text", "text": "Thanks! Which one is warmer?"},
        {"type": "text", "text": "And by how much?"},
    ]
    assert sent["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "input_schema": WEATHER_TOOL["function"]["parameters"],
        }
    ]
    assert sent["stop_sequences"] == ["\n\nHuman:"]
    assert sent["max_tokens"] == 4096
    assert (sent["temperature"], sent["top_p"]) == (0.2, 0.9)
    assert sent["metadata"] == {"user_id": "user-42"}
    assert "tool_choice" not in sent and "stream" not in sent


def test_a_conversation_opening_with_the_assistant_gets_a_user_turn_first():
    sent = to_anthropic(
        chat(
            messages=[
                {"role": "assistant", "content": "Hi! How can I help?"},
                {"role": "user", "content": "Tell me a joke."},
            ]
        )
    )
    assert sent["messages"] == [
        {"role": "user", "content": OPENING_USER_TURN},
        {"role": "assistant", "content": "Hi! How can I help?"},
        {"role": "user", "content": "Tell me a joke."},
    ]


@pytest.mark.parametrize(
    ("tool_choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ],
)
def test_tool_choice(tool_choice, parallel, expected):
    body = chat(messages=[{"role": "user", "content": "Weather?"}], tools=[WEATHER_TOOL])
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    assert to_anthropic(body)["tool_choice"] == expected


PERSON = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def test_json_schema_is_a_forced_tool_and_its_answer_comes_back_as_text():
    body = chat(
        messages=[{"role": "user", "content": "Ada, as JSON"}],
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}},
    )
    request = decode_chat_request(json.dumps(body).encode())
    prepared = encode_messages_request(request, "claude-sonnet-4-5", stream=False, default_max_tokens=1024)
    sent = json.loads(prepared.body)
    assert sent["tools"] == [
        {"name": "person", "input_schema": PERSON, "description": sent["tools"][0]["description"]}
    ]
    assert sent["tool_choice"] == {"type": "tool", "name": "person"}
    answer = {
        "id": "msg_1",
        "model": "claude-sonnet-4-5",
        "stop_reason": "tool_use",
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "person", "input": {"name": "Ada"}}],
        "usage": {"input_tokens": 30, "output_tokens": 9},
    }
    response = decode_message_response(json.dumps(answer).encode(), "anthropic", prepared.response_tool)
    assert json.loads(response.choices[0].message.content) == {"name": "Ada"}
    assert response.choices[0].message.tool_calls is None
    assert response.choices[0].finish_reason == "stop"


def test_json_schema_alongside_own_tools_lets_the_model_pick_any_tool():
    sent = to_anthropic(
        chat(
            messages=[{"role": "user", "content": "Weather as JSON"}],
            tools=[WEATHER_TOOL],
            response_format={"type": "json_object"},
        )
    )
    assert [t["name"] for t in sent["tools"]] == ["get_weather", "json_response"]
    assert sent["tool_choice"] == {"type": "any"}


def test_reasoning_effort_becomes_a_thinking_budget_on_top_of_the_answer_budget():
    sent = to_anthropic(
        chat(
            messages=[{"role": "user", "content": "Prove it"}],
            reasoning_effort="medium",
            response_format={"type": "json_object"},
        ),
        default_max_tokens=2048,
    )
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert sent["max_tokens"] == 2048 + 4096
    # Anthropic refuses forced tool use while thinking.
    assert sent["tool_choice"] == {"type": "auto"}
    limited = to_anthropic(
        chat(
            messages=[{"role": "user", "content": "Prove it"}],
            reasoning_effort="high",
            max_completion_tokens=3000,
        )
    )
    assert limited["thinking"] == {"type": "enabled", "budget_tokens": 2999} and limited["max_tokens"] == 3000


def test_anthropic_only_extra_fields_are_relayed_and_openai_only_ones_dropped():
    sent = to_anthropic(
        chat(
            messages=[{"role": "user", "content": "hi"}],
            top_k=5,
            store=True,
            thinking={"type": "enabled", "budget_tokens": 2000},
            max_tokens=5000,
        )
    )
    assert sent["top_k"] == 5 and "store" not in sent
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2000}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 2}, "n"),
        ({"temperature": 1.5}, "temperature"),
        ({"logprobs": True}, "logprobs"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
                        ],
                    }
                ]
            },
            "messages[0].content[0]",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "ftp://example.com/a.png"}}],
                    }
                ]
            },
            "messages[0].content[0]",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "t1",
                                "type": "function",
                                "function": {"name": "f", "arguments": "{not json"},
                            }
                        ],
                    },
                ]
            },
            "messages[1].tool_calls[0].function.arguments",
        ),
        (
            {"messages": [{"role": "user", "content": "hi"}, {"role": "tool", "content": "42"}]},
            "messages[1].tool_call_id",
        ),
        ({"messages": [{"role": "system", "content": "only a system prompt"}]}, "messages"),
    ],
)
def test_what_anthropic_cannot_take_is_a_400_naming_the_field(fields, param):
    body = chat(messages=[{"role": "user", "content": "hi"}])
    body.update(fields)
    with pytest.raises(InvalidRequest) as raised:
        to_anthropic(body)
    assert raised.value.param == param
    assert raised.value.message.startswith(param)


def test_thinking_blocks_and_tool_error_flags_ride_in_provider_metadata():
    thinking_blocks = [
        {"type": "thinking", "thinking": "Oslo first.", "signature": "sig-A"},
        {"type": "redacted_thinking", "data": "EmwKAhgB..."},
    ]
    sent = to_anthropic(
        chat(
            messages=[
                {"role": "user", "content": "Weather in Oslo?"},
                {
                    "role": "assistant",
                    "content": None,
                    "reasoning": "Oslo first.",
                    "provider_metadata": {"anthropic": {"thinking_blocks": thinking_blocks}},
                    "tool_calls": [
                        {
                            "id": "toolu_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": ""},
                        }
                    ],
                },
                {
                    "role": "tool",
                    "tool_call_id": "toolu_1",
                    "content": "service down",
                    "provider_metadata": {"anthropic": {"is_error": True}},
                },
            ]
        )
    )
    assert sent["messages"][1]["content"] == [
        *thinking_blocks,
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}},
    ]
    assert sent["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "service down", "is_error": True}
    ]


def test_streamed_signature_form_and_unsigned_reasoning():
    sent = to_anthropic(
        chat(
            messages=[
                {"role": "user", "content": "Q1"},
                {
                    "role": "assistant",
                    "content": "A1",
                    "reasoning": "thought",
                    "provider_metadata": {"anthropic": {"signature": "sig-Z"}},
                },
                {"role": "user", "content": "Q2"},
                # Another provider's reasoning has no signature: Anthropic would refuse it, so it is left out.
                {"role": "assistant", "content": "A2", "reasoning": "unsigned thought"},
                {"role": "user", "content": "Q3"},
            ]
        )
    )
    assert sent["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "thought", "signature": "sig-Z"},
        {"type": "text", "text": "A1"},
    ]
    assert sent["messages"][3]["content"] == "A2"


# --- Anthropic response → unified -------------------------------------------------------------

RESPONSE = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [
        {"type": "thinking", "thinking": "The user wants Oslo.", "signature": "EqQBCkYIBxgCKkB=="},
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_01T1", "name": "get_weather", "input": {"city": "Oslo"}},
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 40,
        "output_tokens": 52,
        "cache_creation_input_tokens": 1000,
        "cache_read_input_tokens": 2000,
        "output_tokens_details": {"thinking_tokens": 20},
    },
}


def test_response_with_thinking_tool_use_and_cache_usage():
    response = decode_message_response(json.dumps(RESPONSE).encode(), "anthropic", None)
    [choice] = response.choices
    message = choice.message
    assert choice.finish_reason == "tool_calls"
    assert message.content == "Checking."
    assert message.reasoning == "The user wants Oslo."
    assert message.provider_metadata == {"anthropic": {"thinking_blocks": [RESPONSE["content"][0]]}}
    [call] = message.tool_calls
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == (
        "toolu_01T1",
        "get_weather",
        {"city": "Oslo"},
    )
    usage = response.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (3040, 52, 3092)
    assert usage.prompt_tokens_details.cached_tokens == 2000
    assert usage.prompt_tokens_details.cache_creation_tokens == 1000
    assert usage.completion_tokens_details.reasoning_tokens == 20


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
    ],
)
def test_stop_reasons(stop_reason, finish):
    body = {**RESPONSE, "stop_reason": stop_reason}
    assert (
        decode_message_response(json.dumps(body).encode(), "anthropic", None).choices[0].finish_reason
        == finish
    )


def sse_events(*events: dict[str, Any]) -> list[str]:
    return [json.dumps(event) for event in events]


def test_stream_events_become_unified_events():
    reader = EventReader("anthropic", None)
    data = sse_events(
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5",
                "content": [],
                "stop_reason": None,
                "usage": {"input_tokens": 10, "output_tokens": 1, "cache_read_input_tokens": 90},
            },
        },
        {"type": "ping"},
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
        },
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Hmm"}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "sig-1"},
        },
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "content_block_stop", "index": 1},
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": ""},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": '{"ci'},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": 'ty": "Oslo"}'},
        },
        {"type": "content_block_stop", "index": 2},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 30},
        },
        {"type": "message_stop"},
    )
    events = [event for line in data for event in reader.read(line)]
    start = events[0]
    assert start == StreamStart(id="msg_1", model="claude-sonnet-4-5", created=start.created, usage=start.usage)
    assert (start.usage.prompt_tokens, start.usage.cached_tokens) == (100, 90)  # message_start's usage
    assert events[1:-3] == [
        ReasoningDelta(text="Hmm"),
        ReasoningDelta(provider_metadata={"anthropic": {"signature": "sig-1"}}),
        TextDelta(text="Hi"),
        ToolCallDelta(index=0, id="toolu_9", name="get_weather"),
        ToolCallDelta(index=0, arguments='{"ci'),
        ToolCallDelta(index=0, arguments='ty": "Oslo"}'),
    ]
    assert events[-3] == Finish(reason="tool_calls")
    usage = events[-2].usage
    assert isinstance(events[-2], UsageReport)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (100, 30, 90)
    assert events[-1] == StreamDone()


@pytest.mark.parametrize(
    ("error_type", "error_class", "status"),
    [
        ("overloaded_error", UpstreamOverloaded, 503),
        ("api_error", UpstreamError, 502),
        ("rate_limit_error", RateLimited, 429),
    ],
)
def test_a_mid_stream_error_event_raises_the_matching_error(error_type, error_class, status):
    reader = EventReader("anthropic", None)
    with pytest.raises(error_class) as raised:
        reader.read(json.dumps({"type": "error", "error": {"type": error_type, "message": "Overloaded"}}))
    assert raised.value.status == status and "Overloaded" in raised.value.message


def error_body(error_type: str, message: str) -> bytes:
    return json.dumps(
        {"type": "error", "error": {"type": error_type, "message": message}, "request_id": "req_1"}
    ).encode()


@pytest.mark.parametrize(
    ("status", "error_type", "error_class", "client_status"),
    [
        (401, "authentication_error", AuthenticationFailed, 401),
        (403, "permission_error", PermissionDenied, 403),
        (404, "not_found_error", NotFound, 404),
        (413, "request_too_large", PayloadTooLarge, 413),
        (429, "rate_limit_error", RateLimited, 429),
        (500, "api_error", UpstreamError, 502),
        (529, "overloaded_error", UpstreamOverloaded, 503),
        (400, "invalid_request_error", InvalidRequest, 400),
    ],
)
def test_http_errors_map_by_status(status, error_type, error_class, client_status):
    error = map_error("anthropic", status, error_body(error_type, "nope"), {"retry-after": "13"})
    assert type(error) is error_class and error.status == client_status
    assert "nope" in error.message
    if status == 429:
        assert error.headers == {"Retry-After": "13"}


def test_context_too_long_is_a_400_with_a_clear_code():
    error = map_error(
        "anthropic",
        400,
        error_body("invalid_request_error", "prompt is too long: 215000 tokens > 200000 maximum"),
        {},
    )
    assert isinstance(error, InvalidRequest)
    assert error.code == "context_length_exceeded" and error.param == "messages"


# --- Anthropic request → unified (ingress) ----------------------------------------------------

ANTHROPIC_REQUEST = {
    "model": "openai/gpt-4o-mini",
    "max_tokens": 1024,
    "system": [
        {"type": "text", "text": "You are terse."},
        {"type": "text", "text": "Long reference text...", "cache_control": {"type": "ephemeral"}},
    ],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather where this photo was taken?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
                    "cache_control": {"type": "ephemeral", "ttl": "1h"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Looks like Oslo.", "signature": "sig-T"},
                {"type": "text", "text": "Checking Oslo."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "4°C"}],
                },
                {"type": "text", "text": "Warm enough?"},
            ],
        },
    ],
    "tools": [
        {
            "name": "get_weather",
            "description": "Weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ],
    "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
    "thinking": {"type": "enabled", "budget_tokens": 5000},
    "stop_sequences": ["END"],
    "temperature": 1,
    "metadata": {"user_id": "u-7"},
    "stream": True,
}


def test_anthropic_request_becomes_a_unified_request():
    request = decode_messages_request(json.dumps(ANTHROPIC_REQUEST).encode())
    assert request.model == "openai/gpt-4o-mini" and request.max_completion_tokens == 1024 and request.stream
    system, user, assistant, tool, user2 = request.messages
    assert system.role == "system" and [p.text for p in system.content] == [
        "You are terse.",
        "Long reference text...",
    ]
    assert system.provider_metadata == {"anthropic": {"cache_control": {"type": "ephemeral"}}}
    assert user.content[1].image_url.url == f"data:image/png;base64,{PIXEL}"
    assert assistant.content == "Checking Oslo." and assistant.reasoning == "Looks like Oslo."
    assert assistant.provider_metadata == {
        "anthropic": {"thinking_blocks": [ANTHROPIC_REQUEST["messages"][1]["content"][0]]}
    }
    assert json.loads(assistant.tool_calls[0].function.arguments) == {"city": "Oslo"}
    assert (tool.role, tool.tool_call_id, tool.content) == ("tool", "toolu_1", "4°C")
    assert (user2.role, user2.content) == ("user", "Warm enough?")
    assert request.tool_choice == "required" and request.parallel_tool_calls is False
    assert request.reasoning_effort == "medium"
    assert request.stop == ["END"] and request.user == "u-7"


def test_anthropic_request_survives_a_trip_through_the_unified_model():
    """What an Anthropic client sends reaches an Anthropic upstream with signatures, cache
    breakpoints and block order intact."""
    request = decode_messages_request(
        json.dumps({**ANTHROPIC_REQUEST, "thinking": None, "tool_choice": None}).encode()
    )
    sent = json.loads(
        encode_messages_request(request, "claude-sonnet-4-5", stream=True, default_max_tokens=4096).body
    )
    assert sent["system"] == ANTHROPIC_REQUEST["system"]
    assert sent["messages"] == [
        ANTHROPIC_REQUEST["messages"][0],
        ANTHROPIC_REQUEST["messages"][1],
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "4°C"},
                {"type": "text", "text": "Warm enough?"},
            ],
        },
    ]
    assert sent["max_tokens"] == 1024 and sent["stream"] is True


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
        (
            {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "video"}]}]},
            "messages[0].content[0].type",
        ),
        (
            {"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "hi"}]},
            "messages[0].role",
        ),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [{"type": "web_search_20250305", "name": "web_search"}],
            },
            "tools[0]",
        ),
    ],
)
def test_bad_anthropic_requests_are_400s_naming_the_field(body, param):
    with pytest.raises(InvalidRequest) as raised:
        decode_messages_request(json.dumps(body).encode())
    assert raised.value.param == param


# --- unified → Anthropic response and SSE (ingress) -------------------------------------------


def test_unified_response_as_an_anthropic_message():
    response = decode_message_response(json.dumps(RESPONSE).encode(), "anthropic", None)
    message = json.loads(encode_message_response(response))
    assert message["content"] == RESPONSE["content"][:3]
    assert message["stop_reason"] == "tool_use" and message["stop_sequence"] is None
    assert message["usage"] == {
        "input_tokens": 40,
        "output_tokens": 52,
        "cache_creation_input_tokens": 1000,
        "cache_read_input_tokens": 2000,
        "output_tokens_details": {"thinking_tokens": 20},
    }
    assert (message["type"], message["role"], message["id"]) == ("message", "assistant", RESPONSE["id"])


def test_openai_style_response_as_an_anthropic_message():
    response = msgspec.convert(
        {
            "id": "chatcmpl-1",
            "created": 1,
            "model": "gpt-4o-mini",
            "choices": [
                {"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": "Once"}}
            ],
            "usage": {
                "prompt_tokens": 12,
                "completion_tokens": 3,
                "total_tokens": 15,
                "prompt_tokens_details": {"cached_tokens": 8},
            },
        },
        ChatResponse,
    )
    message = json.loads(encode_message_response(response))
    assert message["content"] == [{"type": "text", "text": "Once"}]
    assert message["stop_reason"] == "max_tokens"
    assert message["usage"] == {"input_tokens": 4, "output_tokens": 3, "cache_read_input_tokens": 8}


def test_stream_writer_produces_anthropics_event_sequence():
    writer = MessageStreamWriter()
    unified = [
        StreamStart(id="chatcmpl-1", model="gpt-4o-mini", created=1),
        ReasoningDelta(text="Think"),
        ReasoningDelta(provider_metadata={"anthropic": {"signature": "sig"}}),
        TextDelta(text="Hel"),
        TextDelta(text="lo"),
        ToolCallDelta(index=0, id="call_1", name="get_weather"),
        ToolCallDelta(index=0, arguments='{"city":'),
        ToolCallDelta(index=1, id="call_2", name="get_time"),
        ToolCallDelta(index=1, arguments="{}"),
        ToolCallDelta(index=0, arguments='"Oslo"}'),
        Finish(reason="tool_calls"),
        UsageReport(usage=Usage(prompt_tokens=20, completion_tokens=9, total_tokens=29)),
        StreamDone(),
    ]
    events = named_events(b"".join(filter(None, (writer.write(e) for e in unified))))
    assert [name for name, _ in events] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(data["type"] == name for name, data in events)
    assert events[2][1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert events[4][1]["delta"] == {"type": "signature_delta", "signature": "sig"}
    assert events[10][1] == {
        "type": "content_block_start",
        "index": 2,
        "content_block": {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}},
    }
    # call_1's late argument piece goes to its own block, not the open one.
    assert events[15][1] == {
        "type": "content_block_delta",
        "index": 2,
        "delta": {"type": "input_json_delta", "partial_json": '"Oslo"}'},
    }
    assert events[-2][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"input_tokens": 20, "output_tokens": 9},
    }


def test_the_anthropic_sdk_accumulates_the_written_stream():
    from anthropic.lib.streaming._messages import accumulate_event

    writer = MessageStreamWriter()
    unified = [
        StreamStart(id="msg_x", model="m", created=1),
        ReasoningDelta(text="Because."),
        ReasoningDelta(provider_metadata={"anthropic": {"signature": "sig-9"}}),
        TextDelta(text="Yes."),
        ToolCallDelta(index=0, id="t1", name="f"),
        ToolCallDelta(index=0, arguments='{"a": 1}'),
        Finish(reason="tool_calls"),
        StreamDone(),
    ]
    snapshot = None
    for _, data in named_events(b"".join(filter(None, (writer.write(e) for e in unified)))):
        snapshot = accumulate_event(event=data, current_snapshot=snapshot, json_bufs={})
    thinking, text, tool = snapshot.content
    assert (thinking.thinking, thinking.signature) == ("Because.", "sig-9")
    assert text.text == "Yes."
    assert (tool.id, tool.name, tool.input) == ("t1", "f", {"a": 1})
    assert snapshot.stop_reason == "tool_use"


# --- provider_options: Anthropic-only settings, exact ----------------------------------------------


def test_anthropic_only_request_fields_become_provider_options():
    body = {"model": "m", "max_tokens": 8000, "messages": [{"role": "user", "content": "hi"}],
            "thinking": {"type": "enabled", "budget_tokens": 2000}, "top_k": 40, "service_tier": "auto",
            "output_config": {"effort": "high"}}
    request = decode_messages_request(json.dumps(body).encode())
    assert request.provider_options == {"anthropic": {
        "thinking": {"type": "enabled", "budget_tokens": 2000}, "top_k": 40, "service_tier": "auto",
        "output_config": {"effort": "high"}}}
    assert request.reasoning_effort == "high"  # the portable approximation, for other providers
    sent = json.loads(encode_messages_request(request, "claude", stream=False, default_max_tokens=1).body)
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2000} and sent["max_tokens"] == 8000
    assert (sent["top_k"], sent["service_tier"], sent["output_config"]) == (40, "auto", {"effort": "high"})
    plain = decode_messages_request(json.dumps({**body, "thinking": None, "top_k": None, "service_tier": None,
                                                "output_config": None}).encode())
    assert plain.provider_options is None and plain.reasoning_effort is None


def test_anthropic_effort_alone_does_not_turn_thinking_on():
    body = {"model": "m", "max_tokens": 800, "messages": [{"role": "user", "content": "hi"}],
            "output_config": {"effort": "low"}}
    request = decode_messages_request(json.dumps(body).encode())
    sent = json.loads(encode_messages_request(request, "claude", stream=False, default_max_tokens=1).body)
    assert "thinking" not in sent and sent["output_config"] == {"effort": "low"}


def test_provider_options_win_over_extra_fields_and_reasoning_effort():
    sent = to_anthropic(chat(messages=[{"role": "user", "content": "hi"}], max_tokens=9000,
                             reasoning_effort="high", top_k=3,
                             provider_options={"anthropic": {"thinking": {"type": "enabled",
                                                                          "budget_tokens": 1500},
                                                             "top_k": 7},
                                               "openai": {"store": True}}))
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1500} and sent["top_k"] == 7
    assert "store" not in sent and "provider_options" not in sent


@pytest.mark.parametrize("options, param", [
    ({"anthropic": {"messages": []}}, "provider_options.anthropic.messages"),
    ({"anthropic": {"thinking": {"type": "sometimes"}}}, "provider_options.anthropic.thinking"),
])
def test_bad_provider_options_are_refused_naming_them(options, param):
    with pytest.raises(InvalidRequest) as raised:
        to_anthropic(chat(messages=[{"role": "user", "content": "hi"}], provider_options=options))
    assert raised.value.param == param


def test_openai_encoder_never_sends_provider_options():
    from junction.formats.openai import encode_chat_request

    request = decode_chat_request(json.dumps(chat(messages=[{"role": "user", "content": "hi"}],
                                                  provider_options={"anthropic": {"top_k": 4}})).encode())
    assert request.provider_options == {"anthropic": {"top_k": 4}} and request.extra_fields is None
    assert "provider_options" not in json.loads(encode_chat_request(request, "gpt", stream=False))


def test_anthropic_only_fields_the_unified_model_lacks_all_reach_anthropic():
    """Nothing an Anthropic client sets is lost on the way to Anthropic: the thinking ``display``,
    ``context_management``, ``container`` and ``mcp_servers`` included."""
    native = {
        "thinking": {"type": "adaptive", "display": "summarized"},
        "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
        "container": "container_011",
        "mcp_servers": [{"type": "url", "url": "https://mcp.example.test/sse", "name": "example"}],
    }
    body = {"model": "m", "max_tokens": 800, "messages": [{"role": "user", "content": "hi"}], **native}
    request = decode_messages_request(json.dumps(body).encode())
    sent = json.loads(encode_messages_request(request, "claude", stream=False, default_max_tokens=1).body)
    assert {name: sent[name] for name in native} == native
