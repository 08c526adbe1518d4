"""The official ``anthropic`` SDK against ``/v1/messages`` routed to ``gemini/...`` (a fake Gemini
that, like Gemini 3, refuses a replayed function call without its thought signature)."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest

from junction.testing.scripted_upstream import Reply, ToolCallReply
from junction.testing.server import JunctionProcess
from tests.fakes.gemini_upstream import FakeGemini
from tests.plugins.provider_gateway import provider_fixtures

KEY = "gemini-anthropic-ingress-key"
MODEL = "gemini/gemini-2.5-flash"
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def anthropic_sdk(server: JunctionProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key=server.key, max_retries=0, timeout=20)


upstream, junction, fake, client = provider_fixtures(
    "gemini", lambda: FakeGemini(api_key=KEY), KEY, client=anthropic_sdk
)


def test_create(client: anthropic.Anthropic, fake: FakeGemini) -> None:
    fake.queue_reply(Reply(text="Hej!", prompt_tokens=20, completion_tokens=2))
    message = client.messages.create(
        model=MODEL,
        max_tokens=64,
        system="Answer in Swedish.",
        messages=[{"role": "user", "content": "Hello"}],
    )
    assert [b.type for b in message.content] == ["text"] and message.content[0].text == "Hej!"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (20, 2)
    seen = fake.last_seen()
    assert seen.model == "gemini-2.5-flash" and seen.texts == ["Answer in Swedish.", "Hello"]


def test_stream(client: anthropic.Anthropic, fake: FakeGemini) -> None:
    fake.queue_reply(Reply(text="Streaming from Gemini.", chunk_size=5, prompt_tokens=17, completion_tokens=4))
    with client.messages.stream(
        model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "Go"}]
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    pieces = [event.text for event in events if event.type == "text"]
    assert "".join(pieces) == "Streaming from Gemini." and len(pieces) > 1
    assert final.stop_reason == "end_turn"
    # Gemini's first chunk already counts the prompt: message_start says so, as Anthropic's does.
    assert events[0].type == "message_start" and events[0].message.usage.input_tokens == 17
    assert (final.usage.input_tokens, final.usage.output_tokens) == (17, 4)


@pytest.mark.parametrize("streamed", [False, True])
def test_tool_use_round_trip_keeps_geminis_thought_signature(
    client: anthropic.Anthropic, fake: FakeGemini, streamed: bool
) -> None:
    fake.queue_reply(Reply(tool_calls=[ToolCallReply("get_weather", {"city": "Oslo"})]))
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Oslo?"}]
    if streamed:
        with client.messages.stream(
            model=MODEL, max_tokens=128, tools=[WEATHER_TOOL], messages=messages
        ) as stream:
            first = stream.get_final_message()
    else:
        first = client.messages.create(model=MODEL, max_tokens=128, tools=[WEATHER_TOOL], messages=messages)
    assert first.stop_reason == "tool_use"
    [tool_use] = [b for b in first.content if b.type == "tool_use"]
    assert (tool_use.name, tool_use.input) == ("get_weather", {"city": "Oslo"})
    # Gemini's signature travels to the client as an opaque block the client sends back unchanged.
    assert any(b.type == "redacted_thinking" for b in first.content)

    fake.queue_reply(Reply(text="4°C in Oslo."))
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": '{"temp_c": 4}'}],
        },
    ]
    second = client.messages.create(model=MODEL, max_tokens=128, tools=[WEATHER_TOOL], messages=messages)
    assert second.content[0].text == "4°C in Oslo."
    seen = fake.last_seen()
    assert seen.tool_calls == [("get_weather", {"city": "Oslo"})]
    assert [json.loads(result) for result in seen.tool_results] == [{"temp_c": 4}]
