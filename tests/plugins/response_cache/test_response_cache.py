"""The response cache through a real ``junction serve`` on Redis (DB 4): hits, misses, bypass,
TTL, org and bridge-version isolation, and faithful replay of tool calls and reasoning as JSON and
SSE through the OpenAI and Anthropic ingresses."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest
import redis

from junction.testing.server import JunctionProcess
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI

pytestmark = pytest.mark.slow

REDIS_DB = 4
MASTER = "sk-test-master"
PREFIX = f"test-cache-{secrets.token_hex(4)}:"
WEATHER = [{"type": "function", "function": {"name": "weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}]


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[FakeOpenAI, FakeAnthropic]]:
    fakes = FakeOpenAI().start(), FakeAnthropic().start()
    yield fakes
    for fake in fakes:
        fake.stop()


@pytest.fixture(scope="module")
def gateway(upstreams, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JunctionProcess]:
    fake_openai, fake_anthropic = upstreams
    config = f"""
[stores]
cache = "redis://127.0.0.1:6379/{REDIS_DB}"

[providers.openai]
api_key = "{fake_openai.api_key}"
base_url = "{fake_openai.base_url}"

[providers.anthropic]
api_key = "{fake_anthropic.api_key}"
base_url = "{fake_anthropic.base_url}"

