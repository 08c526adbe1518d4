"""Rate limits and budgets through real ``junction serve`` processes sharing a real Redis.

These tests own Redis databases 2 (two nodes sharing it) and 3 (single-node tests): each is
flushed when its fixture starts, never any other."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import openai_provider_table
from tests.fakes.openai_upstream import FakeOpenAI
from tests.stores.conftest import create_postgres_database, drop_postgres_database, run_junction_migrate
from tests.tenancy.conftest import ENCRYPTION_KEY, MASTER, POSTGRES_SERVER

TWO_NODES_REDIS_DB = 2
ONE_NODE_REDIS_DB = 3
MODEL = "openai/gpt-4o-mini"
#: gpt-4o-mini's shipped price, USD per token.
INPUT_PRICE, OUTPUT_PRICE = 0.15e-6, 0.60e-6


def traffic_config(fake: FakeOpenAI, documents: str, redis_url: str, extra: str = "") -> str:
    return openai_provider_table(fake) + f"""
[stores]
documents = "{documents}"
cache = "{redis_url}"

[security]
encryption_keys = [{{ id = "test-1", key = "{ENCRYPTION_KEY}" }}]

[middleware.rate-limit]
enabled = true
# A shared 2-core machine under 40 concurrent requests can take far longer than the default
# 0.25 s; these tests are about exactness, the Redis-down tests about the timeout.
store_timeout_seconds = 5.0

[middleware.budget]
enabled = true
store_timeout_seconds = 5.0
""" + extra


@pytest.fixture(scope="session")
def traffic_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh PostgreSQL database migrated by ``junction migrate``; dropped afterwards."""
    name = asyncio.run(create_postgres_database())
    url = f"{POSTGRES_SERVER}/{name}"
    try:
        migrated = run_junction_migrate(tmp_path_factory.mktemp("traffic-migrate"), url)
        assert migrated.returncode == 0, migrated.stderr
        yield url
    finally:
        asyncio.run(drop_postgres_database(name))


def flushed(db: int) -> redis.Redis:
    client = redis.Redis(host="127.0.0.1", port=6379, db=db)
    client.flushdb()
    return client


@dataclass
class Admin:
    """The master key against one node."""

    base: str

    def call(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        response = httpx.request(method, self.base + path, json=body, timeout=20,
                                 headers={"authorization": f"Bearer {MASTER}"})
        assert response.status_code == status, response.text
        return response.json() if response.content else None

    def org(self, name: str = "traffic", **limits: Any) -> str:
        return self.call("POST", "/api/v1/admin/orgs", {"name": name, **limits}, status=201)["id"]

    def key(self, org_id: str, **limits: Any) -> tuple[str, str]:
        issued = self.call("POST", "/api/v1/admin/keys", {"org_id": org_id, "name": "app", **limits}, status=201)
        return issued["id"], issued["key"]

    def key_usage(self, key_id: str) -> dict[str, Any]:
        return self.call("GET", f"/api/v1/admin/keys/{key_id}")["usage"]


def chat(base: str, key: str, *, model: str = MODEL, text: str = "hello", stream: bool = False,
         timeout: float = 20, **fields: Any) -> httpx.Response:
    """One request on a new connection (so concurrent ones spread over workers and nodes)."""
    body = {"model": model, "messages": [{"role": "user", "content": text}], "stream": stream, **fields}
    with httpx.Client(timeout=timeout) as client:
        response = client.post(f"{base}/v1/chat/completions", json=body,
                               headers={"authorization": f"Bearer {key}"})
        response.read()
        return response


def fire(count: int, bases: list[str], send: Callable[[str], httpx.Response]) -> list[httpx.Response]:
    """``count`` requests at once from as many threads, alternating between ``bases``."""
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda i: send(bases[i % len(bases)]), range(count)))


def error_of(response: httpx.Response) -> dict[str, Any]:
    return json.loads(response.content)["error"]


def eventually(check: Callable[[], Any], seconds: float = 5.0) -> Any:
    """``check()`` until it returns a truthy value (settles run just after the answer)."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)
