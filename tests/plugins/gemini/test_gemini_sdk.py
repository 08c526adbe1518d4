"""The official openai SDK against a real gateway routed to (a fake) Gemini: what the conformance
kit does not cover — model listing, embeddings, Gemini-specific refusals and errors."""

from __future__ import annotations

import json

import openai
import pytest

from junction.testing.conformance import Reply, ToolCallReply
from tests.fakes.embedding_vectors import fake_vector
from tests.fakes.gemini_upstream import FakeGemini
from tests.plugins.provider_gateway import provider_fixtures

KEY = "gemini-sdk-key"


upstream, junction, fake, client = provider_fixtures("gemini", lambda: FakeGemini(api_key=KEY), KEY)


def test_models_are_listed_from_every_page_without_non_chat_models(
    client: openai.OpenAI, fake: FakeGemini
) -> None:
    ids = [model.id for model in client.models.list()]
    assert ids == ["gemini/gemini-2.5-flash", "gemini/gemini-2.5-pro", "gemini/gemini-embedding-001"]
    # Every page was fetched when the gateway started; this call is served from that cache.
    assert fake.requests == []


def test_embeddings_float_and_sdk_default_base64(client: openai.OpenAI, fake: FakeGemini) -> None:
    floats = client.embeddings.create(
        model="gemini/gemini-embedding-001", input=["one", "two"], dimensions=6, encoding_format="float"
    )
    assert [item.embedding for item in floats.data] == [fake_vector("one", 6), fake_vector("two", 6)]
    sent = fake.last.json()
    assert fake.last.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert sent["requests"][1] == {
        "model": "models/gemini-embedding-001",
        "content": {"parts": [{"text": "two"}]},
        "outputDimensionality": 6,
    }
    decoded = client.embeddings.create(model="gemini/gemini-embedding-001", input="three")
    assert decoded.data[0].embedding == fake_vector("three")
    assert decoded.model == "gemini-embedding-001"


def test_token_input_cannot_be_embedded_by_gemini(client: openai.OpenAI, fake: FakeGemini) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.embeddings.create(model="gemini/gemini-embedding-001", input=[[1, 2, 3]])
    assert raised.value.body["param"] == "input"  # type: ignore[index]
    assert fake.requests == []


def test_an_http_image_url_is_a_clear_400(client: openai.OpenAI, fake: FakeGemini) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model="gemini/gemini-2.5-flash",
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://example.test/cat.png"}}],
                }
            ],
        )
    assert raised.value.body["param"] == "messages[0].content[0].image_url.url"  # type: ignore[index]
    assert "data: URL" in raised.value.message
    assert fake.requests == []


def test_a_forgotten_thought_signature_surfaces_as_gemini_s_400(
    client: openai.OpenAI, fake: FakeGemini
) -> None:
    fake.queue_reply(Reply(tool_calls=[ToolCallReply("lookup", {"q": "x"})]))
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    first = client.chat.completions.create(
        model="gemini/gemini-2.5-flash", tools=tools, messages=[{"role": "user", "content": "look it up"}]
    )
    call = (first.choices[0].message.tool_calls or [])[0]
    rebuilt = {
        "role": "assistant",
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.function.name, "arguments": call.function.arguments},
            }
        ],
    }  # provider_metadata dropped
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model="gemini/gemini-2.5-flash",
            tools=tools,
            messages=[
                {"role": "user", "content": "look it up"},
                rebuilt,
                {"role": "tool", "tool_call_id": call.id, "content": "found"},
            ],
        )
    assert "thought_signature" in raised.value.message


def test_streamed_json_schema_answer(client: openai.OpenAI, fake: FakeGemini) -> None:
    fake.queue_reply(Reply(text='{"city": "Oslo", "temp_c": 4}', chunk_size=5))
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "temp_c": {"type": "number"}}}
    stream = client.chat.completions.create(
        model="gemini/gemini-2.5-flash",
        stream=True,
        messages=[{"role": "user", "content": "Oslo weather as JSON"}],
        response_format={"type": "json_schema", "json_schema": {"name": "weather", "schema": schema}},
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert json.loads(text) == {"city": "Oslo", "temp_c": 4}
    assert fake.last.query["alt"] == "sse"
    assert fake.last.json()["generationConfig"]["responseJsonSchema"] == schema


def test_unknown_model_is_404(client: openai.OpenAI, fake: FakeGemini) -> None:
    fake.fail_next(
        404,
        {
            "error": {
                "code": 404,
                "message": "models/gemini-9 is not found for API version v1beta",
                "status": "NOT_FOUND",
            }
        },
    )
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="gemini/gemini-9", messages=[{"role": "user", "content": "hi"}])
    assert "gemini-9 is not found" in raised.value.message


