"""The pipelining Redis connection (PipelinedRedis) that carries every call's store batch: concurrent
batches share one connection and each gets its own replies, in order, errors in place; scripts
go by SHA and survive a flushed script cache and a restarted server; a caller that gives up
leaves the connection in step; a dead store fails every batch, which each guard hears. Against
the real Redis (DB 7, random keys) and a throwaway ``redis-server`` for what would disturb others;
a batch alone in flight polls for its reply, about as long as such replies take, before the loop
sleeps."""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as redis
from redis.exceptions import ResponseError

from junction.plugins.store_batch import StoreBatch
from junction.plugins.store_guard import GuardedConfig, StoreGuard, StoreUnavailable
from junction.stores.redis_pipeline import PipelinedRedis
from junction.stores.redis_protocol import PARKED_SECONDS, READ_NOW_BYTES, WRITE_EVERY
from junction.traffic.settle import Settler
from tests.traffic.test_redis_down import ThrowawayRedis

LIVE = "redis://127.0.0.1:6379/7"
COUNT = "return redis.call('INCRBY', KEYS[1], ARGV[1])"


@pytest.fixture
def throwaway(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server")
    server = ThrowawayRedis(tmp_path)
    server.start()
    yield server
    server.kill()


async def connections_named(client: redis.Redis, name: str) -> int:
    return sum(1 for entry in await client.client_list() if entry["name"] == name)


async def test_concurrent_batches_share_one_connection_and_each_gets_its_own_replies() -> None:
    name = f"junction-test-{secrets.token_hex(4)}"
    shared = PipelinedRedis(LIVE, client_name=name)
    observer = redis.Redis.from_url(LIVE)
    guard = StoreGuard("pipelined", GuardedConfig(store_timeout_seconds=5.0))
    prefix = f"pipelined:{secrets.token_hex(4)}"
    heard: dict[int, list[object]] = {}

    async def one_call(index: int) -> None:
        batch = StoreBatch(shared)
        heard[index] = []
        batch.queue(guard, lambda pipe: pipe.eval(COUNT, 1, f"{prefix}:{index}", index + 1), heard[index].append)
        batch.queue(guard, lambda pipe: pipe.incr(f"{prefix}:all"), heard[index].append)
        if index == 0:  # LPUSH on a string: this command fails, the others of the batch do not
            batch.queue(guard, lambda pipe: pipe.lpush(f"{prefix}:0", "x"), heard[index].append)
        else:
            batch.queue(guard, lambda pipe: pipe.get(f"{prefix}:{index}"), heard[index].append)
        await batch.flush()

    try:
        await asyncio.gather(*(one_call(index) for index in range(32)))
        assert await connections_named(observer, name) == 1
        assert sorted(value[1] for value in heard.values()) == list(range(1, 33))  # INCR of :all, each once
        for index in range(1, 32):
            assert heard[index][0] == index + 1 and heard[index][2] == str(index + 1).encode()
        assert isinstance(heard[0][2], redis.ResponseError)  # an error stays with its own command
        assert guard.healthy and guard.failures == 0
        # The script went by its SHA (EVALSHA), loaded once: Redis knows it.
        assert (await observer.script_exists(shared.sha(COUNT).decode())) == [True]
    finally:
        await observer.delete(*[f"{prefix}:{index}" for index in range(32)], f"{prefix}:all")
        await observer.aclose()
        await shared.aclose()


async def test_a_convoy_of_batches_leaves_in_writes_of_a_few_batches_and_each_gets_its_own_replies() -> None:
    """32 calls' batches made in one turn of the loop: the first ``WRITE_EVERY`` (8) are on the
    wire before the turn ends (Redis starts on them while the worker prepares the rest), the 32 go
    in four writes (not one, not 32), and every call still gets its own replies."""
    shared = PipelinedRedis(LIVE, client_name=f"junction-test-{secrets.token_hex(4)}")
    prefix = f"convoy:{secrets.token_hex(4)}"
    observer = redis.Redis.from_url(LIVE)
    await shared.connect()
    connection = shared._connection
    assert connection is not None
    transport = connection._transport
    assert transport is not None
    writes: list[bytes] = []
    write = transport.write

    def counted(data: bytes) -> None:
        writes.append(bytes(data))
        write(data)

    transport.write = counted  # type: ignore[method-assign]
    try:
        calls = [asyncio.ensure_future(shared.execute([("INCRBY", f"{prefix}:{index}", index), ("INCR", f"{prefix}:all")]))
                 for index in range(32)]
        await asyncio.sleep(0)  # one turn: every call packs its batch
        assert WRITE_EVERY == 8
        assert len(writes) == 4 and all(data.count(b"INCRBY") == 8 for data in writes)
        replies = await asyncio.gather(*calls)
        assert [reply[0] for reply in replies] == list(range(32))
        assert sorted(reply[1] for reply in replies) == list(range(1, 33))
        await shared.execute([("INCR", f"{prefix}:all")])  # a lone batch: its own write, at once
        assert len(writes) == 5
    finally:
        await observer.delete(*[f"{prefix}:{index}" for index in range(32)], f"{prefix}:all")
        await observer.aclose()
        await shared.aclose()


ECHO = "return ARGV"


async def test_every_argument_reaches_redis_as_sent_and_a_bad_one_is_refused_before_sending() -> None:
    """Arguments are packed by hiredis: bytes (binary and large), text (non-ASCII), integers and
    floats arrive in Redis as their RESP bulk strings, for a plain command, a prepared script with
    arguments of its own and one without; a value of another type is a ``TypeError``, nothing sent."""
    shared = PipelinedRedis(LIVE)
    shared.load(ECHO)
    key = f"pipelined:{secrets.token_hex(4)}"
    blob = bytes(range(256)) * 40  # 10 KiB, every byte value
    arguments = (blob, "héllo", -7, 2**62, 0.1, 1e20, "")
    with_rest = shared.prepare(ECHO, [key], ["fixed"], rest=len(arguments))
    without_rest = shared.prepare(ECHO, [key], ["only", 3], rest=0)
    try:
        replies = await shared.execute([("SET", key, blob), ("GET", key), (with_rest, *arguments), (without_rest,)])
        assert replies[0] == b"OK" and replies[1] == blob
        assert replies[2] == [b"fixed", blob, "héllo".encode(), b"-7", b"4611686018427387904", b"0.1", b"1e+20", b""]
        assert replies[3] == [b"only", b"3"]
        # Nine arguments of a call's own, then ten and more (hiredis's array header grows a digit).
        for count in (9, 10, 12):
            many = shared.prepare(ECHO, [key], [], rest=count)
            assert await shared.execute([(many, *range(count))]) == [[b"%d" % n for n in range(count)]]
        for bad in (None, True, [1]):
            with pytest.raises(TypeError):
                await shared.execute([("SET", key, bad)])
        # Still in step: no batch left waiting for replies that will never come.
        assert await asyncio.wait_for(shared.execute([("GET", key)]), 5) == [blob]
    finally:
        await shared.execute([("DEL", key)])
        await shared.aclose()

async def test_scripts_survive_a_flushed_script_cache_and_a_restarted_server(throwaway: ThrowawayRedis) -> None:
    shared = PipelinedRedis(throwaway.url)
    shared.load(COUNT)
    observer = redis.Redis.from_url(throwaway.url)
    try:
        assert await shared.execute([("EVALSHA", shared.sha(COUNT), 1, "n", 2)]) == [2]
        await observer.script_flush()  # NOSCRIPT: sent again with its source, in the same call
        assert await shared.execute([("GET", "n"), ("EVALSHA", shared.sha(COUNT), 1, "n", 3)]) == [b"2", 5]

        throwaway.kill()  # the batch in flight (none here) would fail; the next one fails to connect
        with pytest.raises(OSError):
            await shared.execute([("GET", "n")])
        throwaway.start()
        # A new connection loads every known script before its first batch: no NOSCRIPT round trip.
        assert await shared.execute([("EVALSHA", shared.sha(COUNT), 1, "n", 7)]) == [7]
        await observer.aclose()
        observer = redis.Redis.from_url(throwaway.url)
        assert "errorstat_NOSCRIPT" not in await observer.info("errorstats")
    finally:
        await observer.aclose()
        await shared.aclose()


async def test_a_caller_that_gives_up_leaves_the_connection_in_step(throwaway: ThrowawayRedis) -> None:
    shared = PipelinedRedis(throwaway.url)
    observer = redis.Redis.from_url(throwaway.url)
    try:
        await shared.execute([("SET", "k", "first")])
        await observer.client_pause(400)  # Redis holds every command for 0.4 s
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await shared.execute([("GET", "k")])
        await observer.set("k", "second")  # queued behind the pause too
        # The abandoned GET's reply is read and dropped; this batch gets its own.
        assert await shared.execute([("GET", "k"), ("INCR", "c")]) == [b"second", 1]
    finally:
        await observer.aclose()
        await shared.aclose()


async def test_a_dead_store_fails_every_batch_and_every_guard_hears_it() -> None:
    shared = PipelinedRedis("redis://127.0.0.1:1/0")
    guards = [StoreGuard(f"dead-{index}", GuardedConfig()) for index in range(5)]
    heard: list[object] = []

    async def one_call(guard: StoreGuard) -> None:
        batch = StoreBatch(shared)
        batch.queue(guard, lambda pipe: pipe.get("x"), heard.append)
        await batch.flush()

    await asyncio.gather(*(one_call(guard) for guard in guards))
    assert len(heard) == 5 and all(isinstance(value, StoreUnavailable) for value in heard)
    assert all(not guard.healthy and guard.failures == 1 for guard in guards)
    await shared.aclose()


async def _written(shared: PipelinedRedis, command: tuple) -> tuple[asyncio.Task, float]:
    """Start ``command`` as a lone batch: the task, and the seconds its write held the loop
    (polling for the reply, or not)."""
    task = asyncio.create_task(shared.execute([command], timeout=5))
    started = time.perf_counter()
    await asyncio.sleep(0)  # the batch is packed and written at once (alone): the poll, if any
    return task, time.perf_counter() - started


async def test_a_lone_batch_polls_about_as_long_as_its_recent_round_trips_within_the_bound(
        throwaway: ThrowawayRedis) -> None:
    """Alone in flight, with the worker serving one request, a batch's write polls for the reply
    before the loop sleeps: until the reply is there, for at most one and a half times the mean
    round trip of such batches of late (no longer than ``reply_poll``), and not at all while that
    mean is longer than ``reply_poll`` (its reply would come after the poll). Every lone batch's
    round trip, polled for or not, moves the mean. A batch written while another is in flight
    does not poll, nor one while the worker serves other requests."""
    shared = PipelinedRedis(throwaway.url, reply_poll=0.4)
    shared.serving_one = lambda: True  # the app's: one request in this worker
    loop = asyncio.get_running_loop()
    try:
        await shared.execute([("PING",)])  # connected; the first lone batch's round trip is the mean
        connection = shared._connection
        assert connection is not None and connection.round_trip is not None and connection.round_trip < 0.1

        connection.round_trip = None  # none measured yet: polls for the whole bound
        slow, held = await _written(shared, ("DEBUG", "SLEEP", "0.6"))
        assert 0.39 <= held < 0.58  # 400 ms, then the loop ran on
        assert await slow == [b"OK"]
        assert 0.55 < connection.round_trip < 1.0  # its own round trip, heard through the loop

        connection.round_trip = 0.1  # such round trips took 100 ms of late: polls 150 ms at most
        slow, held = await _written(shared, ("DEBUG", "SLEEP", "0.6"))
        assert 0.14 <= held < 0.35
        second, held = await _written(shared, ("PING",))  # behind the slow one: no poll
        assert held < 0.1
        assert await slow == [b"OK"] and await second == [b"PONG"]
        # The mean moved an eighth of the way to the 600 ms batch's round trip (the PING written
        # behind it was not alone, and is not counted).
        assert 0.16 < connection.round_trip < 0.25

        connection.round_trip = 0.5  # longer than the bound: no poll at all
        slow, held = await _written(shared, ("DEBUG", "SLEEP", "0.3"))
        assert held < 0.1
        assert await slow == [b"OK"]

        slow_mean = connection.round_trip
        for _ in range(40):  # fast round trips bring the mean down: the poll is back
            await shared.execute([("PING",)])
        assert connection.round_trip < slow_mean / 50
        connection.round_trip = 0.1  # (a reply within 150 ms, whatever the host's load)
        ran: list[bool] = []
        loop.call_soon(ran.append, True)
        assert await shared.execute([("PING",)]) == [b"PONG"]
        assert ran == []  # answered in the poll, before the loop ran anything else

        shared.serving_one = lambda: False  # other requests in the worker: never polls
        slow, held = await _written(shared, ("DEBUG", "SLEEP", "0.3"))
        assert held < 0.1
        assert await slow == [b"OK"]
    finally:
        await shared.aclose()


async def test_a_lone_batch_is_answered_in_place_without_a_turn_of_the_loop_and_stays_in_step() -> None:
    """Alone in flight, with the worker serving one request, a batch goes out at once and the
    reply its poll sees is read and parsed there: the caller has its replies before the loop runs
    anything else (a callback queued before the batch has not run yet). A reply longer than that
    one read gets its rest through the loop, and the connection stays in step for every batch
    after, in place or through the loop."""
    shared = PipelinedRedis(LIVE, reply_poll=0.2)
    shared.serving_one = lambda: True
    key = f"test:lone:{secrets.token_hex(4)}"
    loop = asyncio.get_running_loop()
    try:
        await shared.execute([("PING",)])  # connected
        connection = shared._connection
        assert connection is not None
        for expected in range(1, 51):
            connection.round_trip = 0.1  # polls for up to 150 ms: the reply comes in that time
            ran: list[bool] = []
            loop.call_soon(ran.append, True)
            assert await shared.execute([("INCR", key), ("GET", key)]) == [expected, str(expected).encode()]
            assert ran == []  # answered without the loop's turn

        big = b"x" * (3 * READ_NOW_BYTES + 17)
        assert await shared.execute([("SET", key, big), ("GET", key), ("STRLEN", key)]) == [b"OK", big, len(big)]
        assert await shared.execute([("INCRBY", key + ":n", 2)]) == [2]

        shared.serving_one = lambda: False  # other requests in the worker: through the loop, as before
        ran = []
        loop.call_soon(ran.append, True)
        assert await shared.execute([("INCRBY", key + ":n", 3)]) == [5]
        assert ran == [True]
    finally:
        await redis.Redis.from_url(LIVE).delete(key, key + ":n")
        await shared.aclose()


async def test_background_replies_wait_unread_until_the_next_batch_or_a_short_while() -> None:
    """Deferred commands sent by themselves (the worker idle after an answer) leave their replies
    unread, so they do not wake the worker between two requests: the next batch reads them with
    its own (a failure heard then), or the loop does PARKED_SECONDS later when no batch comes."""
    shared = PipelinedRedis(LIVE, reply_poll=0.2)
    shared.serving_one = lambda: False  # no request in the worker
    key = f"test:parked:{secrets.token_hex(4)}"
    try:
        await shared.execute([("SET", key, "text")])  # a value INCR refuses
        for next_batch in (True, False):
            heard: list[BaseException] = []
            started = time.perf_counter()
            shared.defer(("INCR", key), heard.append)  # nothing in flight: it goes at once
            await asyncio.sleep(0.005)
            assert shared.deferred == 0  # sent
            if time.perf_counter() - started < PARKED_SECONDS:  # (a stalled host may pass the deadline)
                assert heard == []  # its error reply not read yet
            if next_batch:
                shared.serving_one = lambda: True
                assert await shared.execute([("GET", key)]) == [b"text"]
                shared.serving_one = lambda: False
                await asyncio.sleep(0)  # the settle's sender resumes
            else:
                await asyncio.sleep(PARKED_SECONDS + 0.05)
            assert len(heard) == 1 and isinstance(heard[0], ResponseError)
        assert await shared.execute([("INCRBY", key + ":n", 1)]) == [1]  # in step
    finally:
        await redis.Redis.from_url(LIVE).delete(key, key + ":n")
        await shared.aclose()


async def test_a_store_that_dies_under_a_lone_batch_fails_it_at_once(throwaway: ThrowawayRedis) -> None:
    """The poll sees the socket close (the store is killed while it polls): the read in place
    leaves that to the loop, whose read fails the batch with ConnectionError at once (no hang
    until its timeout), and the next batch to a store back on its port reconnects."""
    shared = PipelinedRedis(throwaway.url, reply_poll=0.5)
    shared.serving_one = lambda: True
    try:
        await shared.execute([("PING",)])
        assert shared._connection is not None
        shared._connection.round_trip = 0.3  # polls for up to 450 ms: the kill comes at 100
        killer = threading.Timer(0.1, throwaway.kill)  # from a thread: the poll holds the loop
        killer.start()
        started = time.perf_counter()
        with pytest.raises(ConnectionError):
            await shared.execute([("DEBUG", "SLEEP", "5")], timeout=30)
        assert time.perf_counter() - started < 1.5
        killer.join()
        throwaway.start()
        assert await shared.execute([("PING",)]) == [b"PONG"]
    finally:
        await shared.aclose()


async def test_a_deferred_settle_that_fails_is_counted_lost_and_one_that_succeeds_is_not(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="junction.traffic")
    client = redis.Redis.from_url(LIVE)
    shared = PipelinedRedis(LIVE)
    key = f"settle-{secrets.token_hex(4)}"
    guard = StoreGuard("settles", GuardedConfig())
    settler = Settler(guard, shared)
    try:
        await client.set(key + ":text", "not a number")
        settler.add(("INCRBY", key + ":count", 5))
        settler.add(("INCRBY", key + ":text", 1))  # an error reply, in its place in the batch
        settler.add(("INCRBY", key + ":count", 2))
        await settler.drain()
        assert int(await client.get(key + ":count")) == 7
        assert settler.lost == 1 and guard.healthy  # an error reply is the command's, not the store's
        assert "a settle failed" in caplog.text
        # Riding a call's batch: the batch's own replies are its own, the settles' failures heard.
        settler.add(("INCRBY", key + ":text", 1))
        batch = StoreBatch(shared)
        heard: list[object] = []
        batch.queue(guard, ("INCRBY", key + ":count", 1), heard.append)
        await batch.flush()
        assert heard == [8] and settler.lost == 2
    finally:
        await client.delete(key + ":count", key + ":text")
        await client.aclose()
        await shared.aclose()
    dead_guard = StoreGuard("dead-settles", GuardedConfig())
    dead = Settler(dead_guard, PipelinedRedis("redis://127.0.0.1:1/0"))
    dead.add(("INCRBY", key, 1))
    dead.add(("INCRBY", key, 1))
    await dead.drain()
    assert dead.lost == 2 and not dead_guard.healthy  # the store's failure trips the plugin's guard
    dead.add(("INCRBY", key, 1))  # skipped while the guard is open: lost at once, nothing sent
    assert dead.lost == 3
