"""The official ``openai`` SDK against ``/v1/chat/completions`` routed to ``anthropic/...``, with a
fake Anthropic API (real HTTP on loopback) that validates what Junction sends."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest

from junction.testing.conformance import collect_tool_calls
from tests.fakes.anthropic_upstream import anthropic_error
from tests.integration.anthropic_fixtures import (  # noqa: F401 (fixtures)
    ANTHROPIC_UPSTREAM_KEY,
    anthropic_gateway,
    fake_anthropic,
    fake_anthropic_server,
    openai_sdk,
)

MODEL = "anthropic/claude-sonnet-4-5"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def test_create_sends_a_valid_messages_request_and_reads_the_answer(openai_sdk, fake_anthropic):
    fake_anthropic.script(
        text="Paris.",
        input_tokens=30,
        cache_read_input_tokens=1200,
        cache_creation_input_tokens=300,
        output_tokens=4,
    )
    completion = openai_sdk.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of France?"},
        ],
    )
    assert completion.choices[0].message.content == "Paris."
    assert completion.choices[0].finish_reason == "stop"
    usage = completion.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (1530, 4, 1534)
    assert usage.prompt_tokens_details.cached_tokens == 1200
    assert usage.prompt_tokens_details.model_extra["cache_creation_tokens"] == 300
    sent = fake_anthropic.last
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == ANTHROPIC_UPSTREAM_KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers
    body = sent.json()
    assert body == {
        "model": "claude-sonnet-4-5",
        "system": "Be brief.",
        "max_tokens": 2048,
        "messages": [{"role": "user", "content": "Capital of France?"}],
    }


def test_alias_routes_to_anthropic(openai_sdk, fake_anthropic):
    completion = openai_sdk.chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "ping"}]
    )
    assert completion.choices[0].message.content == "echo: ping"


def test_stream_relays_every_piece_and_the_usage(openai_sdk, fake_anthropic):
    fake_anthropic.script(
        text="The quick brown fox jumps.",
        chunk_size=3,
        input_tokens=10,
        cache_read_input_tokens=50,
        output_tokens=8,
    )
    stream = openai_sdk.chat.completions.create(
        model=MODEL,
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Say it"}],
    )
    pieces, finishes, usages = [], [], []
    for chunk in stream:
        usages += [chunk.usage] if chunk.usage else []
        for choice in chunk.choices:
            pieces += [choice.delta.content] if choice.delta.content else []
            finishes += [choice.finish_reason] if choice.finish_reason else []
    assert "".join(pieces) == "The quick brown fox jumps."
    assert len(pieces) == 9
    assert finishes == ["stop"]
    [usage] = usages
    assert (usage.prompt_tokens, usage.completion_tokens) == (60, 8)
    assert usage.prompt_tokens_details.cached_tokens == 50
    assert fake_anthropic.last.json()["stream"] is True


def test_tool_call_and_result_round_trip(openai_sdk, fake_anthropic):
    fake_anthropic.script(
        text="Let me check.",
        tool_calls=[{"id": "toolu_01W", "name": "get_weather", "input": {"city": "Oslo"}}],
    )
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Oslo?"}]
    first = openai_sdk.chat.completions.create(
        model=MODEL,
        messages=messages,
        tools=[WEATHER_TOOL],
        tool_choice="required",
        parallel_tool_calls=False,
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    [call] = choice.message.tool_calls
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == (
        "toolu_01W",
        "get_weather",
        {"city": "Oslo"},
    )
    sent = fake_anthropic.last.json()
    assert sent["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert sent["tools"][0]["input_schema"] == WEATHER_TOOL["function"]["parameters"]

    fake_anthropic.script(text="4°C and clear.")
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 4}'},
        {"role": "user", "content": "Thanks"},
    ]
    second = openai_sdk.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].message.content == "4°C and clear."
    sent = fake_anthropic.last.json()["messages"]
    assert sent[1]["content"][1] == {
        "type": "tool_use",
        "id": "toolu_01W",
        "name": "get_weather",
        "input": {"city": "Oslo"},
    }
    assert sent[2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01W", "content": '{"temp_c": 4}'},
            {"type": "text", "text": "Thanks"},
        ],
    }


def test_streamed_tool_calls_arrive_in_many_pieces(openai_sdk, fake_anthropic):
    city = "Llanfairpwllgwyngyll"
    fake_anthropic.script(
        tool_calls=[
            {"name": "get_weather", "input": {"city": city}},
            {"name": "get_weather", "input": {"city": "Cardiff"}},
        ],
        json_chunk_size=4,
    )
    stream = openai_sdk.chat.completions.create(
        model=MODEL,
        stream=True,
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "Weather in Wales?"}],
    )
    calls, pieces, finishes = collect_tool_calls(stream)
    assert finishes == ["tool_calls"]
    assert sorted(calls) == [0, 1]
    assert json.loads(calls[0]["arguments"]) == {"city": city}
    assert json.loads(calls[1]["arguments"]) == {"city": "Cardiff"}
    assert calls[0]["id"] != calls[1]["id"] and all(c["name"] == "get_weather" for c in calls.values())
    assert pieces > 8


PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


@pytest.mark.parametrize("stream", [False, True])
def test_json_schema_output(openai_sdk, fake_anthropic, stream):
    fake_anthropic.script(text='{"name": "Ada", "age": 36}')
    arguments = dict(
        model=MODEL,
        messages=[{"role": "user", "content": "Ada Lovelace as JSON"}],
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}},
    )
    if stream:
        chunks = list(openai_sdk.chat.completions.create(stream=True, **arguments))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    else:
        completion = openai_sdk.chat.completions.create(**arguments)
        text, finish = completion.choices[0].message.content, [completion.choices[0].finish_reason]
    assert json.loads(text) == {"name": "Ada", "age": 36}
    assert finish == ["stop"]
    sent = fake_anthropic.last.json()
    assert sent["tool_choice"] == {"type": "tool", "name": "person"}
    assert sent["tools"][0]["input_schema"] == PERSON


def test_image_parts(openai_sdk, fake_anthropic):
    pixel = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
    openai_sdk.chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{pixel}"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/b.jpg"}},
                ],
            }
        ],
    )
    content = fake_anthropic.last.json()["messages"][0]["content"]
    assert content[1]["source"] == {"type": "base64", "media_type": "image/png", "data": pixel}
    assert content[2]["source"] == {"type": "url", "url": "https://example.com/b.jpg"}


def test_thinking_signature_round_trips_through_the_openai_format(openai_sdk, fake_anthropic):
    fake_anthropic.script(
        thinking="The user is in Oslo; call the tool.",
        signature="sig-round-trip==",
        tool_calls=[{"id": "toolu_T", "name": "get_weather", "input": {"city": "Oslo"}}],
    )
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather here? I am in Oslo."}]
    first = openai_sdk.chat.completions.create(
        model=MODEL, messages=messages, tools=[WEATHER_TOOL], reasoning_effort="low"
    )
    assert fake_anthropic.last.json()["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    message = first.choices[0].message
    assert message.model_extra["reasoning"] == "The user is in Oslo; call the tool."
    # The client sends the assistant message back as it got it; the fake refuses a thinking-enabled
    # tool turn whose assistant message does not start with the signed thinking block.
    fake_anthropic.script(text="It is 4°C.")
    messages += [
        message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": "toolu_T", "content": "4°C"},
    ]
    second = openai_sdk.chat.completions.create(
        model=MODEL, messages=messages, tools=[WEATHER_TOOL], reasoning_effort="low"
    )
    assert second.choices[0].message.content == "It is 4°C."
    assert fake_anthropic.last.json()["messages"][1]["content"][0] == {
        "type": "thinking",
        "thinking": "The user is in Oslo; call the tool.",
        "signature": "sig-round-trip==",
    }


def test_streamed_thinking_signature_round_trips(openai_sdk, fake_anthropic):
    fake_anthropic.script(
        thinking="Check the weather tool.",
        signature="sig-streamed==",
        tool_calls=[{"id": "toolu_S", "name": "get_weather", "input": {"city": "Oslo"}}],
    )
    stream = openai_sdk.chat.completions.create(
        model=MODEL,
        stream=True,
        tools=[WEATHER_TOOL],
        reasoning_effort="low",
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
    )
    reasoning, metadata, arguments = "", {}, ""
    for chunk in stream:
        for choice in chunk.choices:
            extra = choice.delta.model_extra or {}
            reasoning += extra.get("reasoning") or ""
            for key, value in (extra.get("provider_metadata") or {}).items():
                metadata.setdefault(key, {}).update(value)
            for call in choice.delta.tool_calls or ():
                arguments += call.function.arguments or ""
    assert reasoning == "Check the weather tool."
    assert metadata == {"anthropic": {"signature": "sig-streamed=="}}
    fake_anthropic.script(text="Done.")
    openai_sdk.chat.completions.create(
        model=MODEL,
        tools=[WEATHER_TOOL],
        reasoning_effort="low",
        messages=[
            {"role": "user", "content": "Weather in Oslo?"},
            {
                "role": "assistant",
                "reasoning": reasoning,
                "provider_metadata": metadata,
                "tool_calls": [
                    {
                        "id": "toolu_S",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_S", "content": "4°C"},
        ],
    )
    assert fake_anthropic.last.json()["messages"][1]["content"][0] == {
        "type": "thinking",
        "thinking": "Check the weather tool.",
        "signature": "sig-streamed==",
    }


def test_first_delta_arrives_before_the_upstream_finishes(openai_sdk, fake_anthropic):
    hold = asyncio.Event()
    fake_anthropic.script(text="First, then the rest.", chunk_size=6, hold=hold)
    stream = openai_sdk.chat.completions.create(
        model=MODEL, stream=True, messages=[{"role": "user", "content": "Go"}]
    )
    try:
        first = next(c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content)
        assert first == "First,"
        assert fake_anthropic.streams_completed == 0
    finally:
        fake_anthropic.set_event(hold)
    rest = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert first + rest == "First, then the rest."


def test_rate_limit_keeps_retry_after(openai_sdk, fake_anthropic):
    fake_anthropic.fail_next(
        429,
        anthropic_error(429, "Number of request tokens has exceeded your per-minute rate limit"),
        {"retry-after": "17"},
    )
    with pytest.raises(openai.RateLimitError) as raised:
        openai_sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert raised.value.response.headers["retry-after"] == "17"
    assert "per-minute rate limit" in raised.value.message


@pytest.mark.parametrize(
    ("status", "sdk_error", "client_status"),
    [
        (401, openai.AuthenticationError, 401),
        (403, openai.PermissionDeniedError, 403),
        (500, openai.InternalServerError, 502),
        (529, openai.InternalServerError, 503),
    ],
)
def test_upstream_errors(openai_sdk, fake_anthropic, status, sdk_error, client_status):
    fake_anthropic.fail_next(status, anthropic_error(status, f"upstream said {status}"))
    with pytest.raises(sdk_error) as raised:
        openai_sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert raised.value.status_code == client_status
    assert f"upstream said {status}" in raised.value.message


def test_context_too_long_is_a_bad_request_with_a_clear_code(openai_sdk, fake_anthropic):
    fake_anthropic.fail_next(400, anthropic_error(400, "prompt is too long: 208310 tokens > 200000 maximum"))
    with pytest.raises(openai.BadRequestError) as raised:
        openai_sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "long..."}])
    assert raised.value.code == "context_length_exceeded"
    assert "prompt is too long" in raised.value.message


def test_overloaded_mid_stream_reaches_the_client_as_an_error(openai_sdk, fake_anthropic):
    fake_anthropic.script(text="Partial answer that fails", error_midway=("overloaded_error", "Overloaded"))
    stream = openai_sdk.chat.completions.create(
        model=MODEL, stream=True, messages=[{"role": "user", "content": "hi"}]
    )
    with pytest.raises(openai.APIError) as raised:
        for _ in stream:
            pass
    assert "Overloaded" in str(raised.value)


def test_a_stream_cut_before_message_stop_reaches_the_client_as_an_error(openai_sdk, fake_anthropic):
    fake_anthropic.script(text="Partial answer that is cut", truncate=True)
    stream = openai_sdk.chat.completions.create(
        model=MODEL, stream=True, messages=[{"role": "user", "content": "hi"}]
    )
    with pytest.raises(openai.APIError) as raised:
        for _ in stream:
            pass
    assert "before it finished" in str(raised.value)


def test_what_anthropic_cannot_do_is_refused_before_calling_it(openai_sdk, fake_anthropic):
    with pytest.raises(openai.BadRequestError) as raised:
        openai_sdk.chat.completions.create(model=MODEL, n=2, messages=[{"role": "user", "content": "hi"}])
    assert raised.value.param == "n"
    assert fake_anthropic.requests == []


@pytest.mark.parametrize(("sampling", "param"), [({"temperature": 0.3}, "temperature"), ({"top_p": 0.5}, "top_p")])
def test_sampling_refused_while_thinking_is_refused_before_calling_it(openai_sdk, fake_anthropic, sampling, param):
    # reasoning_effort turns thinking on: Anthropic then takes temperature 1 only, top_p 0.95 to 1.
    with pytest.raises(openai.BadRequestError) as raised:
        openai_sdk.chat.completions.create(model=MODEL, reasoning_effort="low", max_tokens=4000, **sampling,
                                           messages=[{"role": "user", "content": "hi"}])
    assert raised.value.param == param
    assert fake_anthropic.requests == []
    openai_sdk.chat.completions.create(model=MODEL, reasoning_effort="low", max_tokens=4000, temperature=1,
                                       top_p=0.95, messages=[{"role": "user", "content": "hi"}])
    assert fake_anthropic.last.json()["thinking"]["type"] == "enabled"


def test_models_are_listed_from_the_models_endpoint(openai_sdk, fake_anthropic):
    ids = [model.id for model in openai_sdk.models.list()]
    assert {"anthropic/claude-sonnet-4-5", "anthropic/claude-haiku-4-5", "claude"} <= set(ids)


def test_provider_options_reach_anthropic_and_not_other_providers(openai_sdk, fake_anthropic, fake_openai):
    options = {"anthropic": {"thinking": {"type": "enabled", "budget_tokens": 3000}, "service_tier": "auto"},
               "gemini": {"safetySettings": []}}
    messages = [{"role": "user", "content": "Hi"}]
    fake_anthropic.script(text="Ok.")
    openai_sdk.chat.completions.create(model=MODEL, max_tokens=5000, messages=messages,
                                       extra_body={"provider_options": options})
    sent = fake_anthropic.last.json()
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 3000} and sent["service_tier"] == "auto"
    assert "provider_options" not in sent
    fake_openai.script(text="Ok.")
    openai_sdk.chat.completions.create(model="openai/gpt-4o-mini", messages=messages,
                                       extra_body={"provider_options": options})
    assert "provider_options" not in fake_openai.last.json()


def test_provider_options_may_not_replace_unified_fields(openai_sdk, fake_anthropic):
    with pytest.raises(openai.BadRequestError) as raised:
        openai_sdk.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}],
            extra_body={"provider_options": {"anthropic": {"max_tokens": 10}}})
    assert raised.value.body["param"] == "provider_options.anthropic.max_tokens"
    assert fake_anthropic.requests == []
