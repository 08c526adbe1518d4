"""Mistral's differences from OpenAI: renamed fields, strict fields, 9-character tool-call ids,
embeddings — through a real gateway and the official SDK."""

from __future__ import annotations

import re

import openai
import pytest

from junction.providers.mistral.adapter import MistralChunkReader, mistral_tool_call_id
from junction.schemas.stream import ToolCallDelta
from tests.fakes.embedding_vectors import fake_vector
from tests.fakes.mistral_upstream import FakeMistral
from tests.plugins.provider_gateway import provider_fixtures

KEY = "mistral-tests-key"
MODEL = "mistral/mistral-large-latest"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


upstream, junction, fake, client = provider_fixtures("mistral", lambda: FakeMistral(api_key=KEY), KEY)


def test_tool_call_ids_map_deterministically_to_nine_alphanumerics() -> None:
    assert mistral_tool_call_id("D681PevKs") == "D681PevKs"  # Mistral's own ids pass through
    mapped = mistral_tool_call_id("call_PTLP8xhu3uwZk4l3nlnrrJha")
    assert re.fullmatch(r"[A-Za-z0-9]{9}", mapped)
    assert mapped == mistral_tool_call_id("call_PTLP8xhu3uwZk4l3nlnrrJha")
    assert len({mistral_tool_call_id(f"toolu_{n}") for n in range(2000)}) == 2000


def test_a_conversation_begun_elsewhere_continues_on_mistral(
    client: openai.OpenAI, fake: FakeMistral
) -> None:
    """Ids from OpenAI (``call_...``) and Anthropic (``toolu_...``) are mapped the same way in the
    assistant turn and in the tool results, so Mistral accepts the history."""
    completion = client.chat.completions.create(
        model=MODEL,
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "Weather in Oslo and Bergen?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_PTLP8xhu3uwZk4l3nlnrrJha",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                    },
                    {
                        "id": "toolu_01A09q90qw90lq917835lq9",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Bergen"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_PTLP8xhu3uwZk4l3nlnrrJha", "content": "4°C"},
            {"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": "7°C"},
        ],
    )
    assert completion.choices[0].message.content
    sent = fake.last.json()["messages"]
    calls = [call["id"] for call in sent[1]["tool_calls"]]
    assert calls == [
        mistral_tool_call_id("call_PTLP8xhu3uwZk4l3nlnrrJha"),
        mistral_tool_call_id("toolu_01A09q90qw90lq917835lq9"),
    ]
    assert [sent[2]["tool_call_id"], sent[3]["tool_call_id"]] == calls


def test_openai_fields_are_renamed_or_dropped(client: openai.OpenAI, fake: FakeMistral) -> None:
    client.chat.completions.create(
        model=MODEL,
        seed=42,
        max_completion_tokens=64,
        tool_choice="required",
        tools=[WEATHER],
        user="u-1",
        metadata={"team": "a"},
        messages=[{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Weather?"}],
    )
    sent = fake.last.json()
    assert sent["random_seed"] == 42 and "seed" not in sent
    assert sent["max_tokens"] == 64 and "max_completion_tokens" not in sent
    assert sent["tool_choice"] == "any"
    assert "user" not in sent and "metadata" not in sent
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}


def test_stream_carries_no_stream_options_and_still_reports_usage(
    client: openai.OpenAI, fake: FakeMistral
) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "count"}],
    )
    usage = [chunk.usage for chunk in stream if chunk.usage]
    assert "stream_options" not in fake.last.json()
    assert len(usage) == 1 and usage[0].total_tokens == 18


def test_logit_bias_is_refused_naming_it(client: openai.OpenAI, fake: FakeMistral) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model=MODEL, logit_bias={"1": 1}, messages=[{"role": "user", "content": "x"}]
        )
    assert raised.value.body["param"] == "logit_bias"  # type: ignore[index]
    assert fake.requests == []


def test_a_field_mistral_does_not_know_comes_back_as_its_400(
    client: openai.OpenAI, fake: FakeMistral
) -> None:
    """Unmodelled fields go through verbatim; Mistral's validation answer reaches the client."""
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x"}], extra_body={"safe_mode": True}
        )
    assert "extra_forbidden" in raised.value.message and "safe_mode" in raised.value.message
    assert fake.last.json()["safe_mode"] is True


def test_embeddings_with_output_dimension(client: openai.OpenAI, fake: FakeMistral) -> None:
    result = client.embeddings.create(model="mistral/mistral-embed", input=["a", "b"], dimensions=5)
    assert [item.embedding for item in result.data] == [fake_vector("a", 5), fake_vector("b", 5)]
    sent = fake.last.json()
    assert sent["output_dimension"] == 5 and "dimensions" not in sent
    assert sent["encoding_format"] == "base64" and sent["model"] == "mistral-embed"


def test_token_input_is_refused_for_mistral_embeddings(client: openai.OpenAI, fake: FakeMistral) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.embeddings.create(model="mistral/mistral-embed", input=[[1, 2]])
    assert raised.value.body["param"] == "input"  # type: ignore[index]
    assert fake.requests == []


