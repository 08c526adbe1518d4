"""The rate-limit log's scripts on a real Redis, with a short window so entries age out during the
test: counts, totals, resets and Retry-After stay exact as entries age out one or several at a
time, and a log never loses its expiry (a log kept for ever would keep a stale total). A log left
by a pause (many entries aged out at once) is dropped whole or a chunk a call, answers still exact."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as redis

from junction.traffic.windows import ADMIT, AGE_CHUNK, SETTLE, USAGE

LIVE = "redis://127.0.0.1:6379/0"
WINDOW = 300  # ms


@asynccontextmanager
async def logs(count: int = 1) -> AsyncIterator[tuple[redis.Redis, list[list[str]]]]:
    """A client and ``count`` fresh scopes' keys (log, token total), deleted afterwards."""
    client = redis.Redis.from_url(LIVE)
    stems = [f"windows-test-{secrets.token_hex(4)}" for _ in range(count)]
    scopes = [[stem + ":log", stem + ":tok"] for stem in stems]
    try:
        yield client, scopes
    finally:
        for keys in scopes:
            await client.delete(*keys)
        await client.aclose()


async def admit(client: redis.Redis, keys: list[str], call: str, tokens: int, rpm: int = 5,
                tpm: int = 1000) -> list[int]:
    return [int(v) for v in await client.eval(ADMIT, len(keys), *keys, WINDOW, rpm, tpm, call, tokens)]


async def test_counts_totals_and_resets_stay_exact_as_entries_age_out() -> None:
    async with logs() as (client, [keys]):
        for index in range(3):  # three calls, 100 tokens each
            answer = await admit(client, keys, f"a{index}", 100)
            assert answer[:4] == [0, 0, index + 1, 100 * (index + 1)]
            assert 0 < answer[4] <= WINDOW
        await asyncio.sleep(0.15)
        answer = await admit(client, keys, "b0", 50)
        assert answer[:4] == [0, 0, 4, 350]
        # Five in the window: a sixth is refused until the oldest ages out.
        await admit(client, keys, "b1", 50)
        refused = await admit(client, keys, "b2", 50)
        assert refused[0] == 1 and 0 < refused[1] <= WINDOW - 140 and refused[2:4] == [5, 400]
        await asyncio.sleep(0.17)  # the three a-calls (several at once) aged out, the b-calls did not
        answer = await admit(client, keys, "c0", 10)
        assert answer[:4] == [0, 0, 3, 110]
        assert 0 < answer[4] <= WINDOW - 140  # the oldest left is b0
        assert [int(v) for v in await client.eval(USAGE, 2, *keys, WINDOW)] == [3, 110]
        await asyncio.sleep(0.16)  # b0 and b1 aged out: c0 is left
        answer = await admit(client, keys, "c1", 10, tpm=25)
        assert answer[:4] == [0, 0, 2, 20]
        # Tokens: 20 of 25 used; 10 more fit once c0 (the oldest) ages out.
        refused = await admit(client, keys, "c2", 10, tpm=25)
        assert refused[0] == 2 and 0 < refused[1] <= WINDOW - 150 and refused[2:4] == [2, 20]
        await asyncio.sleep(0.16)  # c0 alone aged out
        answer = await admit(client, keys, "d0", 10, tpm=25)
        assert answer[:4] == [0, 0, 2, 20]
        assert 0 < answer[4] <= WINDOW - 150  # the oldest left is c1
        assert await client.zcard(keys[0]) == 2  # what aged out is gone


async def test_the_stored_total_loses_an_aged_entry_whether_the_call_adds_as_many_more_or_fewer_or_is_refused(
) -> None:
    # Steady load ages one entry a call; its tokens leave the stored total with the call's own
    # (one INCRBY of the difference), or alone when the call is refused.
    async with logs() as (client, [keys]):
        async def stored() -> int:
            return int(await client.get(keys[1]))

        await admit(client, keys, "a0", 100)
        await asyncio.sleep(0.15)
        await admit(client, keys, "a1", 40)
        await asyncio.sleep(0.16)  # a0 aged out
        answer = await admit(client, keys, "b0", 100)  # as many tokens as a0 held
        assert answer[:4] == [0, 0, 2, 140] and await stored() == 140
        await asyncio.sleep(0.16)  # a1 aged out
        answer = await admit(client, keys, "b1", 10)  # fewer than a1 held
        assert answer[:4] == [0, 0, 2, 110] and await stored() == 110
        await asyncio.sleep(0.16)  # b0 aged out
        refused = await admit(client, keys, "c0", 1000, tpm=500)
        assert refused[0] == 2 and refused[2:4] == [1, 10] and await stored() == 10
        assert await client.zrange(keys[0], 0, -1) == [b"b1:10"]
        answer = await admit(client, keys, "c1", 30, tpm=500)
        assert answer[:4] == [0, 0, 2, 40] and await stored() == 40


async def test_a_log_keeps_its_expiry_when_its_only_entry_is_settled() -> None:
    async with logs() as (client, [keys]):
        at = int((await client.eval(ADMIT, 2, *keys, 60_000, 10, 10_000, "only", 500))[-1])
        assert await client.zscore(keys[0], "only:500") == at  # the answer names the entry's time
        await client.eval(SETTLE, 2, *keys, "only:500", "only:120", -380, at)
        assert await client.zrange(keys[0], 0, -1, withscores=True) == [(b"only:120", at)]  # kept its place
        assert await client.get(keys[1]) == b"120"
        # Both still lapse, together: a log without its total would be read wrong later.
        log_ttl, total_ttl = await client.pttl(keys[0]), await client.pttl(keys[1])
        assert 60_000 <= log_ttl <= 120_000 and abs(log_ttl - total_ttl) < 50


