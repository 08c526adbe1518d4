"""OpenRouter's differences: attribution headers, its ``provider`` routing field passed through
untouched, vendor-prefixed model ids, mid-stream error chunks."""

from __future__ import annotations

import openai
import pytest

from junction.testing.conformance import Reply
from tests.fakes.openrouter_upstream import FakeOpenRouter
from tests.plugins.provider_gateway import provider_fixtures

KEY = "sk-or-v1-tests"
MODEL = "openrouter/anthropic/claude-sonnet-4.5"


upstream, junction, fake, client = provider_fixtures(
    "openrouter", lambda: FakeOpenRouter(api_key=KEY), KEY,
    site_url="https://app.example.test", app_name="Example App",
)


def test_attribution_headers_and_vendor_prefixed_model(client: openai.OpenAI, fake: FakeOpenRouter) -> None:
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert fake.last.path == "/api/v1/chat/completions"
    assert fake.last.headers["http-referer"] == "https://app.example.test"
    assert fake.last.headers["x-title"] == "Example App"
    assert fake.last.headers["authorization"] == f"Bearer {KEY}"
    assert fake.last.json()["model"] == "anthropic/claude-sonnet-4.5"


def test_the_output_limit_is_sent_as_max_tokens(client: openai.OpenAI, fake: FakeOpenRouter) -> None:
    client.chat.completions.create(model=MODEL, max_completion_tokens=77,
                                   messages=[{"role": "user", "content": "hi"}])
    sent = fake.last.json()
    assert sent["max_tokens"] == 77 and "max_completion_tokens" not in sent


def test_provider_routing_and_fallback_models_pass_through_verbatim(
    client: openai.OpenAI, fake: FakeOpenRouter
) -> None:
    routing = {
        "order": ["anthropic", "amazon-bedrock"],
        "allow_fallbacks": False,
        "max_price": {"prompt": 1, "completion": 2.5},
        "sort": "throughput",
    }
    client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hi"}],
        extra_body={"provider": routing, "models": ["openai/gpt-4o-mini"], "transforms": ["middle-out"]},
    )
    sent = fake.last.json()
    assert sent["provider"] == routing
    assert sent["models"] == ["openai/gpt-4o-mini"] and sent["transforms"] == ["middle-out"]


def test_openrouter_s_refusal_of_bad_routing_reaches_the_client(
    client: openai.OpenAI, fake: FakeOpenRouter
) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"provider": {"prefer": "cheap"}},
        )
    assert "provider preferences" in raised.value.message


def test_an_error_chunk_mid_stream_is_raised_by_the_sdk(client: openai.OpenAI, fake: FakeOpenRouter) -> None:
    fake.queue_reply(Reply(text="partial answer"))
    fake.mid_stream_error = "Provider returned error: upstream disconnected"
    stream = client.chat.completions.create(
        model=MODEL, stream=True, messages=[{"role": "user", "content": "hi"}]
    )
    received = []
    with pytest.raises(openai.APIError) as raised:
        for chunk in stream:
            received.extend(choice.delta.content or "" for choice in chunk.choices)
    assert "".join(received) == "partial answer"
    assert "upstream disconnected" in raised.value.message


def test_models_keep_their_vendor_prefix(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == [
        "openrouter/anthropic/claude-sonnet-4.5",
        "openrouter/openai/gpt-4o-mini",
    ]


def test_openrouter_has_no_embeddings_here(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.embeddings.create(model="openrouter/openai/text-embedding-3-small", input="x")
    assert raised.value.code == "embeddings_not_supported"


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
DETAILS = [{"type": "reasoning.text", "text": "Check the weather tool.", "signature": "sig-or==",
            "format": "anthropic-claude-v1", "index": 0}]


@pytest.mark.parametrize("stream", [False, True])
def test_reasoning_details_round_trip_with_tool_calls(client: openai.OpenAI, fake: FakeOpenRouter,
                                                      stream: bool) -> None:
    """OpenRouter's ``reasoning_details`` (Claude's signed thinking, Gemini's thought signatures)
    must come back on the assistant turn of a tool-calling conversation, as OpenRouter documents."""
    fake.reasoning_details = DETAILS
    fake.script(tool_calls=[{"id": "toolu_or1", "name": "get_weather", "arguments": '{"city": "Oslo"}'}])
    asked = [{"role": "user", "content": "Weather in Oslo?"}]
    metadata: dict = {}
    if stream:
        chunks = client.chat.completions.create(model=MODEL, tools=[WEATHER], messages=asked, stream=True)
        for chunk in chunks:
            for choice in chunk.choices:
                for key, value in ((choice.delta.model_extra or {}).get("provider_metadata") or {}).items():
                    metadata.setdefault(key, {}).update(value)
    else:
        [choice] = client.chat.completions.create(model=MODEL, tools=[WEATHER], messages=asked).choices
        message = choice.message
        metadata = (message.model_extra or {}).get("provider_metadata") or {}
    assert metadata == {"openrouter": {"reasoning_details": DETAILS}}
    call = {"id": "toolu_or1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    client.chat.completions.create(model=MODEL, tools=[WEATHER], messages=[
        *asked,
        {"role": "assistant", "content": None, "tool_calls": [call], "provider_metadata": metadata},
        {"role": "tool", "tool_call_id": "toolu_or1", "content": "4°C"},
    ])
    sent = fake.last.json()["messages"][1]
    assert sent["reasoning_details"] == DETAILS and "provider_metadata" not in sent


def test_an_upstream_account_out_of_credits_is_a_502_not_the_client_s_400(client: openai.OpenAI,
                                                                         fake: FakeOpenRouter) -> None:
    fake.out_of_credits = True
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="openrouter/openai/gpt-4o-mini",
                                       messages=[{"role": "user", "content": "hi"}])
    assert raised.value.status_code == 502
    assert raised.value.body["code"] == "upstream_payment_required"  # type: ignore[index]
    assert "Insufficient credits" in raised.value.message