@pytest.mark.parametrize("stream", [False, True])
def test_model_length_finish_reason_becomes_length(client: openai.OpenAI, fake: FakeMistral, stream: bool) -> None:
    """Mistral says ``model_length`` when the context window ran out; OpenAI clients (and the
    Anthropic ingress's ``max_tokens``) know only ``length``."""
    fake.script(text="A long story cut sho", finish_reason="model_length")
    messages = [{"role": "user", "content": "Tell me everything"}]
    if stream:
        chunks = list(client.chat.completions.create(model=MODEL, messages=messages, stream=True))
        reasons = [choice.finish_reason for chunk in chunks for choice in chunk.choices if choice.finish_reason]
    else:
        reasons = [client.chat.completions.create(model=MODEL, messages=messages).choices[0].finish_reason]
    assert reasons == ["length"]


def test_whole_parallel_calls_in_one_chunk_keep_apart() -> None:
    """Mistral streams each tool call whole, with an id, and its ``index`` defaults to 0 (so parallel
    calls in one chunk may all say 0): calls are told apart by their ids, or OpenAI clients would
    merge their arguments."""
    reader = MistralChunkReader("mistral")
    call = '{{"id": "{id}", "type": "function", "function": {{"name": "get_weather", "arguments": "{args}"}}{index}}}'
    oslo = call.format(id="D681PevKs", args='{\\"city\\": \\"Oslo\\"}', index=', "index": 0')
    bergen = call.format(id="Xq1W2e3R4", args='{\\"city\\": \\"Bergen\\"}', index=', "index": 0')
    chunk = ('{"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "mistral-large-latest", '
             '"choices": [{"index": 0, "delta": {"tool_calls": [' + oslo + ", " + bergen + ']}, '
             '"finish_reason": "tool_calls"}]}')
    calls = [event for event in reader.read(chunk) if isinstance(event, ToolCallDelta)]
    assert [(c.index, c.id, c.arguments) for c in calls] == [
        (0, "D681PevKs", '{"city": "Oslo"}'),
        (1, "Xq1W2e3R4", '{"city": "Bergen"}'),
    ]


# --- Magistral: content in chunks, thinking included -------------------------------------------

MAGISTRAL = "mistral/magistral-medium-latest"


def test_magistral_thinking_chunks_become_reasoning(client: openai.OpenAI, fake: FakeMistral) -> None:
    fake.thinking = "Two and two make four."
    fake.script(text="4")
    completion = client.chat.completions.create(model=MAGISTRAL,
                                                messages=[{"role": "user", "content": "2+2?"}])
    message = completion.choices[0].message
    assert message.content == "4"
    assert message.model_extra["reasoning"] == "Two and two make four."  # type: ignore[index]


def test_streamed_magistral_thinking_chunks_become_reasoning_deltas(client: openai.OpenAI,
                                                                   fake: FakeMistral) -> None:
    fake.thinking = "Two and two make four."
    fake.script(text="It is 4.", chunk_size=3)
    stream = client.chat.completions.create(model=MAGISTRAL, stream=True,
                                            messages=[{"role": "user", "content": "2+2?"}])
    deltas = [chunk.choices[0].delta for chunk in stream if chunk.choices]
    assert "".join((d.model_extra or {}).get("reasoning") or "" for d in deltas) == "Two and two make four."
    assert "".join(d.content or "" for d in deltas) == "It is 4."


@pytest.mark.parametrize("stream", [False, True])
def test_error_finish_reason_is_an_upstream_error(client: openai.OpenAI, fake: FakeMistral,
                                                  stream: bool) -> None:
    fake.script(text="Partial", finish_reason="error")
    with pytest.raises(openai.APIError) as raised:
        answer = client.chat.completions.create(model=MODEL, stream=stream,
                                                messages=[{"role": "user", "content": "hi"}])
        if stream:
            for _ in answer:  # type: ignore[union-attr]
                pass
    assert raised.value.code == "generation_failed"
    if not stream:
        assert isinstance(raised.value, openai.APIStatusError) and raised.value.status_code == 502


def test_provider_options_reach_mistral_only_as_its_own_fields(client: openai.OpenAI,
                                                               fake: FakeMistral) -> None:
    options = {"mistral": {"prompt_mode": "reasoning", "safe_prompt": True}, "groq": {"service_tier": "flex"}}
    client.chat.completions.create(model=MAGISTRAL, messages=[{"role": "user", "content": "hi"}],
                                   extra_body={"provider_options": options})
    sent = fake.last.json()
    assert (sent["prompt_mode"], sent["safe_prompt"]) == ("reasoning", True)
    assert "service_tier" not in sent and "provider_options" not in sent
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                                       extra_body={"provider_options": {"mistral": {"random_seed": 3}}})
    assert raised.value.body["param"] == "provider_options.mistral.random_seed"  # type: ignore[index]
