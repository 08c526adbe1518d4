"""The Runtime builds every store and client once per process: one Redis client (one pool) for
the change bus, thread history and plugins; SQL engines by store; HTTP clients by name; and it
starts and closes them in order. Real Redis and SQLite."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from junction.errors import ConfigError
from junction.plugins.protocols import ProviderConfig
from junction.runtime import Runtime
from junction.settings import settings_from_mapping
from junction.stores.notify import Change

RUNTIME_REDIS_DB = 13
REDIS_URL = f"redis://127.0.0.1:6379/{RUNTIME_REDIS_DB}"


def settings(tmp_path: Path, cache: str = REDIS_URL, **extra):
    return settings_from_mapping({
        "auth": {"master_key": "sk-runtime"},
        "server": {"data_dir": str(tmp_path)},
        "stores": {"documents": f"sqlite+aiosqlite:///{tmp_path}/docs.db", "cache": cache,
                   "metrics": f"sqlite+aiosqlite:///{tmp_path}/metrics.db"},
        **extra,
    })


async def clients_in_our_db(admin: aioredis.Redis) -> list[str]:
    """Names of the connections to this test's Redis database, other than ``admin``'s own."""
    own = await admin.client_id()
    return sorted(client.get("name", "") for client in await admin.client_list()
                  if int(client["db"]) == RUNTIME_REDIS_DB and int(client["id"]) != own)


async def test_one_shared_redis_client_serves_the_bus_the_threads_and_the_plugins(tmp_path):
    admin = aioredis.Redis.from_url(REDIS_URL)
    try:
        runtime = Runtime(settings(tmp_path))
        async with runtime:
            assert runtime.context.redis is runtime.redis
            heard: list[Change] = []
            runtime.changes.subscribe(heard.append)
            org = await runtime.documents.orgs.create("Runtime")  # published on the bus
            thread = await runtime.domain.threads.create(org.id, None)  # cached in Redis
            assert (await runtime.domain.threads.get(org.id, thread.id)).id == thread.id
            assert Change("org", org.id) in heard
            names = await clients_in_our_db(admin)
            assert names and set(names) == {"junction"}, names  # the bus's pub/sub connection included
        assert await clients_in_our_db(admin) == [], "closing the runtime closes the shared pool"
    finally:
        await admin.aclose()


async def test_engines_and_http_clients_are_built_once_and_closed(tmp_path):
    runtime = Runtime(settings(tmp_path, cache="memory://"))
    client = runtime.http.client("acme", ProviderConfig(base_url="http://127.0.0.1:9"))  # as plugins do in create
    async with runtime:
        assert runtime.redis is None and runtime.context.redis is None
        metrics = runtime.sql.engine("metrics")
        assert metrics is runtime.sql.engine("metrics")
        assert runtime.sql.engine("documents") is runtime.documents.database.engine
        with pytest.raises(ConfigError, match="stores.cache: not a SQL store"):
            runtime.sql.engine("cache")
        assert runtime.http.client("acme", ProviderConfig()) is client
        assert client.started  # started with the runtime
    assert not client.started  # closed with it


async def test_the_built_in_providers_take_their_pooled_clients_from_the_runtime(tmp_path):
    runtime = Runtime(settings(tmp_path, cache="memory://", providers={"openai": {"api_key": "sk-x"}}))
    provider = runtime.plugins.providers["openai"]
    assert provider.client is runtime.http.client("openai", provider.config)


async def test_a_failing_start_closes_what_was_started(tmp_path, monkeypatch):
    monkeypatch.setattr("junction.stores.notify.START_TIMEOUT_SECONDS", 0.5)
    broken = settings(tmp_path, cache="redis://127.0.0.1:1/0")  # nothing listens there
    runtime = Runtime(broken)
    with pytest.raises(ConfigError, match=r"stores.cache: redis://127.0.0.1:1/0: cannot subscribe within 0.5s. Start Redis"):
        await runtime.start()
    assert runtime.gateway is not None and runtime._started == []


async def test_admin_commands_build_the_runtime_without_plugins(tmp_path):
    runtime = Runtime(settings(tmp_path, cache="memory://"), with_plugins=False)
    assert runtime.plugins is None and runtime.gateway is None
    async with runtime:
        org = await runtime.documents.orgs.create("CLI")
        assert [o.id for o in await runtime.documents.orgs.list()] == [org.id]



async def test_closing_ends_the_jobs_sweeper_even_when_a_store_call_drops_the_cancel(tmp_path):
    """The embedded jobs' sweeper has ended, not merely been cancelled, when closing returns, even
    when the cancel is lost inside a store call (``asyncio.wait_for`` on Python 3.11 can return
    normally instead of raising it): before, the sweeper ran on into closed engines, and
    ``asyncio.run`` at a worker's exit could wait on it for ever."""
    runtime = Runtime(settings(tmp_path, cache="memory://"))
    swept = asyncio.Event()

    async def sweep_losing_a_cancel() -> None:
        swept.set()
        try:
            await asyncio.sleep(30)  # a store call in flight
        except asyncio.CancelledError:
            pass  # lost, as such a call can lose it

    async with runtime:
        jobs = runtime.jobs
        assert jobs is not None  # the embedded queue: its sweeper runs in this process
        jobs.sweep = sweep_losing_a_cancel  # the next turn of the sweeper calls it
        sweepers = [task for task in asyncio.all_tasks() if "_sweep_forever" in repr(task.get_coro())]
        assert len(sweepers) == 1
        sweepers[0].cancel()  # restart it on the slow sweep: the first real sweep may be done
        await asyncio.wait(sweepers)
        jobs._purger = asyncio.create_task(jobs._sweep_forever())
        await asyncio.wait_for(swept.wait(), 5)
        async with asyncio.timeout(10):
            await jobs.close()
        assert jobs._purger is None
    left = [task for task in asyncio.all_tasks() if "_sweep_forever" in repr(task.get_coro())]
    assert left == []
