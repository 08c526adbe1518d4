"""A provider's connection pool full of long streams: the next request waits at most
``pool_timeout`` and gets 503 ``gateway_overloaded`` with Retry-After, not an upstream timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from junction.testing.server import JunctionProcess
from tests.conftest import openai_provider_table
from tests.fakes.openai_upstream import FakeOpenAI, ScriptedReply

pytestmark = pytest.mark.slow

CHAT = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def server(fake_openai_server: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JunctionProcess]:
    config = openai_provider_table(fake_openai_server, max_connections=2, pool_timeout=0.5, connect_timeout=10.0)
    with JunctionProcess(tmp_path_factory.mktemp("pool"), config) as started:
        yield started


def test_a_full_pool_answers_503_gateway_overloaded(server, fake_openai):
    hold = asyncio.Event()
    for _ in range(2):
        fake_openai.script(ScriptedReply(text="a long answer", hold=hold))
    headers = {"authorization": f"Bearer {server.key}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        streams = [client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) for _ in range(2)]
        opened = [stream.__enter__() for stream in streams]
        try:
            assert all(response.status_code == 200 for response in opened)
            started = time.monotonic()
            response = client.post("/v1/chat/completions", json=CHAT)
            waited = time.monotonic() - started
            assert response.status_code == 503, response.text
            error = response.json()["error"]
            assert error["code"] == "gateway_overloaded" and "max_connections" in error["message"]
            assert int(response.headers["retry-after"]) >= 1
            assert 0.4 < waited < 3, waited
        finally:
            fake_openai.set_event(hold)
            for stream in streams:
                stream.__exit__(None, None, None)
        assert len(fake_openai.requests) == 2  # the refused request never reached the upstream
        # the gateway frees the streams' connections once it has closed them, just after the client did
        deadline = time.monotonic() + 10
        while (status := client.post("/v1/chat/completions", json=CHAT).status_code) == 503:
            assert time.monotonic() < deadline, "the pool never freed up after the streams ended"
        assert status == 200
    assert "pool full" in server.output()
