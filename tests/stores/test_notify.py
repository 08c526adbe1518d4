"""Change notifications: in-process, and across processes/nodes through the real Redis."""

from __future__ import annotations

import asyncio
import secrets

import pytest
import redis.asyncio as redis

from junction.errors import ConfigError
from junction.stores.notify import Change, MemoryChangeBus, RedisChangeBus, open_change_bus

REDIS_URL = "redis://127.0.0.1:6379/0"


async def test_memory_bus_delivers_to_sync_and_async_subscribers_until_unsubscribed() -> None:
    bus = open_change_bus("memory://")
    assert isinstance(bus, MemoryChangeBus)
    heard_sync: list[Change] = []
    heard_async: list[Change] = []

    async def remember(change: Change) -> None:
        heard_async.append(change)

    unsubscribe = bus.subscribe(heard_sync.append)
    bus.subscribe(remember)
    await bus.publish("key", "key_1")
    unsubscribe()
    await bus.publish("bridge", "br_1")
    assert heard_sync == [Change("key", "key_1")]
    assert heard_async == [Change("key", "key_1"), Change("bridge", "br_1")]


async def test_a_failing_subscriber_does_not_silence_the_others(caplog: pytest.LogCaptureFixture) -> None:
    bus = MemoryChangeBus()
    heard: list[Change] = []

    def broken(change: Change) -> None:
        raise RuntimeError("cache exploded")

    bus.subscribe(broken)
    bus.subscribe(heard.append)
    await bus.publish("credential", "org_1/openai")
    assert heard == [Change("credential", "org_1/openai")]
    assert "cache exploded" in caplog.text


def test_unknown_cache_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="stores.cache"):
        open_change_bus("memcached://127.0.0.1")
    assert isinstance(open_change_bus(REDIS_URL), RedisChangeBus)


async def wait_for(heard: list[Change], count: int, timeout: float) -> None:
    async def filled() -> None:
        while len(heard) < count:
            await asyncio.sleep(0.005)

    await asyncio.wait_for(filled(), timeout)


async def test_a_change_published_on_one_node_reaches_another_within_a_second() -> None:
    channel = f"junction:test:{secrets.token_hex(4)}"  # other tests may share this Redis
    publisher, listener = RedisChangeBus(REDIS_URL, channel), RedisChangeBus(REDIS_URL, channel)
    await publisher.start()
    await listener.start()
    try:
        heard_elsewhere: list[Change] = []
        heard_here: list[Change] = []
        listener.subscribe(heard_elsewhere.append)
        publisher.subscribe(heard_here.append)

        started = asyncio.get_running_loop().time()
        await publisher.publish("key", "key_revoked")
        await wait_for(heard_elsewhere, 1, timeout=1.0)
        assert asyncio.get_running_loop().time() - started < 1.0
        assert heard_elsewhere == [Change("key", "key_revoked")]
        await wait_for(heard_here, 1, timeout=1.0)  # the publisher's own workers hear it too
    finally:
        await publisher.close()
        await listener.close()


async def test_the_publishers_own_subscribers_hear_a_change_before_publish_returns_and_only_once() -> None:
    """A read right after a write on the same worker must not find what the write's change drops
    (a bridge created after its slug was looked up answered 404 until the channel's echo came)."""
    channel = f"junction:test:{secrets.token_hex(4)}"
    publisher, listener = RedisChangeBus(REDIS_URL, channel), RedisChangeBus(REDIS_URL, channel)
    await publisher.start()
    await listener.start()
    try:
        heard_here: list[Change] = []
        heard_elsewhere: list[Change] = []
        publisher.subscribe(heard_here.append)
        listener.subscribe(heard_elsewhere.append)
        await publisher.publish("bridge", "org_1/slug")
        assert heard_here == [Change("bridge", "org_1/slug")]  # no waiting for the channel
        await wait_for(heard_elsewhere, 1, timeout=1.0)
        await listener.publish("key", "key_1")  # its echo reaches the publisher after ours would have
        await wait_for(heard_here, 2, timeout=1.0)
        assert heard_here == [Change("bridge", "org_1/slug"), Change("key", "key_1")]  # ours not twice
    finally:
        await publisher.close()
        await listener.close()


