"""Routing through a real ``junction serve`` against a fake upstream whose models fail, time out,
answer 429 with Retry-After, say the prompt is too long, and recover: the deployments tried, in
order, the backoff, the headers, and circuit breakers shared by two nodes through Redis (DB 10)."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
import redis
from aiohttp import web

from junction.testing.server import JunctionProcess
from tests.fakes.openai_upstream import FakeOpenAI, ScriptedReply, openai_error

pytestmark = pytest.mark.slow

MASTER = "sk-test-master"
REDIS_DB = 10
PREFIX = f"test-breaker-{secrets.token_hex(4)}:"


class RoutedFake(FakeOpenAI):
    """A fake OpenAI whose models misbehave as scripted, each in turn: ``fake.plan("gpt-a", 500,
    "timeout", (429, 1), "context")`` makes the next four requests for gpt-a fail that way."""

    def __init__(self) -> None:
        super().__init__()
        self.plans: dict[str, list] = {}
        self.seen: list[tuple[str, float]] = []

    def plan(self, model: str, *steps) -> None:
        self.plans.setdefault(model, []).extend(steps)

    def reset(self) -> None:
        super().reset()
        self.plans.clear()
        self.seen.clear()

    def models_seen(self) -> list[str]:
        return [model for model, _ in self.seen]

    async def chat(self, request: web.Request) -> web.StreamResponse:
        model = json.loads(await request.read())["model"]
        self.seen.append((model, time.monotonic()))
        steps = self.plans.get(model)
        step = steps.pop(0) if steps else None
        if step == "timeout":  # longer than the gateway's read_timeout; never answers a later test's script
            await asyncio.sleep(3)
            return web.json_response(openai_error("late", "server_error"), status=504)
        elif step == "context":
            return web.json_response(openai_error(
                "This model's maximum context length is 8192 tokens. However, your messages resulted in "
                "9000 tokens.", "invalid_request_error", "context_length_exceeded", "messages"), status=400)
        elif isinstance(step, tuple):
            status, retry_after = step
            return web.json_response(openai_error("Rate limit reached", "requests", "rate_limit_exceeded"),
                                     status=status, headers={"retry-after": str(retry_after)})
        elif isinstance(step, int):
            return web.json_response(openai_error("The server had an error", "server_error"), status=step)
        return await super().chat(request)


@pytest.fixture(scope="module")
def upstream() -> Iterator[RoutedFake]:
    fake = RoutedFake().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(upstream: RoutedFake) -> RoutedFake:
    upstream.reset()
    return upstream


def provider_table(fake: RoutedFake) -> str:
    return f"""
[providers.openai]
api_key = "{fake.api_key}"
base_url = "{fake.base_url}"
read_timeout = 0.5
"""


@pytest.fixture(scope="module")
def gateway(upstream: RoutedFake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JunctionProcess]:
    config = provider_table(upstream) + """
[middleware.weighted]
retries_per_deployment = 1
backoff_seconds = 0.05
max_backoff_seconds = 2.0
deadline_seconds = 20

[models."chain"]
deployments = [{ model = "openai/gpt-a" }]
fallbacks = ["openai/gpt-b", "openai/gpt-c"]

[models."limited"]
deployments = [{ model = "openai/gpt-r" }]
fallbacks = ["openai/gpt-c"]

[models."small"]
deployments = [{ model = "openai/gpt-small" }]
fallbacks = ["openai/gpt-other"]
context_fallbacks = ["openai/gpt-large"]

[models."strict"]
deployments = [{ model = "openai/gpt-a" }]
fallbacks = ["openai/gpt-c"]
fallback_on = ["rate_limit_error"]
"""
    with JunctionProcess(tmp_path_factory.mktemp("routing"), config, master_key=MASTER) as server:
        yield server


def ask(server: JunctionProcess, model: str, **fields) -> httpx.Response:
    with httpx.Client(timeout=30) as client:
        return client.post(f"{server.url}/v1/chat/completions", headers={"authorization": f"Bearer {MASTER}"},
                           json={"model": model, "messages": [{"role": "user", "content": "hi"}], **fields})


def test_failures_move_along_the_fallbacks_in_order(gateway, fake):
    fake.plan("gpt-a", 500, 502)
    fake.plan("gpt-b", "timeout", "timeout")
    reply = ask(gateway, "chain")
    assert reply.status_code == 200, reply.text
    # each deployment retried once (retries_per_deployment = 1), then the next fallback
    assert fake.models_seen() == ["gpt-a", "gpt-a", "gpt-b", "gpt-b", "gpt-c"]
    assert reply.headers["x-junction-deployment"] == "openai/gpt-c"
    assert reply.headers["x-junction-fallback"] == "true"
    assert reply.headers["x-junction-first-failure"] == "upstream_error"


def test_a_429_retry_after_is_honoured_before_the_same_deployment_is_retried(gateway, fake):
    fake.plan("gpt-r", (429, 1))
    reply = ask(gateway, "limited")
    assert reply.status_code == 200
    assert fake.models_seen() == ["gpt-r", "gpt-r"]
    (_, first), (_, second) = fake.seen
    assert second - first >= 1.0  # Retry-After: 1, not the 0.05 s backoff
    assert reply.headers["x-junction-first-failure"] == "rate_limit_error"
    assert "x-junction-fallback" in reply.headers and reply.headers["x-junction-deployment"] == "openai/gpt-r"


def test_every_deployment_failing_returns_the_last_error(gateway, fake):
    fake.plan("gpt-r", 500, 500)
    fake.plan("gpt-c", 503, 503)
    reply = ask(gateway, "limited")
    assert reply.status_code == 503 and reply.json()["error"]["type"] == "overloaded_error"
    assert fake.models_seen() == ["gpt-r", "gpt-r", "gpt-c", "gpt-c"]


def test_a_prompt_too_long_goes_straight_to_a_larger_context_window(gateway, fake):
    fake.plan("gpt-small", "context")
    reply = ask(gateway, "small")
    assert reply.status_code == 200, reply.text
    assert fake.models_seen() == ["gpt-small", "gpt-large"]  # not retried, not the plain fallback
    assert reply.headers["x-junction-deployment"] == "openai/gpt-large"


def test_fallback_on_limits_which_failures_reach_an_aliases_fallbacks(gateway, fake):
    fake.plan("gpt-a", 500, 500)
    reply = ask(gateway, "strict")
    assert reply.status_code == 502
    assert fake.models_seen() == ["gpt-a", "gpt-a"]  # a 5xx is retried, but not a reason to fall back
    fake.reset()
    fake.plan("gpt-a", (429, 0), (429, 0))
    assert ask(gateway, "strict").status_code == 200
    assert fake.models_seen() == ["gpt-a", "gpt-a", "gpt-c"]


def test_a_stream_that_sent_bytes_is_never_retried(gateway, fake):
    fake.script(ScriptedReply(text="partial answer then nothing", truncate=True))
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=MASTER, max_retries=0)
    received = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(model="chain", stream=True,
                                                     messages=[{"role": "user", "content": "hi"}]):
            received.extend(choice.delta.content or "" for choice in chunk.choices)
    assert "".join(received).startswith("part")
    assert fake.models_seen() == ["gpt-a"]  # the failure after the first bytes went to the client


# --- circuit breakers shared by two nodes ---------------------------------------------------------


@pytest.fixture(scope="module")
def nodes(upstream: RoutedFake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[JunctionProcess]]:
    config = provider_table(upstream) + f"""
