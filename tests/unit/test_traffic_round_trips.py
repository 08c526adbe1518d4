"""Rate limit, budget and response cache together against the real Redis (DB 7, random keys), in a
real pipeline with a scripted provider: a cache miss costs one Redis round trip before the
upstream call and none after it: the stored answer, the settles of both admission stages ride
the next call's batch, or go by themselves, all in one write, after the settle delay when no
call comes."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as redis

from junction.errors import RateLimited
from junction.middleware.budget.config import BudgetConfig
from junction.middleware.budget.stage import BudgetStage, Hold
from junction.middleware.rate_limit.config import RateLimitConfig, ScopeLimits
from junction.middleware.rate_limit.stage import RateLimitStage
from junction.middleware.response_cache.backends import LOCK
from junction.middleware.response_cache.config import ResponseCacheConfig
from junction.middleware.response_cache.stage import ResponseCacheStage
from junction.plugins import PluginContext, Principal
from junction.pricing import ModelPrice, PriceBook
from junction.settings import settings_from_mapping
from junction.stores.redis_pipeline import Command, PipelinedRedis, Prepared
from junction.stores.redis_protocol import Connection
from junction.traffic.ledger import NANO
from junction.traffic.limits import Limits
from tests.unit.pipeline_kit import ScriptedProvider, build_gateway, chat_call

LIVE = "redis://127.0.0.1:6379/7"


class CountingPipeline(PipelinedRedis):
    """The real pipelining connection, recording each round trip's commands (those of the calls:
    not the connection's set-up, its ``CLIENT SETNAME`` and script loads)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.round_trips: list[list[str]] = []

    def _new_connection(self) -> Connection:
        round_trips = self.round_trips

        class Counting(Connection):
            async def send(self, commands: list[Command], timeout: float | None,
                           background: bool = False) -> list[Any]:
                if not any(command[0] == "CLIENT" for command in commands):
                    round_trips.append(["EVALSHA" if type(command[0]) is Prepared else str(command[0])
                                        for command in commands])
                return await super().send(commands, timeout, background)

        return Counting()


@dataclass
class World:
    """Real Redis (its own key prefix), the counting pipeline and the three traffic stages."""

    client: Any
    pipeline: CountingPipeline
    context: PluginContext
    prefix: str
    stages: list[Any]