async def test_close_ends_the_listener_even_when_its_cancel_is_swallowed() -> None:
    """CI hung for its whole 90 minutes in a bus's close(): on Python 3.11 ``asyncio.wait_for`` drops
    a cancel that arrives as its future completes (redis-py waits on its socket writes so), and the
    listener ran on. A subscriber that catches the cancel drops it just the same, every time."""
    channel = f"junction:test:{secrets.token_hex(4)}"
    publisher, listener = RedisChangeBus(REDIS_URL, channel), RedisChangeBus(REDIS_URL, channel)
    await publisher.start()
    await listener.start()
    in_callback = asyncio.Event()
    swallowed: list[bool] = []

    async def swallows_the_cancel(change: Change) -> None:
        in_callback.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            swallowed.append(True)  # and returns, as wait_for does

    listener.subscribe(swallows_the_cancel)
    try:
        await publisher.publish("key", "key_1")
        await asyncio.wait_for(in_callback.wait(), timeout=2.0)
        started = asyncio.get_running_loop().time()
        closing = asyncio.ensure_future(listener.close())
        await asyncio.wait((closing,), timeout=5.0)
        assert closing.done(), "close() still waits for its listener"
        closing.result()
        assert asyncio.get_running_loop().time() - started < 1.0  # the next turn of its loop
        assert swallowed == [True]
    finally:
        await publisher.close()
        await listener.close()


async def test_malformed_messages_on_the_channel_are_skipped() -> None:
    channel = f"junction:test:{secrets.token_hex(4)}"
    bus = RedisChangeBus(REDIS_URL, channel)
    await bus.start()
    raw = redis.Redis.from_url(REDIS_URL)
    try:
        heard: list[Change] = []
        bus.subscribe(heard.append)
        await raw.publish(channel, b"not json")
        await bus.publish("bridge", "br_after")
        await wait_for(heard, 1, timeout=1.0)
        assert heard == [Change("bridge", "br_after")]
    finally:
        await raw.aclose()
        await bus.close()


async def test_after_losing_redis_subscribers_are_told_to_drop_everything() -> None:
    channel = f"junction:test:{secrets.token_hex(4)}"
    client_name = f"junction-test-{secrets.token_hex(4)}"
    bus = RedisChangeBus(REDIS_URL, channel, client_name=client_name)
    await bus.start()
    admin = redis.Redis.from_url(REDIS_URL)
    try:
        heard: list[Change] = []
        bus.subscribe(heard.append)
        listeners = [
            client for client in await admin.client_list(_type="pubsub") if client["name"] == client_name
        ]
        assert len(listeners) == 1
        await admin.client_kill_filter(_id=listeners[0]["id"])  # as if Redis failed over

        await wait_for(heard, 1, timeout=3.0)
        assert heard[0] == Change("*", "*")  # notifications may have been missed: drop all caches
        await bus.publish("key", "key_after_reconnect")
        await wait_for(heard, 2, timeout=1.0)
        assert heard[1] == Change("key", "key_after_reconnect")
    finally:
        await admin.aclose()
        await bus.close()


async def test_unreachable_redis_stops_start_up_with_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("junction.stores.notify.START_TIMEOUT_SECONDS", 0.5)
    bus = RedisChangeBus("redis://:hunter2@127.0.0.1:1/0")  # nothing listens on port 1
    with pytest.raises(ConfigError, match="stores.cache") as raised:
        await bus.start()
    assert "hunter2" not in raised.value.message


async def test_ping_answers_only_while_started() -> None:
    bus = RedisChangeBus(REDIS_URL, f"junction:test:ping:{secrets.token_hex(6)}")
    with pytest.raises(RuntimeError, match="not started"):
        await bus.ping()
    await bus.start()
    try:
        await bus.ping()
    finally:
        await bus.close()
    await MemoryChangeBus().ping()
