"""Groq's differences from OpenAI, through a real gateway and the official SDK, plus its stream
usage reader."""

from __future__ import annotations

import json

import openai
import pytest

from junction.providers.groq.adapter import GroqChunkReader
from junction.schemas.stream import StreamDone, UsageReport
from junction.testing.server import JunctionProcess
from tests.fakes.groq_upstream import FakeGroq
from tests.plugins.provider_gateway import provider_fixtures, sdk

KEY = "gsk_groq_tests"
MODEL = "groq/llama-3.1-8b-instant"


upstream, junction, fake, client = provider_fixtures("groq", lambda: FakeGroq(api_key=KEY), KEY)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"logprobs": True}, "logprobs"),
        ({"n": 2}, "n"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"logprobs": True, "top_logprobs": 3}, "logprobs"),
    ],
)
def test_parameters_groq_refuses_are_a_400_naming_them(
    client: openai.OpenAI, fake: FakeGroq, fields: dict, param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], **fields)
    assert raised.value.body["param"] == param  # type: ignore[index]
    assert "groq" in raised.value.message
    assert fake.requests == []


def test_participant_names_are_dropped_not_refused(client: openai.OpenAI, fake: FakeGroq) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "name": "alice", "content": "hello from alice"}]
    )
    assert completion.choices[0].message.content == "echo: hello from alice"
    assert fake.last.json()["messages"] == [{"role": "user", "content": "hello from alice"}]
    assert fake.last.path == "/openai/v1/chat/completions"


def test_groq_has_no_embeddings(client: openai.OpenAI, fake: FakeGroq) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.embeddings.create(model=MODEL, input="x")
    assert raised.value.code == "embeddings_not_supported"
    assert fake.requests == []


def test_models_come_from_groq(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == [
        "groq/llama-3.1-8b-instant",
        "groq/llama-3.3-70b-versatile",
    ]


FINISH = {
    "id": "c",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
    "x_groq": {
        "id": "req_1",
        "usage": {
            "queue_time": 0.1,
            "prompt_tokens": 5,
            "completion_tokens": 2,
            "total_tokens": 7,
            "total_time": 0.2,
        },
    },
}


def _usages(chunks: list[str]) -> list[int]:
    reader = GroqChunkReader("groq")
    events = [event for chunk in chunks for event in reader.read(chunk)]
    assert isinstance(events[-1], StreamDone)
    return [event.usage.total_tokens for event in events if isinstance(event, UsageReport)]


def test_usage_from_x_groq_when_there_is_no_usage_chunk() -> None:
    assert _usages([json.dumps(FINISH), "[DONE]"]) == [7]


def test_usage_is_reported_once_when_groq_sends_both() -> None:
    trailing = {
        **FINISH,
        "choices": [],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }
    del trailing["x_groq"]
    assert _usages([json.dumps(FINISH), json.dumps(trailing), "[DONE]"]) == [8]


# --- flex tier: Groq's 498 -----------------------------------------------------------------------


def test_flex_capacity_exceeded_is_a_retryable_503(client: openai.OpenAI, fake: FakeGroq) -> None:
    fake.flex_exhausted.add("llama-3.1-8b-instant")
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                                       extra_body={"provider_options": {"groq": {"service_tier": "flex"}}})
    assert raised.value.status_code == 503
    assert raised.value.body["type"] == "overloaded_error"  # type: ignore[index]
    assert raised.value.body["code"] == "capacity_exceeded"  # type: ignore[index]
    assert fake.last.json()["service_tier"] == "flex" and "provider_options" not in fake.last.json()


@pytest.fixture(scope="module")
def flex_gateway(upstream: FakeGroq, tmp_path_factory: pytest.TempPathFactory):
    config = f"""
[providers.groq]
api_key = "{KEY}"
base_url = "{upstream.base_url}"

[models."flex"]
deployments = [{{ model = "groq/llama-3.1-8b-instant" }}]
fallbacks = ["groq/llama-3.3-70b-versatile"]
"""
    with JunctionProcess(tmp_path_factory.mktemp("groq-flex"), config) as server:
        yield server


def test_flex_capacity_exceeded_falls_back_to_the_next_deployment(flex_gateway: JunctionProcess,
                                                                    fake: FakeGroq) -> None:
    fake.flex_exhausted.add("llama-3.1-8b-instant")
    with sdk(flex_gateway) as flex_client:
        completion = flex_client.chat.completions.create(
            model="flex", messages=[{"role": "user", "content": "hi"}], extra_body={"service_tier": "flex"})
    assert completion.choices[0].message.content == "echo: hi"
    assert [r.json()["model"] for r in fake.requests] == ["llama-3.1-8b-instant", "llama-3.3-70b-versatile"]