def test_upstream_key_is_sent_in_the_google_header_only(client: openai.OpenAI, fake: FakeGemini) -> None:
    client.chat.completions.create(
        model="gemini/gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}]
    )
    assert fake.last.headers["x-goog-api-key"] == KEY
    assert "authorization" not in fake.last.headers
    assert "key" not in fake.last.query


def test_gemini_native_fields_pass_through_and_openai_only_ones_do_not(
    client: openai.OpenAI, fake: FakeGemini
) -> None:
    safety = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}]
    client.chat.completions.create(
        model="gemini/gemini-2.5-flash",
        messages=[{"role": "user", "content": "hi"}],
        extra_body={"safety_settings": safety, "store": False},
    )
    sent = fake.last.json()
    assert sent["safetySettings"] == safety
    assert "store" not in sent and "safety_settings" not in sent


TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
MALFORMED = "Malformed function call: print(default_api.lookup(q='x'))"


def test_a_malformed_function_call_is_a_502_with_a_clear_code(client: openai.OpenAI,
                                                              fake: FakeGemini) -> None:
    fake.malformed_call = MALFORMED
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="gemini/gemini-2.5-flash", tools=TOOLS,
                                       messages=[{"role": "user", "content": "look it up"}])
    assert raised.value.status_code == 502
    assert raised.value.body["code"] == "malformed_function_call"  # type: ignore[index]


def test_a_malformed_function_call_mid_stream_is_an_error_event(client: openai.OpenAI,
                                                                fake: FakeGemini) -> None:
    fake.malformed_call = MALFORMED
    fake.queue_reply(Reply(text="Let me look that up.", chunk_size=5))
    stream = client.chat.completions.create(model="gemini/gemini-2.5-flash", tools=TOOLS, stream=True,
                                            messages=[{"role": "user", "content": "look it up"}])
    text = []
    with pytest.raises(openai.APIError) as raised:
        for chunk in stream:
            assert not chunk.choices or chunk.choices[0].finish_reason is None
            text += [chunk.choices[0].delta.content or ""] if chunk.choices else []
    assert "".join(text) == "Let me look that up."
    assert raised.value.code == "malformed_function_call"


def test_provider_options_reach_gemini_as_its_own_fields(client: openai.OpenAI, fake: FakeGemini) -> None:
    safety = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    client.chat.completions.create(
        model="gemini/gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}],
        extra_body={"provider_options": {"gemini": {"safetySettings": safety}, "anthropic": {"top_k": 5}}})
    sent = fake.last.json()
    assert sent["safetySettings"] == safety and "top_k" not in sent and "provider_options" not in sent
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model="gemini/gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}],
            extra_body={"provider_options": {"gemini": {"generationConfig": {"topK": 5}}}})
    assert raised.value.body["param"] == "provider_options.gemini.generationConfig"  # type: ignore[index]


@pytest.mark.parametrize("model", ["gemini/tunedModels/x", "gemini/x:streamGenerateContent",
                                   "gemini/models/a/b", "gemini/cachedContents/abc"])
@pytest.mark.parametrize("stream", [False, True])
def test_model_ids_reaching_other_upstream_paths_are_refused(client: openai.OpenAI, fake: FakeGemini,
                                                             model: str, stream: bool) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], stream=stream)
    assert raised.value.code == "invalid_model" and raised.value.param == "model"
    assert fake.requests == []


def test_a_model_id_given_with_its_collection_is_served(client: openai.OpenAI, fake: FakeGemini) -> None:
    client.chat.completions.create(model="gemini/models/gemini-2.5-flash",
                                   messages=[{"role": "user", "content": "hi"}])
    assert fake.last.path == "/v1beta/models/gemini-2.5-flash:generateContent"
