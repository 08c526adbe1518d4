"""Revocation holds while Redis is down (issue #16): two workers on PostgreSQL share a throwaway
``redis-server`` that is killed mid-test; a key revoked during the outage stops working on every
worker within about a second, and ``/readyz`` says the caches are not trusted."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from junction.testing.server import JunctionProcess
from junction.testing.upstream import free_port
from tests.fakes.openai_upstream import FakeOpenAI
from tests.stores.conftest import create_postgres_database, drop_postgres_database, run_junction_migrate
from tests.tenancy.conftest import MASTER, POSTGRES_SERVER, tenancy_config

pytestmark = pytest.mark.slow


@pytest.fixture
def redis_port(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    yield port, process
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    name = asyncio.run(create_postgres_database())
    url = f"{POSTGRES_SERVER}/{name}"
    (tmp_path / "migrate").mkdir()
    try:
        migrated = run_junction_migrate(tmp_path / "migrate", url)
        assert migrated.returncode == 0, migrated.stderr
        yield url
    finally:
        asyncio.run(drop_postgres_database(name))


def chat(server: JunctionProcess, key: str, model: str = "openai/gpt-4o-mini") -> int:
    # A new connection per request, so both workers take their share.
    response = httpx.post(f"{server.url}/v1/chat/completions", headers={"authorization": f"Bearer {key}",
                                                                        "connection": "close"},
                          json={"model": model, "messages": [{"role": "user", "content": "x"}]}, timeout=20)
    return response.status_code


def test_a_key_revoked_while_redis_is_down_stops_working_on_every_worker(
    tmp_path: Path, redis_port, postgres_url: str, fake_openai: FakeOpenAI
) -> None:
    port, redis_process = redis_port
    config = tenancy_config(fake_openai, postgres_url, 0).replace("127.0.0.1:6379/0", f"127.0.0.1:{port}/0")
    with JunctionProcess(tmp_path / "gw", config, master_key=MASTER, workers=2) as server:
        master = {"authorization": f"Bearer {MASTER}"}
        org = httpx.post(f"{server.url}/api/v1/admin/orgs", json={"name": "outage"}, headers=master).json()
        key = httpx.post(f"{server.url}/api/v1/admin/keys", json={"org_id": org["id"], "name": "k"},
                         headers=master).json()
        other = httpx.post(f"{server.url}/api/v1/admin/keys", json={"org_id": org["id"], "name": "o"},
                           headers=master).json()
        bridge = httpx.post(f"{server.url}/api/v1/bridges", headers=master, json={
            "org_id": org["id"], "slug": "b", "name": "b", "model": "openai/gpt-4o-mini", "prompt": "p"}).json()
        # Every worker caches the keys and the bridge (valid for 300 s while the bus is up).
        assert [chat(server, key["key"]) for _ in range(20)] == [200] * 20
        assert [chat(server, other["key"], "bridge/b") for _ in range(20)] == [200] * 20
        assert httpx.get(f"{server.url}/readyz").status_code == 200

        os.kill(redis_process.pid, signal.SIGKILL)
        redis_process.wait()
        revoked = httpx.delete(f"{server.url}/api/v1/admin/keys/{key['id']}", headers=master, timeout=20)
        assert revoked.status_code in (200, 204), revoked.text
        revoked_at = time.monotonic()
        paused = httpx.patch(f"{server.url}/api/v1/bridges/{bridge['id']}", headers=master,
                             json={"status": "paused"}, timeout=20)
        assert paused.status_code == 200, paused.text

        time.sleep(1.5)
        statuses = [chat(server, key["key"]) for _ in range(30)]
        late = time.monotonic() - revoked_at
        assert statuses == [401] * 30, f"{statuses.count(200)} of 30 still served {late:.1f}s after revocation"
        bridge_calls = [chat(server, other["key"], "bridge/b") for _ in range(20)]
        assert bridge_calls == [403] * 20, f"{bridge_calls.count(200)} of 20 calls used the paused bridge"

        ready = httpx.get(f"{server.url}/readyz")
        assert ready.status_code == 503
        cache = next(check for check in ready.json()["checks"] if check["store"] == "cache")
        assert not cache["ok"]
        assert "read through to the store" in server.output()
