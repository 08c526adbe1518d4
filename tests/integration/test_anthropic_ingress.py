"""The official ``anthropic`` SDK against Junction's ``POST /v1/messages``, routed to the fake OpenAI
(``openai/...``) and to the fake Anthropic (``anthropic/...``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import anthropic
import pytest

from tests.fakes.anthropic_upstream import anthropic_error
from tests.fakes.openai_upstream import openai_error
from tests.integration.anthropic_fixtures import (  # noqa: F401 (fixtures)
    anthropic_gateway,
    anthropic_sdk,
    fake_anthropic,
    fake_anthropic_server,
)

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


# --- routed to OpenAI -------------------------------------------------------------------------


def test_create_routed_to_openai(anthropic_sdk, fake_openai):
    fake_openai.script(text="Bonjour !", prompt_tokens=40, cached_tokens=32, completion_tokens=3)
    message = anthropic_sdk.messages.create(
        model="openai/gpt-4o-mini",
        max_tokens=256,
        system="Answer in French.",
        extra_body={"temperature": 0.3},
        stop_sequences=["END"],
        messages=[{"role": "user", "content": "Hello"}],
    )
    assert message.type == "message" and message.role == "assistant"
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "Bonjour !"
    assert message.stop_reason == "end_turn"
    assert (
        message.usage.input_tokens,
        message.usage.cache_read_input_tokens,
        message.usage.output_tokens,
    ) == (8, 32, 3)
    sent = fake_openai.last.json()
    assert sent["model"] == "gpt-4o-mini"
    assert sent["messages"] == [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Hello"},
    ]
    assert (sent["max_completion_tokens"], sent["temperature"], sent["stop"]) == (256, 0.3, ["END"])
    assert "max_tokens" not in sent


def test_openai_reasoning_models_get_max_completion_tokens(anthropic_sdk, fake_openai):
    # o-series models refuse max_tokens; Anthropic's max_tokens must reach them as
    # max_completion_tokens.
    fake_openai.script(text="Thought it through.")
    message = anthropic_sdk.messages.create(
        model="openai/o3-mini", max_tokens=512, messages=[{"role": "user", "content": "Think"}])
    assert message.content[0].text == "Thought it through."
    sent = fake_openai.last.json()
    assert sent["max_completion_tokens"] == 512 and "max_tokens" not in sent


def test_stream_routed_to_openai(anthropic_sdk, fake_openai):
    fake_openai.script(
        text="One two three four five.", chunk_size=5, prompt_tokens=9, completion_tokens=6
    )
    with anthropic_sdk.messages.stream(
        model="openai/gpt-4o-mini", max_tokens=100, messages=[{"role": "user", "content": "Count"}]
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == "One two three four five." and len(pieces) == 5
    assert final.content[0].text == "One two three four five."
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (9, 6)


def test_tool_use_routed_to_openai(anthropic_sdk, fake_openai):
    fake_openai.script(
        tool_calls=[{"id": "call_abc", "name": "get_weather", "arguments": '{"city": "Oslo"}'}]
    )
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Oslo?"}]
    first = anthropic_sdk.messages.create(
        model="openai/gpt-4o-mini",
        max_tokens=200,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=messages,
    )
    assert first.stop_reason == "tool_use"
    [tool_use] = [b for b in first.content if b.type == "tool_use"]
    assert (tool_use.id, tool_use.name, tool_use.input) == ("call_abc", "get_weather", {"city": "Oslo"})
    sent = fake_openai.last.json()
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city.",
                "parameters": WEATHER_TOOL["input_schema"],
            },
        }
    ]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}

    fake_openai.script(text="4°C in Oslo.")
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_abc", "content": "4°C"}]},
    ]
    second = anthropic_sdk.messages.create(
        model="openai/gpt-4o-mini", max_tokens=200, tools=[WEATHER_TOOL], messages=messages
    )
    assert second.content[0].text == "4°C in Oslo."
    sent = fake_openai.last.json()["messages"]
    assert sent[1]["tool_calls"] == [
        {
            "id": "call_abc",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
        }
    ]
    assert sent[2] == {"role": "tool", "content": "4°C", "tool_call_id": "call_abc"}


def test_streamed_tool_use_routed_to_openai(anthropic_sdk, fake_openai):
    fake_openai.script(
        tool_calls=[
            {"id": "call_1", "name": "get_weather", "arguments": '{"city": "Reykjavik"}'},
            {"id": "call_2", "name": "get_weather", "arguments": '{"city": "Tromsø"}'},
        ]
    )
    with anthropic_sdk.messages.stream(
        model="openai/gpt-4o-mini",
        max_tokens=200,
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "Weather up north?"}],
    ) as stream:
        json_pieces = sum(1 for event in stream if event.type == "input_json")
        final = stream.get_final_message()
    assert json_pieces > 4
    assert final.stop_reason == "tool_use"
    assert [(b.id, b.input) for b in final.content] == [
        ("call_1", {"city": "Reykjavik"}),
        ("call_2", {"city": "Tromsø"}),
    ]


def test_first_delta_arrives_before_the_upstream_finishes(anthropic_sdk, fake_openai):
    hold = asyncio.Event()
    fake_openai.script(text="Early bird, late worm.", chunk_size=6, hold=hold)
    with anthropic_sdk.messages.stream(
        model="openai/gpt-4o-mini", max_tokens=50, messages=[{"role": "user", "content": "Go"}]
    ) as stream:
        texts = stream.text_stream
        try:
            assert next(texts) == "Early "
            assert fake_openai.streams_completed == 0
        finally:
            fake_openai.set_event(hold)
        assert "Early " + "".join(texts) == "Early bird, late worm."


def test_upstream_rate_limit_in_anthropic_error_shape(anthropic_sdk, fake_openai):
    fake_openai.fail_next(
        429, openai_error("Rate limit reached", "requests", "rate_limit_exceeded"), {"retry-after": "9"}
    )
    with pytest.raises(anthropic.RateLimitError) as raised:
        anthropic_sdk.messages.create(
            model="openai/gpt-4o-mini", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert raised.value.response.headers["retry-after"] == "9"
    assert raised.value.body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "openai: Rate limit reached"},
    }


# --- routed to Anthropic ----------------------------------------------------------------------


def test_thinking_and_tool_use_round_trip_through_anthropic(anthropic_sdk, fake_anthropic):
    fake_anthropic.script(
        thinking="Need the weather tool.",
        signature="sig-ingress==",
        tool_calls=[{"id": "toolu_I", "name": "get_weather", "input": {"city": "Oslo"}}],
        input_tokens=20,
        cache_read_input_tokens=500,
        cache_creation_input_tokens=100,
    )
    thinking = {"type": "enabled", "budget_tokens": 2000}
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Oslo?"}]
    first = anthropic_sdk.messages.create(
        model="anthropic/claude-sonnet-4-5",
        max_tokens=8000,
        thinking=thinking,
        tools=[WEATHER_TOOL],
        messages=messages,
    )
    assert [b.type for b in first.content] == ["thinking", "tool_use"]
    assert (first.content[0].thinking, first.content[0].signature) == (
        "Need the weather tool.",
        "sig-ingress==",
    )
    assert (
        first.usage.input_tokens,
        first.usage.cache_read_input_tokens,
        first.usage.cache_creation_input_tokens,
    ) == (20, 500, 100)
    assert fake_anthropic.last.json()["thinking"]["type"] == "enabled"

    fake_anthropic.script(text="4°C.")
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_I", "content": "4°C", "is_error": False}
            ],
        },
    ]
    second = anthropic_sdk.messages.create(
        model="anthropic/claude-sonnet-4-5",
        max_tokens=8000,
        thinking=thinking,
        tools=[WEATHER_TOOL],
        messages=messages,
    )
    assert second.content[0].text == "4°C."
    assert fake_anthropic.last.json()["messages"][1]["content"][0] == {
        "type": "thinking",
        "thinking": "Need the weather tool.",
        "signature": "sig-ingress==",
    }


def test_streamed_thinking_through_anthropic(anthropic_sdk, fake_anthropic):
    fake_anthropic.script(
        thinking="Let me think this through carefully.",
        signature="sig-s==",
        text="Forty-two.",
        output_tokens=30,
        thinking_tokens=11,
    )
    with anthropic_sdk.messages.stream(
        model="anthropic/claude-sonnet-4-5",
        max_tokens=4000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "Meaning of life?"}],
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert "thinking" in kinds and "signature" in kinds and "text" in kinds
    thinking, text = final.content
    assert (thinking.thinking, thinking.signature) == ("Let me think this through carefully.", "sig-s==")
    assert text.text == "Forty-two."
    assert final.usage.output_tokens == 30 and final.usage.output_tokens_details.thinking_tokens == 11


def test_alias_and_system_blocks_with_cache_control_reach_anthropic(anthropic_sdk, fake_anthropic):
    system = [
        {"type": "text", "text": "You are a librarian."},
        {"type": "text", "text": "Catalogue: ...", "cache_control": {"type": "ephemeral"}},
    ]
    anthropic_sdk.messages.create(
        model="claude", max_tokens=64, system=system, messages=[{"role": "user", "content": "Any Borges?"}]
    )
    sent = fake_anthropic.last.json()
    assert sent["model"] == "claude-sonnet-4-5"
    assert sent["system"] == system


def test_upstream_overloaded_mid_stream_is_an_error_event(anthropic_sdk, fake_anthropic):
    fake_anthropic.script(text="Half an answer", error_midway=("overloaded_error", "Overloaded"))
    with pytest.raises(anthropic.APIStatusError) as raised, anthropic_sdk.messages.stream(
        model="anthropic/claude-sonnet-4-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        for _ in stream:
            pass
    assert raised.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "anthropic: Overloaded"},
    }


def test_upstream_overloaded_before_the_stream(anthropic_sdk, fake_anthropic):
    fake_anthropic.fail_next(529, anthropic_error(529, "Overloaded"))
    with pytest.raises(anthropic.InternalServerError) as raised:
        anthropic_sdk.messages.create(
            model="anthropic/claude-sonnet-4-5",
            max_tokens=50,
            stream=True,
            messages=[{"role": "user", "content": "hi"}],
        )
    assert raised.value.status_code == 503
    assert raised.value.body["error"]["type"] == "overloaded_error"


def test_client_leaving_closes_the_upstream_stream(anthropic_sdk, fake_anthropic):
    fake_anthropic.script(
        text="This answer is abandoned halfway.", chunk_size=5, hold_until_disconnected=True
    )
    with anthropic_sdk.messages.stream(
        model="anthropic/claude-sonnet-4-5", max_tokens=50, messages=[{"role": "user", "content": "Go"}]
    ) as stream:
        assert next(iter(stream.text_stream)) == "This "
    # The fake holds its answer until its own client (the gateway) hangs up.
    deadline = time.monotonic() + 10
    while fake_anthropic.disconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake_anthropic.disconnects == 1
    assert fake_anthropic.streams_completed == 0


def test_sdk_stream_reports_the_stop_sequence(anthropic_sdk, fake_anthropic):
    fake_anthropic.script(text="Alpha beta ", stop_sequence="gamma")
    with anthropic_sdk.messages.stream(
        model="anthropic/claude-sonnet-4-5", max_tokens=50, stop_sequences=["gamma"],
        messages=[{"role": "user", "content": "Greek letters"}],
    ) as stream:
        final = stream.get_final_message()
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "gamma")
    assert final.content[0].text == "Alpha beta "


# --- Anthropic-only options: exact on Anthropic, never sent elsewhere ---------------------------


def test_thinking_budget_reaches_anthropic_exactly(anthropic_sdk, fake_anthropic):
    fake_anthropic.script(thinking="Hmm.", signature="sig==", text="Yes.")
    anthropic_sdk.messages.create(
        model="anthropic/claude-sonnet-4-5",
        max_tokens=8000,
        thinking={"type": "enabled", "budget_tokens": 2000},
        messages=[{"role": "user", "content": "Is it prime?"}],
    )
    sent = fake_anthropic.last.json()
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2000}
    assert sent["max_tokens"] == 8000


def test_top_k_service_tier_and_effort_reach_anthropic(anthropic_sdk, fake_anthropic):
    fake_anthropic.script(text="Ok.")
    anthropic_sdk.messages.create(
        model="anthropic/claude-sonnet-4-5",
        max_tokens=256,
        extra_body={"top_k": 40, "service_tier": "standard_only", "output_config": {"effort": "low"}},
        messages=[{"role": "user", "content": "Hi"}],
    )
    sent = fake_anthropic.last.json()
    assert (sent["top_k"], sent["service_tier"]) == (40, "standard_only")
    # Anthropic's effort is its own setting, not extended thinking.
    assert sent["output_config"] == {"effort": "low"} and "thinking" not in sent


def test_anthropic_only_options_are_not_sent_to_openai(anthropic_sdk, fake_openai):
    fake_openai.script(text="Ok.")
    anthropic_sdk.messages.create(
        model="openai/gpt-4o-mini",
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 2000},
        extra_body={"top_k": 40, "service_tier": "auto"},
        messages=[{"role": "user", "content": "Hi"}],
    )
    sent = fake_openai.last.json()
    assert not {"top_k", "service_tier", "thinking", "provider_options"} & sent.keys()
    assert sent["reasoning_effort"] == "low"
