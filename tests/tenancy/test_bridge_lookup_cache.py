"""A master-key bridge call that names no org looks the bridge up in every org; after warm-up that
costs no store read (the org list and the per-org answers, found or not, are cached), and a change
made by another worker is seen within a second. Real PostgreSQL documents, real Redis change bus
(on a channel of its own, so other tests' changes do not disturb the counts)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from junction.domain.bridges.service import BridgeService
from junction.errors import InvalidRequest, NotFound
from junction.plugins.protocols import Principal
from junction.security.crypto import Cipher, EncryptionKey
from junction.stores.documents import open_document_store
from junction.stores.documents.bridges import NewBridge
from junction.stores.documents.protocol import DocumentStore
from junction.stores.notify import RedisChangeBus
from tests.tenancy.conftest import TENANCY_REDIS_DB

MASTER = Principal(id="master", kind="master", scopes=frozenset({"chat", "admin"}))
REDIS_URL = f"redis://127.0.0.1:6379/{TENANCY_REDIS_DB}"


class Counting:
    """The real repository; every call made through it is counted."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self.inner, name)

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return await method(*args, **kwargs)

        return counted


@dataclass
class Rig:
    #: Another worker: its mutations reach the service only through the Redis bus.
    writer: DocumentStore
    writer_bus: RedisChangeBus
    orgs: Counting
    bridges: Counting
    service: BridgeService
    slug: str

    @property
    def reads(self) -> int:
        return self.orgs.calls + self.bridges.calls

    async def bridge_in_new_org(self, name: str) -> str:
        org = await self.writer.orgs.create(name)
        await self.writer.bridges.create(
            org.id, NewBridge(slug=self.slug, name="n", model="openai/gpt-4o-mini")
        )
        return org.id


async def rig_for(postgres_documents: str, ttl: float) -> AsyncIterator[Rig]:
    channel = f"junction:test:bridge-lookup:{uuid.uuid4().hex}"
    cipher = Cipher([EncryptionKey(id="t", material=os.urandom(32))])
    buses = [RedisChangeBus(REDIS_URL, channel=channel) for _ in range(2)]
    stores = [open_document_store(postgres_documents, cipher=cipher, changes=bus) for bus in buses]
    for bus, store in zip(buses, stores, strict=True):
        await bus.start()
        await store.start()
    reader, writer = stores
    orgs, bridges = Counting(reader.orgs), Counting(reader.bridges)
    service = BridgeService(bridges, orgs, buses[0], ttl=ttl)  # type: ignore[arg-type]
    service.start()
    yield Rig(writer, buses[1], orgs, bridges, service, f"lookup-{uuid.uuid4().hex[:12]}")
    service.close()
    for bus, store in zip(buses, stores, strict=True):
        await store.close()
        await bus.close()


@pytest.fixture
async def rig(postgres_documents: str) -> AsyncIterator[Rig]:
    async for made in rig_for(postgres_documents, ttl=300.0):
        yield made


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 1.0) -> float:
    """Seconds until ``check()`` holds; fails after ``within``."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < within, "not seen within a second"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def outcome(rig: Rig, slug: str | None = None) -> str:
    """Which org the master key's call reaches, or why none."""
    try:
        return (await rig.service.find(MASTER, None, slug or rig.slug)).bridge.org_id
    except NotFound:
        return "not found"
    except InvalidRequest as error:
        assert error.param == "org_id"
        return "ambiguous"


async def test_lookups_without_an_org_make_no_store_reads_after_warm_up(rig: Rig) -> None:
    home = await rig.bridge_in_new_org("Home")
    for name in ("Empty 1", "Empty 2"):
        await rig.writer.orgs.create(name)
    missing = f"missing-{uuid.uuid4().hex[:12]}"
    await eventually(lambda: _is(outcome(rig), home))
    assert await outcome(rig, missing) == "not found"
    before = rig.reads
    for _ in range(50):
        assert await outcome(rig) == home
        assert await outcome(rig, missing) == "not found"
    assert rig.reads == before


async def test_created_and_deleted_orgs_are_seen_within_a_second(rig: Rig) -> None:
    first = await rig.bridge_in_new_org("First")
    await eventually(lambda: _is(outcome(rig), first))
    second = await rig.bridge_in_new_org("Second")
    await eventually(lambda: _is(outcome(rig), "ambiguous"))
    await rig.writer.orgs.delete(first)
    await eventually(lambda: _is(outcome(rig), second))
    await rig.writer.orgs.delete(second)
    await eventually(lambda: _is(outcome(rig), "not found"))


async def test_everything_changed_drops_the_cached_org_list(rig: Rig) -> None:
    home = await rig.bridge_in_new_org("Star")
    await eventually(lambda: _is(outcome(rig), home))
    listed = rig.orgs.calls
    await rig.writer_bus.publish("*", "*")  # what a subscriber hears after a gap in notifications
    await eventually(lambda: _is_read(rig, listed))


async def test_the_org_list_is_reread_after_the_ttl(postgres_documents: str) -> None:
    async for rig in rig_for(postgres_documents, ttl=0.2):
        home = await rig.bridge_in_new_org("Ttl")
        assert await outcome(rig) == home
        listed = rig.orgs.calls
        await asyncio.sleep(0.3)
        assert await outcome(rig) == home and rig.orgs.calls == listed + 1


async def _is(pending: Awaitable[str], expected: str) -> bool:
    return await pending == expected


async def _is_read(rig: Rig, listed: int) -> bool:
    await outcome(rig)
    return rig.orgs.calls > listed
