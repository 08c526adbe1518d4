"""Redis slow, then down, then back, under the response cache and the circuit breaker: a throwaway
``redis-server`` on its own port, paused (``DEBUG SLEEP``) and killed mid-traffic and restarted,
in front of two gateways — one failing open, one failing closed. Latency stays bounded throughout
and both recover once Redis answers again."""

from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from junction.testing.server import JunctionProcess
from junction.testing.upstream import free_port
from tests.fakes.openai_upstream import FakeOpenAI

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the redis-server binary")]

MASTER = "sk-test-master"
TIMEOUT = 0.25
RETRY = 1.0


class ThrowawayRedis:
    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if subprocess.run(["redis-cli", "-p", str(self.port), "ping"], check=False, capture_output=True).stdout.strip() == b"PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("the throwaway redis-server did not start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def pause(self, seconds: float) -> None:
        """Make Redis unresponsive for ``seconds``: the process is stopped (SIGSTOP), so
        connections stay open and nothing answers, like a Redis stuck on a slow command."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        threading.Timer(seconds, self.process.send_signal, args=(signal.SIGCONT,)).start()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


def config(store: ThrowawayRedis, upstream: FakeOpenAI, on_error: str) -> str:
    guard = f'on_store_error = "{on_error}"\nstore_timeout_seconds = {TIMEOUT}\nstore_retry_seconds = {RETRY}\n'
    return f"""
[stores]
cache = "redis://127.0.0.1:{store.port}/0"

[providers.openai]
api_key = "{upstream.api_key}"
base_url = "{upstream.base_url}"

[middleware.response-cache]
enabled = true
{guard}
[middleware.circuit-breaker]
enabled = true
refresh_seconds = 0
{guard}"""


@pytest.fixture(scope="module")
def gateways(store, upstream, tmp_path_factory) -> Iterator[dict[str, JunctionProcess]]:
    servers = {mode: JunctionProcess(tmp_path_factory.mktemp(mode), config(store, upstream, mode), master_key=MASTER)
               for mode in ("open", "closed")}
    try:
        for server in servers.values():
            server.start()
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def ask(server: JunctionProcess, text: str) -> tuple[int, str | None, float, dict]:
    started = time.monotonic()
    response = httpx.post(f"{server.url}/v1/chat/completions", timeout=10, headers={"authorization": f"Bearer {MASTER}"},
                          json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": text}]})
    return response.status_code, response.headers.get("x-junction-cache"), time.monotonic() - started, response.json()


def traffic(server: JunctionProcess, seconds: float) -> list[tuple[int, str | None, float, dict]]:
    results, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        results.append(ask(server, f"outage {secrets.token_hex(4)}"))
    return results


def test_slow_then_dead_redis_costs_bounded_latency_and_both_recover(store, gateways):
    for server in gateways.values():  # all well: a miss, then a hit
        text = f"before {secrets.token_hex(4)}"
        assert ask(server, text)[1] == "miss"
        time.sleep(0.05)
        assert ask(server, text)[1] == "hit"

    store.pause(1.5)  # slow: every store call times out after TIMEOUT
    for mode, server in gateways.items():
        status, state, elapsed, body = ask(server, f"slow {secrets.token_hex(4)}")
        assert elapsed < 1.0, f"{mode}: {elapsed:.2f}s"  # bounded by the store timeouts, not the 1.5 s pause
        if mode == "open":
            assert (status, state) == (200, "bypass")
        else:
            assert status == 503 and body["error"]["code"] == "store_unavailable"
    time.sleep(1.3)

    store.kill()  # down, mid-traffic
    for mode, server in gateways.items():
        results = traffic(server, 1.5)
        assert len(results) >= 5
        assert max(elapsed for *_, elapsed, _ in results) < 1.0, mode
        # after the first failure the guard skips the store: later calls pay no timeout at all
        assert sorted(elapsed for *_, elapsed, _ in results)[len(results) // 2] < 0.2, mode
        if mode == "open":
            assert {(status, state) for status, state, _, _ in results} == {(200, "bypass")}
        else:
            assert {status for status, *_ in results} == {503}
            assert {body["error"]["code"] for *_, body in results} == {"store_unavailable"}

    store.start()  # back: within store_retry_seconds both use the cache again
    time.sleep(RETRY + 0.3)
    for server in gateways.values():
        text = f"after {secrets.token_hex(4)}"
        deadline = time.monotonic() + 5
        while (first := ask(server, text))[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert first[:2] == (200, "miss")
        time.sleep(0.05)
        assert ask(server, text)[:2] == (200, "hit")