[stores]
cache = "redis://127.0.0.1:6379/{REDIS_DB}"

[middleware.circuit-breaker]
enabled = true
failure_threshold = 3
window_seconds = 30
open_seconds = 1.5
refresh_seconds = 0.2
key_prefix = "{PREFIX}"

[models."guarded"]
deployments = [{{ model = "openai/gpt-flaky" }}]
fallbacks = ["openai/gpt-solid"]
"""
    servers = [JunctionProcess(tmp_path_factory.mktemp(f"breaker{i}"), config, master_key=MASTER, workers=2)
               for i in range(2)]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()
        client = redis.Redis.from_url(f"redis://127.0.0.1:6379/{REDIS_DB}")
        for key in client.scan_iter(match=f"{PREFIX}*"):
            client.delete(key)
        client.close()


def test_a_breaker_opened_on_one_node_protects_the_other_then_half_opens_and_closes(nodes, fake):
    first, second = nodes
    fake.plan("gpt-flaky", 500, 500, 500)
    for _ in range(3):  # three failures (on either worker of the first node) open the breaker
        reply = ask(first, "guarded")
        assert reply.status_code == 200 and reply.headers["x-junction-deployment"] == "openai/gpt-solid"
    assert fake.models_seen() == ["gpt-flaky", "gpt-solid"] * 3
    opened_at = time.monotonic()

    fake.seen.clear()
    for _ in range(4):  # the other node (both workers) no longer sends gpt-flaky anything
        reply = ask(second, "guarded")
        assert reply.status_code == 200
        assert reply.headers["x-junction-first-failure"] == "overloaded_error"  # refused: circuit_open
    assert fake.models_seen() == ["gpt-solid"] * 4
    assert time.monotonic() - opened_at < 1.5

    time.sleep(max(0.0, 1.6 - (time.monotonic() - opened_at)))  # open_seconds passed: half-open
    fake.seen.clear()
    probe = ask(second, "guarded")  # one probe goes through; gpt-flaky has recovered
    assert probe.status_code == 200 and probe.headers["x-junction-deployment"] == "openai/gpt-flaky"
    time.sleep(0.3)  # every worker's view of the breaker is refreshed within refresh_seconds
    for node in (first, second, first, second):
        assert ask(node, "guarded").headers["x-junction-deployment"] == "openai/gpt-flaky"
    assert fake.models_seen() == ["gpt-flaky"] * 5


def test_a_failed_probe_opens_the_breaker_again(nodes, fake):
    first, second = nodes
    fake.plan("gpt-flaky", 500, 500, 500, 500)
    for _ in range(3):
        ask(first, "guarded")
    time.sleep(1.6)
    fake.seen.clear()
    assert ask(second, "guarded").headers["x-junction-deployment"] == "openai/gpt-solid"
    assert fake.models_seen() == ["gpt-flaky", "gpt-solid"]  # the probe failed
    fake.seen.clear()
    for node in (first, second, first):
        assert ask(node, "guarded").headers["x-junction-deployment"] == "openai/gpt-solid"
    assert fake.models_seen() == ["gpt-solid"] * 3  # open again


def test_cost_first_sends_the_alias_to_its_cheapest_deployment(upstream, tmp_path_factory):
    upstream.reset()
    config = provider_table(upstream) + """
[routing]
policy = "cost-first"

[models."any"]
deployments = [{ model = "openai/gpt-4o", weight = 100 }, { model = "openai/gpt-4o-mini" }]
"""
    with JunctionProcess(tmp_path_factory.mktemp("cost-first"), config, master_key=MASTER) as server:
        for _ in range(3):
            assert ask(server, "any").headers["x-junction-deployment"] == "openai/gpt-4o-mini"
        upstream.plan("gpt-4o-mini", 503)
        assert ask(server, "any").headers["x-junction-deployment"] == "openai/gpt-4o"  # then the next cheapest
    assert upstream.models_seen() == ["gpt-4o-mini"] * 4 + ["gpt-4o"]
