"""Redis slow, then dead, then back: a throwaway ``redis-server`` on its own port, shared by a
gateway configured to fail open and one configured to fail closed. Every request is answered
within a bounded time whatever Redis does; open lets calls through unlimited, closed refuses
them with 503 ``store_unavailable``; once Redis is back, limits apply again."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from junction.testing.server import JunctionProcess
from junction.testing.upstream import free_port
from tests.fakes.openai_upstream import FakeOpenAI
from tests.tenancy.conftest import MASTER
from tests.traffic.conftest import Admin, chat, error_of, traffic_config

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")]

TIMEOUT, RETRY = 0.2, 1.0
#: The longest any request may take while Redis is slow or down: one store timeout, plus the
#: gateway's own work on a loaded 2-core machine.
BOUND = 2.0


class ThrowawayRedis:
    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--enable-debug-command", "yes", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture(scope="module")
def throwaway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis(tmp_path_factory.mktemp("throwaway-redis"))
    server.start()
    yield server
    server.kill()


def node_config(fake: FakeOpenAI, directory: Path, redis_url: str, behaviour: str) -> str:
    guard = f"on_store_error = \"{behaviour}\"\nstore_timeout_seconds = {TIMEOUT}\nstore_retry_seconds = {RETRY}\n"
    return traffic_config(fake, f"sqlite+aiosqlite:///{directory}/documents.db", redis_url).replace(
        "store_timeout_seconds = 5.0\n", guard)


@pytest.fixture(scope="module")
def nodes(throwaway: ThrowawayRedis, fake_openai_server: FakeOpenAI,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[str, str, str]]]:
    """``{"open": (url, key, key id), "closed": (…)}``, each key limited to 1000 rpm and $10 a day."""
    found: dict[str, tuple[str, str, str]] = {}
    with JunctionProcess(d := tmp_path_factory.mktemp("open"), node_config(
            fake_openai_server, d, throwaway.url, "open"), master_key=MASTER) as opened, \
         JunctionProcess(e := tmp_path_factory.mktemp("closed"), node_config(
            fake_openai_server, e, throwaway.url, "closed"), master_key=MASTER) as closed:
        for name, server in (("open", opened), ("closed", closed)):
            admin = Admin(server.url)
            key_id, key = admin.key(admin.org(), rpm=1000, budget_usd=10.0, budget_period="day")
            found[name] = (server.url, key, key_id)
        yield found


def timed(base: str, key: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = chat(base, key, max_tokens=10, timeout=10)
    return response, time.monotonic() - started


def test_fail_open_and_closed_with_bounded_latency_while_redis_is_slow_down_and_back(
        throwaway: ThrowawayRedis, nodes: dict[str, tuple[str, str]], fake_openai: FakeOpenAI) -> None:
    for name in ("open", "closed"):  # healthy: limits apply
        response, _ = timed(*nodes[name][:2])
        assert response.status_code == 200 and response.headers["x-ratelimit-limit-requests"] == "1000"
    assert "unavailable" not in Admin(nodes["open"][0]).key_usage(nodes["open"][2])

    # Slow: Redis sleeps 3 s; each store call gives up after its 0.2 s timeout.
    sleeper = subprocess.Popen(["redis-cli", "-p", str(throwaway.port), "DEBUG", "SLEEP", "3"],
                               stdout=subprocess.DEVNULL)
    time.sleep(0.2)
    response, took = timed(*nodes["open"][:2])
    assert response.status_code == 200 and "x-ratelimit-limit-requests" not in response.headers
    assert took < BOUND, took
    response, took = timed(*nodes["closed"][:2])
    assert response.status_code == 503 and error_of(response)["code"] == "store_unavailable", response.text
    assert int(response.headers["retry-after"]) >= 1 and took < BOUND, took
    sleeper.wait()

    # Dead, mid-traffic: every request still answered within the bound, as configured.
    throwaway.kill()
    outcomes: dict[str, list[int]] = {"open": [], "closed": []}
    worst = 0.0
    stop = time.monotonic() + 2.5  # more than two breaker windows
    while time.monotonic() < stop:
        for name in ("open", "closed"):
            response, took = timed(*nodes[name][:2])
            outcomes[name].append(response.status_code)
            worst = max(worst, took)
    assert set(outcomes["open"]) == {200}, outcomes
    assert set(outcomes["closed"]) == {503}, outcomes
    assert worst < BOUND, worst
    # The admin API still answers, and says which parts it could not read (not an empty usage).
    url, _, key_id = nodes["open"]
    assert Admin(url).key_usage(key_id) == {"unavailable": ["rate-limit", "budget"]}

    # Back: after at most one breaker window, limits apply again on both.
    throwaway.start()
    time.sleep(RETRY + 0.2)
    for name in ("open", "closed"):
        def recovered(name: str = name) -> bool:
            response, _ = timed(*nodes[name][:2])
            return response.status_code == 200 and "x-ratelimit-limit-requests" in response.headers
        deadline = time.monotonic() + 5
        while not recovered() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert recovered(), name
