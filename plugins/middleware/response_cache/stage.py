"""The response-cache stage: look the call up (one round trip, shared with the admission stages),
answer a hit in the form asked for, and store a complete successful answer (see the package
docstring for the rules).

With Redis, the store (and the release of a failed leader's lock) is not a round trip of its own:
it is deferred on the worker's pipelining connection (:class:`~junction.traffic.settle.Settler`) and
rides the next call's batch, or goes by itself after the settle delay (20 ms) when no call comes.
A miss so costs one round trip in all. Meanwhile the leader's single-flight lock stays held, so
identical calls on other workers and nodes wait for the entry (the store writes it over the lock,
in the entry's own key), and this worker keeps the entry in memory at once."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from junction.errors import InvalidRequest, JunctionError
from junction.formats.unified import events_response, response_events
from junction.middleware.response_cache.backends import (
    LOOKUP,
    RELEASE,
    Found,
    MemoryCache,
    RedisCache,
    found,
    remaining_seconds,
)
from junction.middleware.response_cache.config import ResponseCacheConfig
from junction.middleware.response_cache.key import cache_key
from junction.plugins import Call, Next, NextStream, PluginContext, Reply, Stage
from junction.plugins.background import BackgroundWork
from junction.plugins.store_guard import StoreGuard, StoreUnavailable
from junction.schemas.chat import ChatRequest, ChatResponse
from junction.schemas.stream import Finish, StreamDone, StreamEvent, UsageReport
from junction.traffic.estimate import CallIds
from junction.traffic.settle import Settler

log = logging.getLogger("junction.response_cache")

CACHE_HEADER = "x-junction-cache"
TTL_HEADER = "x-junction-cache-ttl"


class CachedAnswer(msgspec.Struct, kw_only=True, array_like=True):
    """A stored answer, in the unified form it was produced in (replayed in either form)."""

    stored_at: float
    response: ChatResponse | None = None
    events: list[StreamEvent] | None = None


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(CachedAnswer)


class Plan:
    """What the cache does for one call: its key, lock token, TTL, and what the lookup found."""

    __slots__ = ("entry", "found", "key", "lookup", "token", "ttl")

    def __init__(self, key: str, token: str, ttl: int, lookup: bool) -> None:
        self.key, self.token, self.ttl, self.lookup = key, token, ttl, lookup
        self.found: Found | None = None
        self.entry: bytes | None = None


class ResponseCacheStage(Stage):
    def __init__(self, config: ResponseCacheConfig, context: PluginContext) -> None:
        config.check()
        self.config = config
        self.guard = StoreGuard("response-cache", config)
        #: With Redis: the pipelining connection the lookups, stores and releases go through.
        self.pipeline: Any = context.redis_pipeline
        self.backend: RedisCache | MemoryCache = (
            RedisCache(context.redis, config.key_prefix, self.guard) if context.redis is not None
            else MemoryCache(config.memory_max_entries))
        self._settler: Settler | None = None
        if context.redis is not None:
            self.pipeline.load(LOOKUP, RELEASE)
            self._settler = Settler(self.guard, self.pipeline)
            assert isinstance(self.backend, RedisCache)
            self.backend.shas(self.pipeline)
        #: Lock tokens: unique across workers and nodes without a random draw per call.
        self._tokens = CallIds()
        #: Stores, counts and releases run after the answer went out.
        self.background = BackgroundWork(log, "storing a cached answer")
        #: With Redis, entries recently found or stored here: key -> (kept until, monotonic; entry).
        self._local: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._local_seconds = config.local_seconds if context.redis is not None else 0.0

    async def close(self) -> None:
        if self._settler is not None:  # queued stores and releases go before the store closes
            await self._settler.drain()
        await self.background.drain()

    # --- the two ways in --------------------------------------------------------------------

    async def handle(self, call: Call, next: Next) -> Reply:
        plan = await self._plan(call)
        if plan is None:
            return await next(call)
        if plan.found is Found.HIT:
            answer = _decoder.decode(plan.entry)  # type: ignore[arg-type]
            response = answer.response or events_response(answer.events or ())
            self._hit(call, answer)
            call.succeeded(response.usage)
            return response
        try:
            reply = await next(call)
        except BaseException:
            self._release(plan)
            raise
        if isinstance(reply, ChatResponse) and _complete(reply):
            # Once the call is over: encoding and queueing the entry is then not between the
            # reply and its client (the lean ingress ends a call after its answer went out).
            call.when_ended(lambda _: self._fill(plan, CachedAnswer(stored_at=time.time(), response=reply)))
        else:
            self._release(plan)
        return reply

    async def stream(self, call: Call, next: NextStream) -> AsyncIterator[StreamEvent]:
        plan = await self._plan(call)
        if plan is None:
            async for event in next(call):
                yield event
            return
        if plan.found is Found.HIT:
            answer = _decoder.decode(plan.entry)  # type: ignore[arg-type]
            events = answer.events or response_events(answer.response)  # type: ignore[arg-type]
            self._hit(call, answer)
            usage, replayed = None, False
            try:
                for event in events:
                    if isinstance(event, UsageReport):
                        usage = event.usage
                    yield event
                replayed = True
            finally:  # the client may leave mid-replay: the outcome says so
                if replayed:
                    call.succeeded(usage)
                else:
                    call.abandoned(usage)
            return
        seen: list[StreamEvent] = []
        done = False
        try:
            async for event in next(call):
                seen.append(event)
                done = isinstance(event, StreamDone)
                yield event
        finally:
            if done and any(isinstance(event, Finish) for event in seen):
                self._fill(plan, CachedAnswer(stored_at=time.time(), events=seen))
            else:  # failed, cut off, or the client left: nothing is stored
                self._release(plan)

    # --- lookup -----------------------------------------------------------------------------

    async def _plan(self, call: Call) -> Plan | None:
        """``None`` when the cache stays out of this call; else the plan, looked up (and, for a
        follower, waited on)."""
        request = call.request
        if not isinstance(request, ChatRequest):
            return None  # embeddings are not cached
        directives = _cache_control(call.headers.get("cache-control"))
        if "no-store" in directives:
            call.response_headers[CACHE_HEADER] = "bypass"
            return None
        ttl = self._ttl(call)
        lookup = "no-cache" not in directives
        if ttl == 0 and not lookup:
            call.response_headers[CACHE_HEADER] = "bypass"
            return None
        single_flight = self.config.single_flight_seconds > 0 and ttl > 0
        plan = Plan(cache_key(call, request), self._tokens.new() if single_flight else "", ttl, lookup)
        try:
            if lookup:
                await self._lookup(call, plan)
            else:
                plan.found = Found.RELEASED
            if plan.found is Found.FOLLOW:
                plan.found, plan.entry = await self.backend.follow(plan.key, self.config.single_flight_seconds)
            if plan.found is not Found.LEAD:
                plan.token = ""  # no lock held: a released follower (or no-cache) stores without one
        except StoreUnavailable:
            if self.guard.on_error == "closed":
                raise self.guard.refusal() from None
            call.response_headers[CACHE_HEADER] = "bypass"
            return None
        if plan.found is not Found.HIT:
            call.response_headers[CACHE_HEADER] = "miss" if lookup else "bypass"
            if ttl == 0:
                return None
        return plan

    async def _lookup(self, call: Call, plan: Plan) -> None:
        backend = self.backend
        if isinstance(backend, MemoryCache):
            plan.found, plan.entry = backend.lookup(plan.key, plan.token)
            return
        local = self._local.get(plan.key) if self._local_seconds else None
        if local is not None and local[0] > time.monotonic():
            # What admission stages queued still goes (a known hit's variant: a request, no
            # tokens, no budget reservation), and may refuse.
            await call.flush_store(hit=True)
            plan.found, plan.entry = Found.HIT, local[1]
            return
        # On the admission stages' round trip (which carries the stores deferred since the last one).
        batch = call.store_batch(self.pipeline)
        heard: list[Any] = []
        batch.queue(self.guard, backend.lookup_command(plan.key, plan.token, self.config.single_flight_seconds),
                    heard.append)
        try:
            await batch.flush()  # may raise an admission stage's refusal: it propagates
        except JunctionError:
            # The lookup ran in the same batch: a refused call that took the single-flight lock
            # gives it back, or identical calls would wait on a leader that never goes upstream.
            if heard and not isinstance(heard[0], BaseException) and found(heard[0])[0] is Found.LEAD:
                self._release(plan)
            raise
        result = heard[0]
        if isinstance(result, StoreUnavailable):
            raise result
        if isinstance(result, Exception):  # Redis answered with an error (e.g. out of memory)
            log.warning("the cache lookup failed: %s", result)
            raise StoreUnavailable(str(result))
        plan.found, plan.entry = found(result)
        if plan.found is Found.HIT:
            self._keep(plan.key, plan.entry, remaining_seconds(result))  # type: ignore[arg-type]

    def _keep(self, key: str, entry: bytes, ttl: float) -> None:
        """Keep ``entry`` in this worker's memory for ``local_seconds`` at most, never past its TTL."""
        if not self._local_seconds:
            return
        local = self._local
        local[key] = (time.monotonic() + min(self._local_seconds, ttl), entry)
        local.move_to_end(key)
        while len(local) > self.config.local_max_entries:
            local.popitem(last=False)

    def _ttl(self, call: Call) -> int:
        config = self.config
        ttl = config.ttl_seconds
        if call.bridge_id is not None:
            ttl = config.bridge_ttl_seconds.get(call.bridge_id, ttl)
        asked = call.headers.get(TTL_HEADER)
        if asked is not None:
            try:
                value = int(asked)
            except ValueError:
                value = -1
            if value < 0:
                raise InvalidRequest(f"header {TTL_HEADER}: must be a whole number of seconds (0 or more)",
                                     param=TTL_HEADER, code="invalid_cache_ttl")
            ttl = min(value, config.max_ttl_seconds)
        return ttl

    # --- after ------------------------------------------------------------------------------

    def _hit(self, call: Call, answer: CachedAnswer) -> None:
        call.cache_hit = True
        call.response_headers[CACHE_HEADER] = "hit"
        call.response_headers["age"] = str(max(0, int(time.time() - answer.stored_at)))

    def _fill(self, plan: Plan, answer: CachedAnswer) -> None:
        data = _encoder.encode(answer)
        if len(data) > self.config.max_entry_bytes:
            self._release(plan)
            return
        self._keep(plan.key, data, plan.ttl)
        backend = self.backend
        if isinstance(backend, MemoryCache):
            self.background.start(backend.fill(plan.key, plan.token, data, plan.ttl))
            return
        assert self._settler is not None
        self._settler.add(backend.fill_command(plan.key, data, plan.ttl))

    def _release(self, plan: Plan) -> None:
        if not plan.token:
            return
        backend = self.backend
        if isinstance(backend, MemoryCache):
            self.background.start(backend.release(plan.key, plan.token))
            return
        assert self._settler is not None
        self._settler.add(backend.release_command(plan.key, plan.token))



def _complete(response: ChatResponse) -> bool:
    if not response.choices:
        return False
    for choice in response.choices:  # a loop, not all() over a generator: one call less per answer
        if not choice.finish_reason:
            return False
    return True


def _cache_control(value: str | None) -> frozenset[str]:
    if not value:
        return frozenset()
    return frozenset(part.strip().lower() for part in value.split(","))