[middleware.response-cache]
enabled = true
key_prefix = "{PREFIX}"
"""
    with JunctionProcess(tmp_path_factory.mktemp("cache"), config, master_key=MASTER) as server:
        yield server
    client = redis.Redis.from_url(f"redis://127.0.0.1:6379/{REDIS_DB}")
    for key in client.scan_iter(match=f"{PREFIX}*"):
        client.delete(key)
    client.close()


@pytest.fixture
def fakes(upstreams) -> tuple[FakeOpenAI, FakeAnthropic]:
    for fake in upstreams:
        fake.reset()
    return upstreams


def post(server: JunctionProcess, body: dict, key: str = MASTER, path: str = "/v1/chat/completions",
         **headers: str) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, timeout=20,
                      headers={"authorization": f"Bearer {key}", **headers})


def unique(text: str = "hello") -> str:
    return f"{text} {secrets.token_hex(6)}"


def chat(text: str, model: str = "openai/gpt-4o-mini", **fields) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": text}], **fields}


def test_a_repeat_is_a_hit_answered_without_the_upstream(gateway, fakes):
    fake_openai, _ = fakes
    body = chat(unique(), temperature=0)
    first = post(gateway, body)
    assert first.status_code == 200 and first.headers["x-junction-cache"] == "miss"
    second = post(gateway, body)
    assert second.status_code == 200 and second.headers["x-junction-cache"] == "hit"
    assert int(second.headers["age"]) >= 0
    assert second.json()["choices"] == first.json()["choices"] and second.json()["usage"] == first.json()["usage"]
    assert len(fake_openai.requests) == 1
    # `user` and `metadata` do not change the answer; a parameter that does is another entry
    assert post(gateway, {**body, "user": "someone-else"}).headers["x-junction-cache"] == "hit"
    assert post(gateway, {**body, "temperature": 0.5}).headers["x-junction-cache"] == "miss"
    assert len(fake_openai.requests) == 2


def test_cache_control_no_cache_refreshes_and_no_store_bypasses(gateway, fakes):
    fake_openai, _ = fakes
    body = chat(unique())
    assert post(gateway, body).headers["x-junction-cache"] == "miss"
    fake_openai.script(text="a fresher answer")
    refreshed = post(gateway, body, **{"cache-control": "no-cache"})
    assert refreshed.headers["x-junction-cache"] == "bypass"
    assert len(fake_openai.requests) == 2
    time.sleep(0.2)  # the store happens after the answer went out
    hit = post(gateway, body)
    assert hit.headers["x-junction-cache"] == "hit"
    assert hit.json()["choices"][0]["message"]["content"] == "a fresher answer"
    skipped = post(gateway, body, **{"cache-control": "no-store"})
    assert skipped.headers["x-junction-cache"] == "bypass" and len(fake_openai.requests) == 3


def test_ttl_header_expires_the_entry_and_bad_ttl_is_a_400(gateway, fakes):
    fake_openai, _ = fakes
    body = chat(unique())
    assert post(gateway, body, **{"x-junction-cache-ttl": "1"}).headers["x-junction-cache"] == "miss"
    assert post(gateway, body).headers["x-junction-cache"] == "hit"
    time.sleep(1.2)
    assert post(gateway, body).headers["x-junction-cache"] == "miss"
    assert len(fake_openai.requests) == 2
    bad = post(gateway, body, **{"x-junction-cache-ttl": "soon"})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "x-junction-cache-ttl" and bad.json()["error"]["code"] == "invalid_cache_ttl"


def test_an_org_never_sees_another_orgs_answer(gateway, fakes):
    fake_openai, _ = fakes
    keys = []
    for name in ("Org A", "Org B"):
        org = post(gateway, {"name": name}, path="/api/v1/admin/orgs").json()
        created = post(gateway, {"org_id": org["id"], "name": "app"}, path="/api/v1/admin/keys").json()
        keys.append(created["key"])
    body = chat(unique())
    fake_openai.script(text="for org A only")
    assert post(gateway, body, key=keys[0]).headers["x-junction-cache"] == "miss"
    time.sleep(0.1)
    other = post(gateway, body, key=keys[1])
    assert other.headers["x-junction-cache"] == "miss"
    assert other.json()["choices"][0]["message"]["content"] != "for org A only"
    assert post(gateway, body, key=keys[0]).headers["x-junction-cache"] == "hit"
    assert len(fake_openai.requests) == 2


def test_a_new_bridge_version_is_a_new_entry(gateway, fakes):
    fake_openai, _ = fakes
    org = post(gateway, {"name": "Bridges"}, path="/api/v1/admin/orgs").json()
    key = post(gateway, {"org_id": org["id"], "name": "app"}, path="/api/v1/admin/keys").json()["key"]
    slug = f"b-{secrets.token_hex(3)}"
    bridge = post(gateway, {"org_id": org["id"], "slug": slug, "name": "B", "model": "openai/gpt-4o-mini",
                            "prompt": "Be brief."}, path="/api/v1/bridges").json()
    versions = f"/api/v1/bridges/{bridge['id']}/versions"
    body = chat("same question", model=f"bridge/{slug}")

    def publish(version: int) -> None:
        assert post(gateway, {}, path=versions).json()["version"] == version
        assert post(gateway, {}, path=f"{versions}/{version}/publish").status_code in (200, 201)
        time.sleep(0.3)  # the published version reaches the worker's bridge cache

    publish(1)
    assert post(gateway, body, key=key).headers["x-junction-cache"] == "miss"
    time.sleep(0.1)
    assert post(gateway, body, key=key).headers["x-junction-cache"] == "hit"
    publish(2)  # the same prompt, a new version: not the same entry
    assert post(gateway, body, key=key).headers["x-junction-cache"] == "miss"
    assert len(fake_openai.requests) == 2


def openai_sdk(server: JunctionProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=MASTER, max_retries=0)


def anthropic_sdk(server: JunctionProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key=MASTER, max_retries=0)


def openai_stream(server: JunctionProcess, text: str, model: str) -> tuple[str, dict, list]:
    with openai_sdk(server).chat.completions.with_streaming_response.create(
            model=model, messages=[{"role": "user", "content": text}], tools=WEATHER, stream=True,
            stream_options={"include_usage": True}) as response:
        chunks = list(response.parse())
        return response.headers["x-junction-cache"], response.headers, chunks


def summary_of_chunks(chunks: list) -> dict:
    text, reasoning, calls, finish, usage = [], [], {}, None, None
    for chunk in chunks:
        if chunk.usage is not None:
            usage = chunk.usage.model_dump()
        for choice in chunk.choices:
            delta = choice.delta
            text.append(delta.content or "")
            reasoning.append(getattr(delta, "reasoning", None) or "")
            for call in delta.tool_calls or ():
                slot = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                slot["id"] += call.id or ""
                slot["name"] += (call.function.name or "") if call.function else ""
                slot["arguments"] += (call.function.arguments or "") if call.function else ""
            finish = choice.finish_reason or finish
    return {"text": "".join(text), "reasoning": "".join(reasoning), "calls": calls, "finish": finish, "usage": usage}


def test_streamed_tool_calls_replay_as_sse_and_as_json(gateway, fakes):
    fake_openai, _ = fakes
    text = unique("weather in Paris?")
    fake_openai.script(text="Checking.", tool_calls=[{"id": "call_1", "name": "weather", "arguments": '{"city": "Paris"}'}])
    state, _, chunks = openai_stream(gateway, text, "openai/gpt-4o-mini")
    assert state == "miss"
    time.sleep(0.1)
    state, _, replayed = openai_stream(gateway, text, "openai/gpt-4o-mini")
    assert state == "hit" and len(fake_openai.requests) == 1
    original, replay = summary_of_chunks(chunks), summary_of_chunks(replayed)
    assert replay == original
    assert replay["calls"] == {0: {"id": "call_1", "name": "weather", "arguments": '{"city": "Paris"}'}}
    assert replay["finish"] == "tool_calls" and replay["usage"]["total_tokens"] == 18
    # the same entry answers a JSON request (not streamed), assembled from the stored events
    reply = openai_sdk(gateway).chat.completions.with_raw_response.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": text}], tools=WEATHER)
    assert reply.headers["x-junction-cache"] == "hit"
    message = reply.parse().choices[0].message
    assert message.content == "Checking." and message.tool_calls[0].function.arguments == '{"city": "Paris"}'
    assert len(fake_openai.requests) == 1


def test_reasoning_and_tool_calls_replay_through_both_ingresses(gateway, fakes):
    _, fake_anthropic = fakes
    text = unique("think, then call the tool")
    model = "anthropic/claude-sonnet-4-5"
    fake_anthropic.script(thinking="Paris is in France.", signature="sig-123", text="Let me check.",
                          tool_calls=[{"id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}],
                          stop_reason="tool_use")
    state, _, chunks = openai_stream(gateway, text, model)
    assert state == "miss"
    time.sleep(0.1)
    state, _, replayed = openai_stream(gateway, text, model)
    assert state == "hit" and len(fake_anthropic.requests) == 1
    replay = summary_of_chunks(replayed)
    assert replay == summary_of_chunks(chunks)
    assert replay["reasoning"] == "Paris is in France." and replay["text"] == "Let me check."
    assert replay["calls"][0]["name"] == "weather" and replay["finish"] == "tool_calls"

    # the Anthropic ingress, streamed (its request sets max_tokens, so it is an entry of its own):
    # the hit replays thinking with its signature, text, tool_use and usage as the miss had them
    fake_anthropic.script(thinking="Paris is in France.", signature="sig-123", text="Let me check.",
                          tool_calls=[{"id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}],
                          stop_reason="tool_use")
    client = anthropic_sdk(gateway)
    request = {"model": model, "max_tokens": 1024, "tools": [{"name": "weather", "input_schema": {
        "type": "object", "properties": {"city": {"type": "string"}}}}],
               "messages": [{"role": "user", "content": text}]}
    response = client.messages.with_raw_response.create(**request, stream=True)
    assert response.headers["x-junction-cache"] == "miss"
    events = list(response.parse())
    time.sleep(0.1)
    response = client.messages.with_raw_response.create(**request, stream=True)
    assert response.headers["x-junction-cache"] == "hit"
    replayed_events = list(response.parse())
    assert len(fake_anthropic.requests) == 2
    assert [event.type for event in replayed_events] == [event.type for event in events]
    kinds = [event.type for event in replayed_events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    starts = [event.content_block for event in replayed_events if event.type == "content_block_start"]
    assert [block.type for block in starts] == ["thinking", "text", "tool_use"]
    deltas = [event.delta for event in replayed_events if event.type == "content_block_delta"]
    assert "".join(d.thinking for d in deltas if d.type == "thinking_delta") == "Paris is in France."
    assert [d.signature for d in deltas if d.type == "signature_delta"] == ["sig-123"]
    assert "".join(d.partial_json for d in deltas if d.type == "input_json_delta").replace(" ", "") == '{"city":"Paris"}'
    final = next(event for event in replayed_events if event.type == "message_delta")
    assert final.delta.stop_reason == "tool_use" and final.usage.output_tokens == 12

    # and as JSON through the Anthropic ingress: the signed thinking block comes back whole
    message = client.messages.with_raw_response.create(**request)
    assert message.headers["x-junction-cache"] == "hit"
    blocks = message.parse().content
    assert [block.type for block in blocks] == ["thinking", "text", "tool_use"]
    assert blocks[0].signature == "sig-123" and blocks[2].input == {"city": "Paris"}


def test_failed_answers_are_not_stored(gateway, fakes):
    fake_openai, _ = fakes
    body = chat(unique())
    fake_openai.fail_next(500, {"error": {"message": "boom", "type": "server_error"}})
    assert post(gateway, body).status_code == 502
    assert post(gateway, body).headers["x-junction-cache"] == "miss"
    assert len(fake_openai.requests) == 2
