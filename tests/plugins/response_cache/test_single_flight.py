"""Single-flight across nodes: N identical concurrent misses spread over two ``junction serve``
nodes sharing Redis (DB 10) make one upstream call; when that call fails, the waiting requests
are released at once instead of waiting out the bound."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis
from aiohttp import web

from junction.testing.server import JunctionProcess
from junction.testing.upstream import ScriptedError
from tests.fakes.openai_upstream import FakeOpenAI

pytestmark = pytest.mark.slow

REDIS_DB = 10
MASTER = "sk-test-master"
PREFIX = f"test-flight-{secrets.token_hex(4)}:"
N = 8


class SlowFailingOpenAI(FakeOpenAI):
    """Scripted errors arrive after a pause, like an upstream that times out inside."""

    async def error_response(self, scripted: ScriptedError) -> web.Response:
        await asyncio.sleep(0.6)
        return await super().error_response(scripted)


@pytest.fixture(scope="module")
def upstream() -> Iterator[SlowFailingOpenAI]:
    fake = SlowFailingOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def nodes(upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[JunctionProcess]]:
    config = f"""
[stores]
cache = "redis://127.0.0.1:6379/{REDIS_DB}"

[providers.openai]
api_key = "{upstream.api_key}"
base_url = "{upstream.base_url}"

[middleware.response-cache]
enabled = true
key_prefix = "{PREFIX}"
single_flight_seconds = 20
"""
    servers = [JunctionProcess(tmp_path_factory.mktemp(f"node{i}"), config, master_key=MASTER) for i in range(2)]
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


def ask(server: JunctionProcess, text: str) -> tuple[int, str | None, str, float]:
    started = time.monotonic()
    with httpx.Client(timeout=30) as client:  # a connection of its own
        response = client.post(f"{server.url}/v1/chat/completions",
                               headers={"authorization": f"Bearer {MASTER}"},
                               json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": text}]})
    content = response.json()["choices"][0]["message"]["content"] if response.status_code == 200 else ""
    return response.status_code, response.headers.get("x-junction-cache"), content, time.monotonic() - started


def concurrently(nodes: list[JunctionProcess], text: str) -> list[tuple[int, str | None, str, float]]:
    with ThreadPoolExecutor(N) as pool:
        return list(pool.map(lambda i: ask(nodes[i % 2], text), range(N)))


def test_identical_concurrent_misses_on_two_nodes_call_the_upstream_once(nodes, upstream):
    upstream.reset()
    upstream.script(text="the one answer", delay=0.6)
    results = concurrently(nodes, f"flight {secrets.token_hex(6)}")
    assert len(upstream.requests) == 1
    assert [status for status, *_ in results] == [200] * N
    assert {content for _, _, content, _ in results} == {"the one answer"}
    states = sorted(state for _, state, _, _ in results)
    assert states.count("miss") >= 1 and states.count("hit") >= N - 2, states


def test_a_failing_leader_releases_the_followers(nodes, upstream):
    upstream.reset()
    upstream.fail_next(500, {"error": {"message": "boom", "type": "server_error"}})
    results = concurrently(nodes, f"failing {secrets.token_hex(6)}")
    statuses = sorted(status for status, *_ in results)
    assert statuses.count(502) == 1 and statuses.count(200) == N - 1, statuses
    # released when the leader failed (~0.6 s), far inside the 20 s bound: each went upstream
    # itself, unless another released one had stored its answer by the time it arrived
    assert max(elapsed for *_, elapsed in results) < 5
    assert 2 <= len(upstream.requests) <= N
