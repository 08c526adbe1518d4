"""The OpenAI Responses API through the official SDK, on OpenAI, Anthropic and Gemini.

One gateway serves the three providers' fakes; each test runs on each provider and checks what
the client got and what the provider's fake received. Continuations are sent right after the
first call: the stored response must already be there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from junction.testing.scripted_upstream import Reply, ToolCallReply
from junction.testing.server import JunctionProcess
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_compatible import OpenAICompatibleFake

PROVIDERS = {
    "openai": ("gpt-4o-mini", lambda: OpenAICompatibleFake(api_key="sk-oa")),
    "anthropic": ("claude-sonnet-4-5", lambda: FakeAnthropic(api_key="sk-ant")),
    "gemini": ("gemini-2.5-flash", lambda: FakeGemini(api_key="gk")),
}
KEYS = {"openai": "sk-oa", "anthropic": "sk-ant", "gemini": "gk"}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, Any]]:
    started = {name: make().start() for name, (_, make) in PROVIDERS.items()}
    yield started
    for fake in started.values():
        fake.stop()


@pytest.fixture(scope="module")
def junction(fakes: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[JunctionProcess]:
    config = "".join(
        f'[providers.{name}]\napi_key = "{KEYS[name]}"\nbase_url = "{fake.base_url}"\n\n'
        for name, fake in fakes.items()
    )
    with JunctionProcess(Path(tmp_path_factory.mktemp("responses")), config) as server:
        yield server


@pytest.fixture(params=list(PROVIDERS))
def provider(request: pytest.FixtureRequest, fakes: dict[str, Any]) -> tuple[str, Any]:
    fakes[request.param].reset()
    return f"{request.param}/{PROVIDERS[request.param][0]}", fakes[request.param]


@pytest.fixture
def client(junction: JunctionProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{junction.url}/v1", api_key=junction.key, max_retries=0, timeout=20) as sdk:
        yield sdk


def test_text_then_an_immediate_continuation(client: openai.OpenAI, provider: tuple[str, Any]) -> None:
    model, fake = provider
    fake.queue_reply(Reply(text="Paris is the capital.", prompt_tokens=20, completion_tokens=5))
    first = client.responses.create(
        model=model,
        instructions="Be brief.",
        input="Capital of France?",
        max_output_tokens=200,
        temperature=0.5,
        metadata={"team": "geo"},
    )
    assert first.output_text == "Paris is the capital."
    assert first.status == "completed" and first.object == "response"
    assert (
        first.usage.input_tokens == 20 and first.usage.output_tokens == 5 and first.usage.total_tokens == 25
    )
    assert first.metadata == {"team": "geo"} and first.instructions == "Be brief."
    seen = fake.last_seen()
    assert "Be brief." in seen.texts and "Capital of France?" in seen.texts

    fake.queue_reply(Reply(text="About 2.1 million."))
    second = client.responses.create(model=model, previous_response_id=first.id, input="Its population?")
    assert second.output_text == "About 2.1 million." and second.previous_response_id == first.id
    seen = fake.last_seen()
    # The history came from the store: the first question and answer, then the new question;
    # instructions are not carried over.
    assert seen.texts == ["Capital of France?", "Paris is the capital.", "Its population?"]


def test_stream_event_sequence_and_continuation(client: openai.OpenAI, provider: tuple[str, Any]) -> None:
    model, fake = provider
    fake.queue_reply(Reply(text="The quick brown fox", chunk_size=4))
    with client.responses.stream(model=model, input="Say it") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[2:4] == ["response.output_item.added", "response.content_part.added"]
    assert kinds.count("response.output_text.delta") > 2
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "The quick brown fox"
    assert final.output_text == "The quick brown fox" and final.usage is not None
    assert fake.last_seen().stream

    fake.queue_reply(Reply(text="Done."))
    again = client.responses.create(model=model, previous_response_id=final.id, input="Again")
    assert again.output_text == "Done."
    assert fake.last_seen().texts == ["Say it", "The quick brown fox", "Again"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_function_tools_over_two_turns(
    client: openai.OpenAI, provider: tuple[str, Any], stream: bool
) -> None:
    model, fake = provider
    fake.queue_reply(Reply(tool_calls=[ToolCallReply(name="get_weather", arguments={"city": "Oslo"})]))
    if stream:
        with client.responses.stream(model=model, input="Weather in Oslo?", tools=[WEATHER]) as events:
            kinds = [event.type for event in events]
            first = events.get_final_response()
        assert "response.function_call_arguments.delta" in kinds
        assert "response.function_call_arguments.done" in kinds
    else:
        first = client.responses.create(
            model=model,
            input="Weather in Oslo?",
            tools=[WEATHER],
            tool_choice="auto",
            parallel_tool_calls=True,
        )
    calls = [item for item in first.output if item.type == "function_call"]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Oslo"})]
    assert fake.last_seen().tool_names == ["get_weather"]

    # Turn two, stateless: the client sends the output back with the function's result.
    fake.queue_reply(Reply(text="Sunny in Oslo."))
    second = client.responses.create(
        model=model,
        tools=[WEATHER],
        store=False,
        input=[
            {"role": "user", "content": "Weather in Oslo?"},
            *[item.model_dump() for item in first.output],
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": '{"sky": "sunny"}'},
        ],
    )
    assert second.output_text == "Sunny in Oslo."
    seen = fake.last_seen()
    assert seen.tool_calls == [("get_weather", {"city": "Oslo"})]
    assert '{"sky": "sunny"}' in "".join(seen.tool_results) or seen.tool_results == ['{"sky":"sunny"}']

    # Turn two again, stateful: previous_response_id and only the function's result.
    fake.queue_reply(Reply(text="Still sunny."))
    third = client.responses.create(
        model=model,
        tools=[WEATHER],
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": '{"sky": "sunny"}'}],
    )
    assert third.output_text == "Still sunny."
    assert fake.last_seen().tool_calls == [("get_weather", {"city": "Oslo"})]


def test_json_schema_output(client: openai.OpenAI, provider: tuple[str, Any]) -> None:
    model, fake = provider
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    fake.queue_reply(Reply(text='{"city": "Paris"}'))
    response = client.responses.create(
        model=model,
        input="A city, as JSON",
        text={"format": {"type": "json_schema", "name": "city", "schema": schema, "strict": True}},
    )
    assert json.loads(response.output_text) == {"city": "Paris"}
    assert response.text.format.type == "json_schema"
    assert fake.last_seen().json_schema is not None


def test_retrieve_input_items_and_delete(client: openai.OpenAI, provider: tuple[str, Any]) -> None:
    model, fake = provider
    fake.queue_reply(Reply(text="Hi!"))
    created = client.responses.create(
        model=model, input=[{"role": "user", "content": [{"type": "input_text", "text": "Hello"}]}]
    )
    fetched = client.responses.retrieve(created.id)
    assert fetched.id == created.id and fetched.output_text == "Hi!"
    items = client.responses.input_items.list(created.id)
    assert [item.type for item in items.data] == ["message"]
    assert items.data[0].content[0].text == "Hello"
    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=model, previous_response_id=created.id, input="more")


def test_store_false_is_not_kept(client: openai.OpenAI, fakes: dict[str, Any]) -> None:
    fakes["openai"].reset()
    fakes["openai"].queue_reply(Reply(text="ok"))
    created = client.responses.create(model="openai/gpt-4o-mini", input="hi", store=False)
    assert created.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}, "tools[0].type"),
        ({"tool_choice": {"type": "web_search_preview"}}, "tool_choice"),
        ({"input": [{"type": "web_search_call", "id": "ws_1"}]}, "input[0].type"),
        ({"previous_response_id": "resp_missing"}, "previous_response_id"),
        ({"no_such_field": 1}, None),
    ],
)
def test_bad_requests_are_400s_naming_the_field(
    junction: JunctionProcess, body: dict[str, Any], param: str | None
) -> None:
    payload = {"model": "openai/gpt-4o-mini", "input": "hi", **body}
    answer = httpx.post(
        f"{junction.url}/v1/responses",
        json=payload,
        timeout=10,
        headers={"authorization": f"Bearer {junction.key}"},
    )
    error = answer.json()["error"]
    assert answer.status_code == (404 if param == "previous_response_id" else 400), answer.text
    assert set(error) == {"message", "type", "param", "code"}
    if param is not None:
        assert error["param"] == param
    else:
        assert "no_such_field" in error["message"]


def _admin(junction: JunctionProcess, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.post(
        f"{junction.url}{path}", json=body, timeout=10, headers={"authorization": f"Bearer {junction.key}"}
    )
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


def test_isolation_between_orgs_and_owners(junction: JunctionProcess, fakes: dict[str, Any]) -> None:
    org_a = _admin(junction, "/api/v1/admin/orgs", {"name": "a"})["id"]
    org_b = _admin(junction, "/api/v1/admin/orgs", {"name": "b"})["id"]

    def key(org: str, *scopes: str) -> openai.OpenAI:
        issued = _admin(junction, "/api/v1/admin/keys", {"org_id": org, "name": "k", "scopes": list(scopes)})
        return openai.OpenAI(base_url=f"{junction.url}/v1", api_key=issued["key"], max_retries=0, timeout=20)

    owner, colleague, admin = key(org_a, "chat"), key(org_a, "chat"), key(org_a, "chat", "admin")
    stranger = key(org_b, "chat", "admin")
    master = openai.OpenAI(base_url=f"{junction.url}/v1", api_key=junction.key, max_retries=0, timeout=20)
    fakes["openai"].reset()
    fakes["openai"].queue_reply(Reply(text="secret"))
    created = owner.responses.create(model="openai/gpt-4o-mini", input="mine")

    for other in (colleague, stranger):
        with pytest.raises(openai.NotFoundError):
            other.responses.retrieve(created.id)
        with pytest.raises(openai.NotFoundError):
            other.responses.input_items.list(created.id)
        with pytest.raises(openai.NotFoundError):
            other.responses.delete(created.id)
        with pytest.raises(openai.NotFoundError):
            other.responses.create(model="openai/gpt-4o-mini", previous_response_id=created.id, input="x")
    assert owner.responses.retrieve(created.id).output_text == "secret"
    assert admin.responses.retrieve(created.id).id == created.id
    assert master.responses.retrieve(created.id).id == created.id
    fakes["openai"].queue_reply(Reply(text="continued"))
    assert (
        admin.responses.create(
            model="openai/gpt-4o-mini", previous_response_id=created.id, input="go on"
        ).output_text
        == "continued"
    )
    owner.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        master.responses.retrieve(created.id)
    for client in (owner, colleague, admin, stranger, master):
        client.close()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_anthropic_thinking_signatures_round_trip(
    client: openai.OpenAI, fakes: dict[str, Any], stream: bool
) -> None:
    from tests.fakes.anthropic_upstream import AnthropicReply

    fake = fakes["anthropic"]
    fake.reset()
    fake.script(
        AnthropicReply(
            thinking="Let me think.",
            signature="sig-abc==",
            tool_calls=[{"id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}],
            thinking_tokens=9,
        )
    )
    request = {
        "model": "anthropic/claude-sonnet-4-5",
        "input": "Weather in Oslo?",
        "tools": [WEATHER],
        "reasoning": {"effort": "low"},
        "max_output_tokens": 4000,
    }
    if stream:
        with client.responses.stream(**request) as events:
            kinds = [event.type for event in events]
            first = events.get_final_response()
        assert "response.reasoning_summary_text.delta" in kinds
    else:
        first = client.responses.create(**request)
    assert fake.last.json()["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    reasoning = [item for item in first.output if item.type == "reasoning"]
    assert reasoning[0].summary[0].text == "Let me think." and reasoning[0].encrypted_content
    assert first.usage.output_tokens_details.reasoning_tokens == 9

    fake.script(AnthropicReply(text="Sunny."))
    client.responses.create(
        model="anthropic/claude-sonnet-4-5",
        previous_response_id=first.id,
        tools=[WEATHER],
        reasoning={"effort": "low"},
        max_output_tokens=4000,
        input=[{"type": "function_call_output", "call_id": "toolu_1", "output": "sunny"}],
    )
    assistant = [m for m in fake.last.json()["messages"] if m["role"] == "assistant"][0]
    assert assistant["content"][0] == {
        "type": "thinking",
        "thinking": "Let me think.",
        "signature": "sig-abc==",
    }


def test_models_retrieve(client: openai.OpenAI) -> None:
    listed = [model.id for model in client.models.list()]
    assert "openai/gpt-4o-mini" in listed
    model = client.models.retrieve("openai/gpt-4o-mini")
    assert model.id == "openai/gpt-4o-mini" and model.owned_by == "openai" and model.object == "model"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("openai/no-such-model")


# --- Chat Completions: what only OpenAI-compatible upstreams (or OpenAI) receive ---------------


def _chat(junction: JunctionProcess, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{junction.url}/v1/chat/completions",
        json=body,
        timeout=10,
        headers={"authorization": f"Bearer {junction.key}"},
    )


def test_unknown_message_and_part_members_reach_openai(
    junction: JunctionProcess, fakes: dict[str, Any]
) -> None:
    fake = fakes["openai"]
    fake.reset()
    fake.message_fields = type(fake).message_fields | {"brand_new_member"}
    try:
        answer = _chat(
            junction,
            {
                "model": "openai/gpt-4o-mini",
                "messages": [
                    {
                        "role": "user",
                        "brand_new_member": {"nested": [1, None]},
                        "content": [{"type": "text", "text": "hi", "cache_hint": "keep"}],
                    }
                ],
            },
        )
    finally:
        del fake.message_fields
    assert answer.status_code == 200, answer.text
    sent = fake.last.json()["messages"][0]
    assert sent["brand_new_member"] == {"nested": [1, None]}
    assert sent["content"] == [{"type": "text", "text": "hi", "cache_hint": "keep"}]


CUSTOM_TOOL = {"type": "custom", "custom": {"name": "run_sql", "description": "Runs SQL"}}
ALLOWED = {
    "type": "allowed_tools",
    "allowed_tools": {"mode": "auto", "tools": [{"type": "function", "function": {"name": "get_weather"}}]},
}
FUNCTION_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


@pytest.mark.parametrize(
    ("tools", "choice", "param"),
    [([CUSTOM_TOOL], None, "tools"), ([FUNCTION_TOOL], ALLOWED, "tool_choice")],
    ids=["custom", "allowed_tools"],
)
def test_custom_tools_and_allowed_tools_reach_openai_only(
    junction: JunctionProcess, fakes: dict[str, Any], tools: list[Any], choice: Any, param: str
) -> None:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}], "tools": tools}
    if choice is not None:
        body["tool_choice"] = choice
    fakes["openai"].reset()
    answer = _chat(junction, {**body, "model": "openai/gpt-4o-mini"})
    assert answer.status_code == 200, answer.text
    sent = fakes["openai"].last.json()
    assert sent["tools"] == tools and sent.get("tool_choice") == choice
    for model in ("anthropic/claude-sonnet-4-5", "gemini/gemini-2.5-flash"):
        refused = _chat(junction, {**body, "model": model})
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["param"] == param


def _sse_events(junction: JunctionProcess, body: dict[str, Any]) -> list[dict[str, Any]]:
    with httpx.stream("POST", f"{junction.url}/v1/responses", json={**body, "stream": True}, timeout=20,
                      headers={"authorization": f"Bearer {junction.key}"}) as answer:
        assert answer.status_code == 200, answer.read()
        text = answer.read().decode()
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]


def test_a_failure_midway_is_response_failed_and_nothing_is_stored(
        junction: JunctionProcess, client: openai.OpenAI, fakes: dict[str, Any]) -> None:
    from tests.fakes.anthropic_upstream import AnthropicReply

    fakes["anthropic"].reset()
    fakes["anthropic"].script(AnthropicReply(text="Hello there, friend", error_midway=("overloaded_error", "busy")))
    events = _sse_events(junction, {"model": "anthropic/claude-sonnet-4-5", "input": "hi"})
    assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.failed"
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "server_error"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(failed["id"])


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_a_cut_answer_is_incomplete(junction: JunctionProcess, client: openai.OpenAI,
                                    provider: tuple[str, Any], stream: bool) -> None:
    model, fake = provider
    fake.queue_reply(Reply(text="It was a dark and", finish="length"))
    if stream:
        events = _sse_events(junction, {"model": model, "input": "A story", "max_output_tokens": 5})
        assert events[-1]["type"] == "response.incomplete"
        response = events[-1]["response"]
    else:
        response = client.responses.create(model=model, input="A story", max_output_tokens=5).model_dump()
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}


def test_images_reach_every_provider(client: openai.OpenAI, provider: tuple[str, Any]) -> None:
    from junction.testing.scripted_upstream import PIXEL_DATA_URL

    model, fake = provider
    fake.queue_reply(Reply(text="A pixel."))
    response = client.responses.create(model=model, input=[{"role": "user", "content": [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": PIXEL_DATA_URL, "detail": "low"}]}])
    assert response.output_text == "A pixel."
    seen = fake.last_seen()
    assert seen.images == [PIXEL_DATA_URL] and "What is this?" in seen.texts


def test_reasoning_effort_and_json_object_reach_openai_and_gemini(client: openai.OpenAI,
                                                                   fakes: dict[str, Any]) -> None:
    fakes["openai"].reset()
    fakes["openai"].queue_reply(Reply(text="{}"))
    client.responses.create(model="openai/gpt-4o-mini", input="JSON please", reasoning={"effort": "low"},
                            text={"format": {"type": "json_object"}}, top_p=0.9)
    sent = fakes["openai"].last.json()
    assert sent["reasoning_effort"] == "low" and sent["response_format"] == {"type": "json_object"}
    assert sent["top_p"] == 0.9
    fakes["gemini"].reset()
    fakes["gemini"].queue_reply(Reply(text="ok"))
    client.responses.create(model="gemini/gemini-2.5-flash", input="think", reasoning={"effort": "high"})
    config = fakes["gemini"].last.json()["generationConfig"]
    assert config["thinkingConfig"]["thinkingBudget"] > 0


def test_the_master_key_stores_in_the_org_it_names(junction: JunctionProcess, fakes: dict[str, Any]) -> None:
    org = _admin(junction, "/api/v1/admin/orgs", {"name": "named"})["id"]
    member = _admin(junction, "/api/v1/admin/keys", {"org_id": org, "name": "m", "scopes": ["chat"]})["key"]
    admin = _admin(junction, "/api/v1/admin/keys", {"org_id": org, "name": "a", "scopes": ["chat", "admin"]})["key"]
    fakes["openai"].reset()
    fakes["openai"].queue_reply(Reply(text="stored"))
    created = httpx.post(f"{junction.url}/v1/responses", timeout=10, json={"model": "openai/gpt-4o-mini", "input": "x"},
                         headers={"authorization": f"Bearer {junction.key}", "x-junction-org-id": org}).json()

    def read(key: str) -> int:
        return httpx.get(f"{junction.url}/v1/responses/{created['id']}", timeout=10,
                         headers={"authorization": f"Bearer {key}"}).status_code

    assert read(admin) == 200 and read(member) == 404 and read(junction.key) == 200
