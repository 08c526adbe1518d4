"""Admission stages share one Redis round trip per call: what they queue in ``enter`` is sent by
the attempt loop before the first attempt, every callback hears its result, and a refusal stops
the call before anything goes upstream. Against the real Redis (DB 6) and a dead port."""

from __future__ import annotations

import secrets

import pytest
import redis.asyncio as redis

from junction.errors import RateLimited
from junction.plugins import Call, Stage
from junction.plugins.store_guard import GuardedConfig, StoreGuard, StoreUnavailable
from tests.unit.pipeline_kit import ScriptedProvider, build_gateway, chat_call

LIVE = "redis://127.0.0.1:6379/6"
DEAD = "redis://127.0.0.1:1/0"


class Counter(Stage):
    """Counts calls in Redis (INCR) and refuses past ``limit``; records what its callback heard."""

    def __init__(self, client: redis.Redis, key: str, limit: int, heard: list) -> None:
        self.client, self.key, self.limit, self.heard = client, key, limit, heard
        self.guard = StoreGuard(f"counter-{key}", GuardedConfig(store_retry_seconds=60))

    async def enter(self, call: Call) -> None:
        def on_result(value: object) -> None:
            self.heard.append(value)
            if isinstance(value, int) and value > self.limit:
                raise RateLimited(f"{self.key} is over {self.limit}", code="rate_limit_exceeded")

        call.store_batch(self.client).queue(self.guard, lambda pipe: pipe.incr(self.key), on_result)


class CountingRedis(redis.Redis):
    """The real client, counting round trips: single commands and pipelines sent."""

    round_trips = 0

    async def execute_command(self, *args, **options):
        self.round_trips += 1
        return await super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint=None):
        self.round_trips += 1
        return super().pipeline(transaction, shard_hint)


@pytest.fixture
async def live() -> redis.Redis:
    client = CountingRedis.from_url(LIVE)
    yield client
    await client.aclose()


async def test_queued_commands_go_in_one_round_trip_before_the_first_attempt(live: redis.Redis) -> None:
    heard: list = []
    first, second = f"batch:{secrets.token_hex(4)}", f"batch:{secrets.token_hex(4)}"
    provider = ScriptedProvider()
    gateway = build_gateway([Counter(live, first, 5, heard), Counter(live, second, 5, heard)], provider=provider)
    reply = await gateway.complete(chat_call())
    assert reply.choices[0].message.content == "ok: hello world"
    assert heard == [1, 1] and provider.log == ["provider:ok"]
    assert live.round_trips == 1
    await live.delete(first, second)


async def test_every_callback_runs_and_the_first_refusal_stops_the_call(live: redis.Redis) -> None:
    heard: list = []
    limited, counted = f"batch:{secrets.token_hex(4)}", f"batch:{secrets.token_hex(4)}"
    await live.set(limited, 5)
    provider = ScriptedProvider()
    gateway = build_gateway([Counter(live, limited, 5, heard), Counter(live, counted, 5, heard)], provider=provider)
    call = chat_call()
    with pytest.raises(RateLimited, match="is over 5"):
        await gateway.complete(call)
    assert heard == [6, 1]  # the second stage heard its result although the first refused
    assert provider.log == [] and call.outcome.status == 429
    await live.delete(limited, counted)


async def test_a_dead_store_hands_every_callback_unavailable_and_opens_each_guard() -> None:
    heard: list = []
    dead = redis.Redis.from_url(DEAD)
    stages = [Counter(dead, "a", 5, heard), Counter(dead, "b", 5, heard)]
    gateway = build_gateway(stages)
    try:
        await gateway.complete(chat_call())  # the stages fail open: they only record
        assert [type(value) for value in heard] == [StoreUnavailable, StoreUnavailable]
        assert all(not stage.guard.healthy for stage in stages)
        await gateway.complete(chat_call())  # guards open: nothing is queued, unavailable at once
        assert len(heard) == 4 and all(stage.guard.skipped == 1 for stage in stages)
    finally:
        await dead.aclose()
