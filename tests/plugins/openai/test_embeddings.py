"""``POST /v1/embeddings`` routed to OpenAI, through a real gateway, with the official SDK."""

from __future__ import annotations

import openai
import pytest

from tests.fakes.embedding_vectors import fake_vector
from tests.fakes.openai_compatible import OpenAICompatibleFake
from tests.plugins.provider_gateway import provider_fixtures

KEY = "sk-openai-embeddings"


upstream, junction, fake, client = provider_fixtures("openai", lambda: OpenAICompatibleFake(api_key=KEY), KEY)


def test_each_text_gets_its_own_vector_in_order(client: openai.OpenAI, fake: OpenAICompatibleFake) -> None:
    result = client.embeddings.create(
        model="openai/text-embedding-3-small", input=["alpha", "beta"], encoding_format="float"
    )
    assert [item.index for item in result.data] == [0, 1]
    assert result.data[0].embedding == fake_vector("alpha")
    assert result.data[1].embedding == fake_vector("beta")
    assert result.usage.prompt_tokens == 2 and result.usage.total_tokens == 2
    sent = fake.last.json()
    assert sent["model"] == "text-embedding-3-small"
    assert fake.last.headers["authorization"] == f"Bearer {KEY}"


def test_sdk_default_base64_is_passed_through_and_decoded(
    client: openai.OpenAI, fake: OpenAICompatibleFake
) -> None:
    result = client.embeddings.create(model="openai/text-embedding-3-small", input="gamma")
    assert fake.last.json()["encoding_format"] == "base64"
    assert result.data[0].embedding == fake_vector("gamma")


def test_dimensions_and_token_input_reach_openai(client: openai.OpenAI, fake: OpenAICompatibleFake) -> None:
    result = client.embeddings.create(
        model="openai/text-embedding-3-large",
        input=[[1, 2, 3], [4, 5]],
        dimensions=4,
        encoding_format="float",
    )
    assert [len(item.embedding) for item in result.data] == [4, 4]
    assert fake.last.json()["input"] == [[1, 2, 3], [4, 5]]
    assert fake.last.json()["dimensions"] == 4


def test_mixed_input_is_a_400_naming_input(client: openai.OpenAI, fake: OpenAICompatibleFake) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        mixed: list = ["text", 5]
        client.embeddings.create(model="openai/text-embedding-3-small", input=mixed)
    assert raised.value.body["param"] == "input"  # type: ignore[index]
    assert fake.requests == []


def test_upstream_rate_limit_keeps_retry_after(client: openai.OpenAI, fake: OpenAICompatibleFake) -> None:
    fake.queue_error(429, "Rate limit reached for text-embedding-3-small", retry_after=9)
    with pytest.raises(openai.RateLimitError) as raised:
        client.embeddings.create(model="openai/text-embedding-3-small", input="x")
    assert raised.value.response.headers["retry-after"] == "9"


def test_unknown_provider_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="nobody/embedder", input="x")
