"""A real ``junction serve`` on PostgreSQL (a fresh, migrated database) or SQLite, with Redis, for
the tenancy API tests: orgs, keys, credentials, bridges, threads and isolation between orgs."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from junction.testing.server import JunctionProcess
from tests.conftest import openai_provider_table
from tests.fakes.openai_upstream import FakeOpenAI
from tests.stores.conftest import create_postgres_database, drop_postgres_database, run_junction_migrate

#: Redis database reserved for these tests (flushed when they start).
TENANCY_REDIS_DB = 11
POSTGRES_SERVER = os.environ.get("JUNCTION_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432")
MASTER = "sk-test-master"
ENCRYPTION_KEY = base64.b64encode(bytes(range(100, 132))).decode()


def tenancy_config(fake: FakeOpenAI, documents_url: str, redis_db: int, extra: str = "") -> str:
    return (
        openai_provider_table(fake)
        + f"""
[stores]
documents = "{documents_url}"
cache = "redis://127.0.0.1:6379/{redis_db}"

[security]
encryption_keys = [{{ id = "test-1", key = "{ENCRYPTION_KEY}" }}]

[threads]
history_messages = 4
"""
        + extra
    )


@pytest.fixture(scope="session")
def postgres_documents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh PostgreSQL database migrated by ``junction migrate``; dropped afterwards."""
    name = asyncio.run(create_postgres_database())
    url = f"{POSTGRES_SERVER}/{name}"
    try:
        migrated = run_junction_migrate(tmp_path_factory.mktemp("migrate"), url)
        assert migrated.returncode == 0, migrated.stderr
        yield url
    finally:
        asyncio.run(drop_postgres_database(name))


@pytest.fixture(scope="session")
def tenancy_redis() -> Iterator[redis.Redis]:
    client = redis.Redis(host="127.0.0.1", port=6379, db=TENANCY_REDIS_DB)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(scope="session", params=["postgresql", "sqlite"])
def tenancy_server(
    request: pytest.FixtureRequest,
    fake_openai_server: FakeOpenAI,
    tenancy_redis: redis.Redis,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[JunctionProcess]:
    """The server on each SQL backend: the fresh PostgreSQL database, and an SQLite file."""
    directory: Path = tmp_path_factory.mktemp(f"tenancy-{request.param}")
    if request.param == "postgresql":
        documents = request.getfixturevalue("postgres_documents")
    else:
        documents = f"sqlite+aiosqlite:///{directory}/documents.db"
    config = tenancy_config(fake_openai_server, documents, TENANCY_REDIS_DB)
    with JunctionProcess(directory, config, master_key=MASTER) as server:
        yield server


@dataclass
class Api:
    """An HTTP client for one credential against the server."""

    client: httpx.Client
    key: str

    def request(self, method: str, path: str, body: Any = None, **params: Any) -> httpx.Response:
        return self.client.request(
            method, path, json=body, params=params or None, headers={"authorization": f"Bearer {self.key}"}
        )

    def ok(self, method: str, path: str, body: Any = None, status: int = 200, **params: Any) -> Any:
        response = self.request(method, path, body, **params)
        assert response.status_code == status, response.text
        return response.json() if response.content else None

    def chat(self, model: str, text: str = "hi", **fields: Any) -> httpx.Response:
        return self.request(
            "POST",
            "/v1/chat/completions",
            {"model": model, "messages": [{"role": "user", "content": text}], **fields},
        )

    def as_key(self, key: str) -> Api:
        return Api(self.client, key)


@pytest.fixture(scope="session")
def http(tenancy_server: JunctionProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tenancy_server.url, timeout=20) as client:
        yield client


@pytest.fixture
def master(http: httpx.Client) -> Api:
    return Api(http, MASTER)


@dataclass
class Tenant:
    """An org with an admin key (scopes chat + admin) and a chat-only key."""

    org_id: str
    admin: Api
    chat_key: Api
    admin_key_id: str
    chat_key_id: str


def new_tenant(master: Api, name: str) -> Tenant:
    org = master.ok("POST", "/api/v1/admin/orgs", {"name": name}, status=201)
    admin = master.ok(
        "POST",
        "/api/v1/admin/keys",
        {"org_id": org["id"], "name": "admin", "scopes": ["chat", "admin"]},
        status=201,
    )
    chat = master.ok("POST", "/api/v1/admin/keys", {"org_id": org["id"], "name": "app"}, status=201)
    return Tenant(org["id"], master.as_key(admin["key"]), master.as_key(chat["key"]), admin["id"], chat["id"])