@asynccontextmanager
async def traffic_world(cache: dict[str, Any], budget: bool = True) -> AsyncIterator[World]:
    """Rate limit, budget (unless ``budget`` is false) and response cache (``cache``: its config's
    fields besides the key prefix) on live Redis; every key they made is deleted afterwards."""
    client = redis.Redis.from_url(LIVE)
    pipeline = CountingPipeline(LIVE)
    book = PriceBook()
    book.add_provider_prices("scripted", [ModelPrice(model="ok", input=1.0, output=1.0)])
    context = PluginContext(settings=settings_from_mapping({"auth": {"master_key": "unused"}}),
                            redis=client, redis_pipeline=pipeline, pricing=book)
    prefix = f"round-trips-{secrets.token_hex(4)}"
    stages: list[Any] = [RateLimitStage(RateLimitConfig(prefix=f"{prefix}:rl"), context)]
    if budget:
        stages.append(BudgetStage(BudgetConfig(prefix=f"{prefix}:budget"), context))
    stages.append(ResponseCacheStage(ResponseCacheConfig(key_prefix=f"{prefix}:cache:", **cache), context))
    try:
        yield World(client, pipeline, context, prefix, stages)
    finally:
        for stage in stages:
            await stage.close()
        keys = [key async for key in client.scan_iter(f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
        await pipeline.aclose()


def principal(budget_usd: float = 100.0) -> Principal:
    return Principal(id=f"key:{secrets.token_hex(4)}", kind="key", scopes=frozenset({"chat"}),
                     rpm=1000, tpm=1_000_000, budget_usd=budget_usd, budget_period="day")


async def test_a_miss_costs_one_round_trip_and_its_store_rides_the_next_call() -> None:
    async with traffic_world({"local_seconds": 0}) as world:
        client, pipeline, context, prefix = world.client, world.pipeline, world.context, world.prefix
        stages = world.stages
        cache_config = ResponseCacheConfig(key_prefix=f"{prefix}:cache:", local_seconds=0)
        pipeline.settle_delay = 1.0  # a settle delay no loaded test machine outlasts between two calls
        pipeline.send_when_idle = False  # as under load: another call's batch is always in flight
        provider = ScriptedProvider()
        gateway = build_gateway(stages, provider=provider)
        caller = principal()
        first = chat_call(text="first question", principal=caller)
        await gateway.complete(first)
        assert first.response_headers["x-junction-cache"] == "miss"
        # Admission (requests and tokens), reservation, lookup and lock: one round trip.
        assert pipeline.round_trips == [["EVALSHA", "EVALSHA", "EVALSHA"]]

        second = chat_call(text="second question", principal=caller)
        await gateway.complete(second)
        # The second call's round trip also carried the first one's settles (rate limit: its
        # tokens; budget: its cost) and store (one SET of the entry over its lock, no script),
        # queued as the call ended, in that order, ahead of its own three scripts.
        assert pipeline.round_trips[1:] == [["EVALSHA", "EVALSHA", "SET"] + ["EVALSHA"] * 3]
        values = [await client.get(key) async for key in client.scan_iter(f"{prefix}:cache:*")]
        # the first answer, and the second call's lock, held in its entry's key until its own store
        assert sorted(value[:1] == LOCK for value in values) == [False, True]

        # No call comes: the second call's settles and store go by themselves after the settle
        # delay, in one round trip (one queue per connection, not per plugin).
        await asyncio.sleep(1.3)
        assert pipeline.round_trips[2:] == [["EVALSHA", "EVALSHA", "SET"]]
        values = [await client.get(key) async for key in client.scan_iter(f"{prefix}:cache:*")]
        assert len(values) == 2 and not any(value.startswith(LOCK) for value in values)  # no lock left
        other_worker = ResponseCacheStage(cache_config, context)  # no memory of its own
        again = chat_call(text="second question", principal=caller)
        await build_gateway([other_worker], provider=provider).complete(again)
        assert again.response_headers["x-junction-cache"] == "hit"
        assert provider.log == ["provider:ok", "provider:ok"]  # the hit did not go upstream
        spent = await stages[1].usage("key", caller.id, Limits(budget_usd=100.0, budget_period="day"))
        assert spent.budget is not None and spent.budget.reserved_usd == 0  # both settled
        assert spent.budget.spent_usd > 0


async def test_the_settles_a_batch_carries_count_before_its_own_admission() -> None:
    """Under load a call's settles ride the next call's batch: ahead of its admission, so a budget
    with room for one call at a time admits the next call once the first has ended (behind it,
    the ended call's reservation still counted and the next call was refused)."""
    async with traffic_world({"local_seconds": 0}) as world:
        pipeline = world.pipeline
        pipeline.settle_delay = 5.0  # longer than the test: the settles wait for the next batch
        pipeline.send_when_idle = False  # as under load: another call's batch is always in flight
        gateway = build_gateway(world.stages, provider=ScriptedProvider())
        probe = chat_call(text="question A", principal=principal())
        await gateway.complete(probe)
        reserved = probe.state[Hold].amount  # what a call of this size reserves, in nano-USD
        caller = principal(budget_usd=1.5 * reserved / NANO)
        first = chat_call(text="question B", principal=caller)
        await gateway.complete(first)
        assert first.state[Hold].amount == reserved
        second = chat_call(text="question C", principal=caller)
        await gateway.complete(second)  # admitted: the first call's reservation went back first
        assert second.outcome is not None and second.outcome.status == 200
        # the first call's settles and store (its entry over its lock), then admission
        assert pipeline.round_trips[-1] == ["EVALSHA", "EVALSHA", "SET"] + ["EVALSHA"] * 3


async def test_one_call_at_a_time_sends_its_settles_at_once_off_the_next_calls_round_trip() -> None:
    """With nothing in flight no batch is coming to carry the settles, and one that did would wait
    in Redis for them: they go in one write right after the call, and the next call's round trip
    carries its own admission only."""
    async with traffic_world({"local_seconds": 0}) as world:
        pipeline, stages = world.pipeline, world.stages
        pipeline.settle_delay = 5.0  # longer than the test: only the idle send can explain a write
        gateway = build_gateway(stages, provider=ScriptedProvider())
        caller = principal()
        await gateway.complete(chat_call(text="first question", principal=caller))
        for _ in range(100):  # the settles' write follows the call within a turn of the loop
            if len(pipeline.round_trips) > 1:
                break
            await asyncio.sleep(0.01)
        # admission; settles and store (the entry over its lock)
        assert pipeline.round_trips == [["EVALSHA"] * 3, ["EVALSHA", "EVALSHA", "SET"]]
        await gateway.complete(chat_call(text="second question", principal=caller))
        assert pipeline.round_trips[2] == ["EVALSHA"] * 3  # the second admission alone
        spent = await stages[1].usage("key", caller.id, Limits(budget_usd=100.0, budget_period="day"))
        assert spent.budget is not None and spent.budget.spent_usd > 0  # the first call settled


async def test_a_hit_from_the_workers_memory_is_one_command_and_leaves_nothing_to_settle() -> None:
    """Hits are free for budgets and take no tokens: a hit this worker keeps in memory sends only
    its request admission (no budget reservation to refund, no tokens to settle) and queues no
    settle, while the request still counts."""
    async with traffic_world({"local_seconds": 30}) as world:
        pipeline, stages = world.pipeline, world.stages
        pipeline.settle_delay = 5.0  # longer than the test: only the idle send can explain a write
        provider = ScriptedProvider()
        gateway = build_gateway(stages, provider=provider)
        caller = principal()
        limits = Limits(rpm=1000, tpm=1_000_000, budget_usd=100.0, budget_period="day")
        await gateway.complete(chat_call(text="same question", principal=caller))
        for _ in range(100):  # the miss's settles and store go right after it
            if len(pipeline.round_trips) > 1:
                break
            await asyncio.sleep(0.01)
        before = (await stages[1].usage("key", caller.id, limits)).budget
        tokens_before = (await stages[0].usage("key", caller.id, limits)).tokens
        trips = len(pipeline.round_trips)

        hit = chat_call(text="same question", principal=caller)
        await gateway.complete(hit)
        assert hit.response_headers["x-junction-cache"] == "hit"
        assert provider.log == ["provider:ok"]
        await asyncio.sleep(0.1)  # an idle send would have gone by now
        assert pipeline.round_trips[trips:] == [["EVALSHA"]]  # the request admission alone
        assert pipeline.deferred == 0  # nothing to settle

        after = (await stages[1].usage("key", caller.id, limits)).budget
        assert before is not None and after is not None
        assert (after.spent_usd, after.reserved_usd) == (before.spent_usd, 0)
        used = await stages[0].usage("key", caller.id, limits)
        assert used.requests is not None and used.requests.used == 2  # the hit counted as a request
        assert used.tokens is not None and tokens_before is not None
        assert used.tokens.used == tokens_before.used  # and took no tokens


async def test_a_refused_call_gives_back_the_single_flight_lock_its_lookup_took() -> None:
    """The cache lookup rides the admission's round trip, so it runs even when the rate limit
    refuses the call: the lock it took must be given back, or identical calls from callers with
    room would wait on a leader that never goes upstream."""
    async with traffic_world({"local_seconds": 0, "single_flight_seconds": 5.0}, budget=False) as world:
        client, pipeline, prefix, stages = world.client, world.pipeline, world.prefix, world.stages
        provider = ScriptedProvider()
        gateway = build_gateway(stages, provider=provider)
        limited = Principal(id=f"key:{secrets.token_hex(4)}", kind="key", scopes=frozenset({"chat"}), rpm=1)
        await gateway.complete(chat_call(text="first", principal=limited))
        with pytest.raises(RateLimited):
            await gateway.complete(chat_call(text="shared question", principal=limited))
        await pipeline.drain()
        values = [await client.get(key) async for key in client.scan_iter(f"{prefix}:cache:*")]
        assert len(values) == 1 and not values[0].startswith(LOCK)  # the first answer; the lock went
        other = Principal(id=f"key:{secrets.token_hex(4)}", kind="key", scopes=frozenset({"chat"}))
        started = asyncio.get_running_loop().time()
        same = chat_call(text="shared question", principal=other)
        await gateway.complete(same)
        assert same.response_headers["x-junction-cache"] == "miss"
        assert asyncio.get_running_loop().time() - started < 2.0  # led at once, did not wait 5 s


async def test_the_headers_show_the_window_with_the_least_room_from_any_scope() -> None:
    """An admitted call's ``x-ratelimit-*`` headers (read straight from the admission's answer)
    show, per unit, the window with the least room left: the model's when it is tighter than the
    key's, the key's otherwise; a refusal shows the same windows."""
    async with traffic_world({"local_seconds": 0}, budget=False) as world:
        prefix, context = world.prefix, world.context
        models = {"scripted/ok": ScopeLimits(rpm=3, tpm=2_000_000)}
        stage = RateLimitStage(RateLimitConfig(prefix=f"{prefix}:rl2", models=models), context)
        gateway = build_gateway([stage], provider=ScriptedProvider())
        caller = Principal(id=f"key:{secrets.token_hex(4)}", kind="key", scopes=frozenset({"chat"}),
                           rpm=1000, tpm=50_000)
        seen = []
        for text in ("one", "two", "three"):
            call = chat_call(text=text, principal=caller)
            await gateway.complete(call)
            seen.append(call.response_headers)
        for index, headers in enumerate(seen):
            assert headers["x-ratelimit-limit-requests"] == "3"  # the model's: 3 against the key's 1000
            assert headers["x-ratelimit-remaining-requests"] == str(2 - index)
            assert 59.0 <= float(headers["x-ratelimit-reset-requests"].removesuffix("s")) <= 60.0
            assert headers["x-ratelimit-limit-tokens"] == "50000"  # the key's: 50,000 against 2,000,000
            assert 0 < int(headers["x-ratelimit-remaining-tokens"]) < 50_000
        with pytest.raises(RateLimited) as refused:
            await gateway.complete(chat_call(text="four", principal=caller))
        assert refused.value.headers["x-ratelimit-remaining-requests"] == "0"
        assert refused.value.headers["x-ratelimit-limit-requests"] == "3"
        assert refused.value.param == "model.rpm"
        await stage.close()
