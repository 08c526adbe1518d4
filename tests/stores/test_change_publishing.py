"""A committed mutation stays a success when its change cannot be published, and nobody keeps a
stale cache for it: the bus tells every subscriber to drop everything once Redis is back.

Real Redis throughout; one node's way to it runs through a relay the test cuts ("this node lost
Redis") while the other node keeps its own connection.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

import pytest

from junction.stores.documents.protocol import NewApiKey, ProviderSecret
from junction.stores.notify import EVERYTHING, Change, ChangeNotPublished, MemoryChangeBus, RedisChangeBus
from tests.stores.conftest import Backend
from tests.stores.redis_proxy import RedisRelay
from tests.stores.test_notify import REDIS_URL, wait_for


async def test_a_mutation_succeeds_and_is_logged_when_redis_is_lost(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    relay = RedisRelay()
    await relay.start()
    bus = RedisChangeBus(relay.url, f"junction:test:{secrets.token_hex(4)}")
    await bus.start()
    try:
        store = await backend.open(changes=bus)
        org = await store.orgs.create("before the outage")
        await relay.cut()

        with caplog.at_level(logging.ERROR, logger="junction.stores.documents"):
            issued = await store.keys.create(org.id, NewApiKey(name="shown once"))
            await store.credentials.put(org.id, "openai", ProviderSecret(api_key="sk-upstream-secret"))

        assert await store.keys.authenticate(issued.key) == issued.record  # saved, and handed back
        assert (await store.credentials.reveal(org.id, "openai")) == ProviderSecret(
            api_key="sk-upstream-secret"
        )
        failures = [record for record in caplog.records if record.levelno == logging.ERROR]
        assert any(f"key {issued.record.id}" in record.getMessage() for record in failures)
        assert any(f"credential {org.id}/openai" in record.getMessage() for record in failures)
        for secret in (issued.key, issued.record.secret_hash, "sk-upstream-secret"):
            assert secret not in caplog.text
    finally:
        await backend.close()
        await bus.close()
        await relay.cut()


class BrokenBus(MemoryChangeBus):
    """A bus that breaks its contract (raises something other than ChangeNotPublished)."""

    async def publish(self, kind: str, id: str) -> None:
        raise RuntimeError("bus exploded")


async def test_a_broken_bus_does_not_undo_a_saved_mutation(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    try:
        store = await backend.open(changes=BrokenBus())
        with caplog.at_level(logging.ERROR, logger="junction.stores.documents"):
            org = await store.orgs.create("still saved")
        assert (await store.orgs.get(org.id)).name == "still saved"
        assert f"org {org.id}" in caplog.text and "bus exploded" in caplog.text
    finally:
        await backend.close()


async def test_after_a_failed_publish_every_node_is_told_to_drop_everything() -> None:
    channel = f"junction:test:{secrets.token_hex(4)}"
    relay = RedisRelay()
    await relay.start()
    cut_off, elsewhere = RedisChangeBus(relay.url, channel), RedisChangeBus(REDIS_URL, channel)
    await cut_off.start()
    await elsewhere.start()
    try:
        heard_here: list[Change] = []
        heard_elsewhere: list[Change] = []
        cut_off.subscribe(heard_here.append)
        elsewhere.subscribe(heard_elsewhere.append)
        await relay.cut()

        with pytest.raises(ChangeNotPublished, match="key/key_revoked"):
            await cut_off.publish("key", "key_revoked")
        assert Change("key", "key_revoked") in heard_here  # this node's own caches drop at once
        await asyncio.sleep(0.2)
        assert heard_elsewhere == []  # the other node cannot know yet...

        await relay.start()
        await wait_for(heard_elsewhere, 1, timeout=5.0)
        assert heard_elsewhere == [EVERYTHING]  # ...until this node reaches Redis again
    finally:
        await cut_off.close()
        await elsewhere.close()
        await relay.cut()
