"""The semantic cache through a real ``junction serve`` with the real local model and Redis (DB 12):
a paraphrase is served; enable/disable, 3/30 and a different entity are refused though they pass
the similarity threshold; orgs never share entries; tool-calling turns are never cached; shadow
mode serves nothing and measures the hit precision."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from junction.testing.server import JunctionProcess
from tests.conftest import openai_provider_table
from tests.fakes.openai_upstream import FakeOpenAI
from tests.knowledge.conftest import LOCAL_ENV, MASTER, REDIS_DB, Admin, requires_local_model

pytestmark = [pytest.mark.slow, requires_local_model]
PREFIX = f"test-semcache-{secrets.token_hex(4)}:"
WEATHER = [{"type": "function", "function": {"name": "weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


def start_gateway(directory, upstream: FakeOpenAI, mode: str) -> JunctionProcess:
    """A gateway (not started yet) with the semantic cache in ``mode``."""
    # A low threshold on purpose: every near-miss below passes it, so the guard alone refuses them.
    config = openai_provider_table(upstream) + f"""
[providers.local]

[stores]
cache = "redis://127.0.0.1:6379/{REDIS_DB}"

[middleware.semantic-cache]
enabled = true
mode = "{mode}"
threshold = 0.6
key_prefix = "{PREFIX}{mode}:"
"""
    return JunctionProcess(directory, config, master_key=MASTER, env=LOCAL_ENV)


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory) -> Iterator[JunctionProcess]:
    server = start_gateway(tmp_path_factory.mktemp("semcache"), upstream, "serve")
    try:
        yield server.start(timeout=120)
    finally:
        server.stop()
    client = redis.Redis.from_url(f"redis://127.0.0.1:6379/{REDIS_DB}")
    for key in client.scan_iter(match=f"{PREFIX}*"):
        client.delete(key)
    client.close()


@pytest.fixture(scope="module")
def orgs(gateway) -> tuple[str, str]:
    admin = Admin(gateway.url)
    return admin.org_with_key("semcache-a")[1], admin.org_with_key("semcache-b")[1]


def ask(server: JunctionProcess, key: str, question: str, **fields) -> httpx.Response:
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "system", "content": "Be brief."},
                                                        {"role": "user", "content": question}], **fields}
    response = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=120,
                          headers={"authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    time.sleep(0.3)  # the entry is stored after the answer went out
    return response


def chats(upstream: FakeOpenAI) -> int:
    return sum(1 for request in upstream.requests if request.path.endswith("/chat/completions"))


def test_a_paraphrase_is_served_from_the_cache(gateway, orgs, upstream):
    key = orgs[0]
    upstream.reset()
    upstream.script(text="Open Settings, then Security, then Reset password.")
    first = ask(gateway, key, "How do I reset my password?")
    assert first.headers["x-junction-semantic-cache"] == "miss"
    second = ask(gateway, key, "How can I reset my password?")
    assert second.headers["x-junction-semantic-cache"] == "hit"
    assert float(second.headers["x-junction-semantic-cache-similarity"]) > 0.9
    assert second.json()["choices"][0]["message"]["content"] == "Open Settings, then Security, then Reset password."
    assert chats(upstream) == 1
    streamed = httpx.post(f"{gateway.url}/v1/chat/completions", timeout=120, headers={"authorization": f"Bearer {key}"},
                          json={"model": "openai/gpt-4o-mini", "stream": True, "messages": [
                              {"role": "system", "content": "Be brief."},
                              {"role": "user", "content": "What's the way to reset my password?"}]})
    assert streamed.headers["x-junction-semantic-cache"] == "hit" and "Reset password" in streamed.text
    assert chats(upstream) == 1


@pytest.mark.parametrize("cached, asked, reason", [
    ("How do I enable two-factor authentication?", "How do I disable two-factor authentication?", "negation"),
    ("Can I get a refund within 3 days?", "Can I get a refund within 30 days?", "number"),
    ("How do I install Junction on Ubuntu?", "How do I install Junction on Debian?", "entity"),
])
def test_near_misses_are_refused(gateway, orgs, upstream, cached, asked, reason):
    key = orgs[0]
    upstream.reset()
    assert ask(gateway, key, cached).headers["x-junction-semantic-cache"] == "miss"
    refused = ask(gateway, key, asked)
    assert refused.headers["x-junction-semantic-cache"] == "miss"
    assert refused.headers["x-junction-semantic-cache-refused"] == reason
    assert chats(upstream) == 2  # both went upstream
    # and the refused question now has its own entry
    assert ask(gateway, key, asked).headers["x-junction-semantic-cache"] == "hit"


def test_orgs_never_share_entries(gateway, orgs, upstream):
    upstream.reset()
    question = f"What is the office wifi password for floor {secrets.randbelow(900) + 100}?"
    assert ask(gateway, orgs[0], question).headers["x-junction-semantic-cache"] == "miss"
    assert ask(gateway, orgs[0], question).headers["x-junction-semantic-cache"] == "hit"
    assert ask(gateway, orgs[1], question).headers["x-junction-semantic-cache"] == "miss"
    assert chats(upstream) == 2


def test_tool_calling_turns_are_never_cached(gateway, orgs, upstream):
    upstream.reset()
    for _ in range(2):
        response = ask(gateway, orgs[0], "What is the weather in Oslo?", tools=WEATHER)
        assert response.headers["x-junction-semantic-cache"] == "skip"
    assert chats(upstream) == 2
    # an answer that calls a tool is not stored either (the request itself had no tools)
    upstream.script(tool_calls=[{"id": "call_1", "name": "weather", "arguments": '{"city": "Oslo"}'}])
    assert ask(gateway, orgs[0], "Weather in Bergen now?").headers["x-junction-semantic-cache"] == "miss"
    assert ask(gateway, orgs[0], "Weather in Bergen now?").headers["x-junction-semantic-cache"] == "miss"


def test_shadow_mode_serves_nothing_and_measures_hit_precision(upstream, tmp_path_factory):
    server = start_gateway(tmp_path_factory.mktemp("semcache-shadow"), upstream, "shadow").start(timeout=120)
    try:
        admin = Admin(server.url)
        org, key = admin.org_with_key("semcache-shadow")
        upstream.reset()
        upstream.script(text="Press the power button for ten seconds.")
        upstream.script(text="Press the power button for ten seconds.")
        upstream.script(text="Volcanoes erupt when magma rises.")
        assert ask(server, key, "How do I restart the router?").headers["x-junction-semantic-cache"] == "miss"
        assert ask(server, key, "How can I restart the router?").headers["x-junction-semantic-cache"] == "shadow-hit"
        assert ask(server, key, "What's the way to restart the router?").headers["x-junction-semantic-cache"] == \
            "shadow-hit"
        assert chats(upstream) == 3  # every call went upstream
        deadline = time.monotonic() + 60  # the comparison of the answers runs after each answer went out
        while True:
            stats = admin.ok("GET", f"/api/v1/semantic-cache/stats?org_id={org}")
            if len(stats["samples"]) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert stats["mode"] == "shadow" and stats["shadow_hits"] == 2 and stats["shadow_agreed"] == 1
        assert stats["hit_precision"] == 0.5
        assert {s["agreed"] for s in stats["samples"]} == {True, False}
        assert all(s["cached_question"] == "How do I restart the router?" for s in stats["samples"])
        assert admin.call("GET", "/api/v1/semantic-cache/stats").status_code == 400  # master key names an org
    finally:
        server.stop()