async def test_a_settle_that_comes_after_its_entry_aged_out_changes_nothing() -> None:
    async with logs() as (client, [keys]):
        gone = await admit(client, keys, "gone", 100)
        await asyncio.sleep(0.35)
        await admit(client, keys, "kept", 40)  # "gone" aged out: the log holds "kept" alone
        await client.eval(SETTLE, 2, *keys, "gone:100", "gone:7", -93, gone[-1])
        # Not brought back (it would count as a request again), and the total not corrected
        # for tokens that left it when the entry aged out.
        assert await client.zrange(keys[0], 0, -1) == [b"kept:40"]
        assert await client.get(keys[1]) == b"40"
        # A log that has gone whole (expired) is not made again, without an expiry.
        await client.delete(*keys)
        await client.eval(SETTLE, 2, *keys, "kept:40", "kept:5", -35, gone[-1])
        assert await client.exists(*keys) == 0


async def seed(client: redis.Redis, keys: list[str], aged: int, live: int, amount: int = 100) -> int:
    """A log of ``aged`` entries older than a minute and ``live`` ones inside it (``amount`` tokens
    each, the total to match), as a busy scope leaves it after a pause; answers Redis's now (ms)."""
    seconds, micros = await client.time()
    now = seconds * 1000 + micros // 1000
    entries = {f"old{index}:{amount}": now - 90_000 + index / 100 for index in range(aged)}
    entries.update({f"live{index}:{amount}": now - 30_000 + index for index in range(live)})
    items = list(entries.items())
    for start in range(0, len(items), 10_000):
        await client.zadd(keys[0], dict(items[start:start + 10_000]))
    await client.set(keys[1], (aged + live) * amount)
    for key in keys:
        await client.pexpire(key, 120_000)
    return now


async def test_a_log_that_aged_out_whole_starts_again_without_a_scan() -> None:
    # A scope busy for a minute, then idle: its whole log aged out. Scanning it held Redis (every
    # node's limits, budgets and cache) for 430 ms at 300,000 entries.
    async with logs(3) as (client, scopes):
        scans, admissions, reports = [], [], []
        for keys in scopes:  # best of three of each: one round trip can stall on a busy host
            await seed(client, keys, aged=100_000, live=0)
            began = time.perf_counter()
            await client.zrangebyscore(keys[0], "-inf", "+inf")  # reading the aged entries, as a scan did
            scans.append(time.perf_counter() - began)
            began = time.perf_counter()
            # The admin API's report (read only) finds nothing in it, as fast.
            assert [int(v) for v in await client.eval(USAGE, 2, *keys, 60_000)] == [0, 0]
            reports.append(time.perf_counter() - began)
            began = time.perf_counter()
            answer = [int(v) for v in await client.eval(ADMIT, 2, *keys, 60_000, 10, 1000, "next", 40)]
            admissions.append(time.perf_counter() - began)
            assert answer[:5] == [0, 0, 1, 40, 60_000]  # counted as the log's first call
            assert await client.zrange(keys[0], 0, -1) == [b"next:40"]
            assert await client.get(keys[1]) == b"40"
            assert 60_000 <= await client.pttl(keys[0]) <= 120_000
            assert 60_000 <= await client.pttl(keys[1]) <= 120_000
            # A new key (a one-entry sorted set is packed), not the old one trimmed to one entry.
            assert await client.object("encoding", keys[0]) == b"listpack"
        assert min(admissions) < min(scans) / 2, f"admissions {admissions}, reads of a log {scans}"
        assert min(reports) < min(scans) / 2, f"reports {reports}, reads of a log {scans}"


async def test_a_backlog_of_aged_entries_drains_a_chunk_a_call_and_every_answer_stays_exact() -> None:
    aged = 3 * AGE_CHUNK
    async with logs() as (client, [keys]):
        now = await seed(client, keys, aged=aged, live=10)

        async def admit_once(call: str, rpm: int, tpm: int) -> list[int]:
            return [int(v) for v in await client.eval(ADMIT, 2, *keys, 60_000, rpm, tpm, call, 5)]

        async def usage() -> list[int]:
            return [int(v) for v in await client.eval(USAGE, 2, *keys, 60_000)]

        assert await usage() == [10, 1000]  # the live entries' tokens, summed (fewer than the aged)
        answer = await admit_once("a", rpm=11, tpm=10**9)
        # The request count is exact; the token total still holds what the aged entries left.
        assert answer[:3] == [0, 0, 11] and answer[3] == (aged - AGE_CHUNK + 10) * 100 + 5
        assert 29_000 <= answer[4] <= 30_000  # the oldest live entry ages out in ~30 s
        assert await client.zcard(keys[0]) == aged - AGE_CHUNK + 11
        assert await usage() == [11, 1005]  # the report is exact meanwhile
        refused = await admit_once("b", rpm=11, tpm=10**9)  # the 12th in the window
        oldest_live = now - 30_000 + 60_000
        assert refused[0] == 1 and refused[2] == 11 and abs(refused[1] - (oldest_live - int(refused[-1]))) <= 1
        # A token limit only the exact total fits: the rest of the backlog goes, and the call fits.
        answer = await admit_once("c", rpm=-1, tpm=10 * 100 + 5 + 5)
        assert answer[:4] == [0, 0, 12, 10 * 100 + 5 + 5]
        assert await client.zcard(keys[0]) == 12 and await client.get(keys[1]) == b"1010"
        assert await usage() == [12, 1010]
        await client.delete(*keys)
        await seed(client, keys, aged=5, live=10)  # fewer aged than live: their tokens come off the total
        assert await usage() == [10, 1000]
