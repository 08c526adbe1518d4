"""The rate-limit log's scripts on a real Redis, with a short window so entries age out during the
test: counts, totals, resets and Retry-After stay exact as entries age out one or several at a
time, and a log never loses its expiry (a log kept for ever would keep a stale total)."""

from __future__ import annotations

import asyncio
import secrets

import redis.asyncio as redis

from junction.traffic.windows import ADMIT, SETTLE, USAGE

LIVE = "redis://127.0.0.1:6379/0"
WINDOW = 300  # ms


async def admit(client: redis.Redis, keys: list[str], call: str, tokens: int, rpm: int = 5,
                tpm: int = 1000) -> list[int]:
    return [int(v) for v in await client.eval(ADMIT, len(keys), *keys, WINDOW, rpm, tpm, call, tokens)]


async def test_counts_totals_and_resets_stay_exact_as_entries_age_out() -> None:
    client = redis.Redis.from_url(LIVE)
    stem = f"windows-test-{secrets.token_hex(4)}"
    keys = [stem + ":log", stem + ":tok"]
    try:
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
    finally:
        await client.delete(*keys)
        await client.aclose()


async def test_a_log_keeps_its_expiry_when_its_only_entry_is_settled() -> None:
    client = redis.Redis.from_url(LIVE)
    stem = f"windows-test-{secrets.token_hex(4)}"
    keys = [stem + ":log", stem + ":tok"]
    try:
        at = int((await client.eval(ADMIT, 2, *keys, 60_000, 10, 10_000, "only", 500))[-1])
        assert await client.zscore(keys[0], "only:500") == at  # the answer names the entry's time
        await client.eval(SETTLE, 2, *keys, "only:500", "only:120", -380, at)
        assert await client.zrange(keys[0], 0, -1, withscores=True) == [(b"only:120", at)]  # kept its place
        assert await client.get(keys[1]) == b"120"
        # Both still lapse, together: a log without its total would be read wrong later.
        log_ttl, total_ttl = await client.pttl(keys[0]), await client.pttl(keys[1])
        assert 60_000 <= log_ttl <= 120_000 and abs(log_ttl - total_ttl) < 50
    finally:
        await client.delete(*keys)
        await client.aclose()


async def test_a_settle_that_comes_after_its_entry_aged_out_changes_nothing() -> None:
    client = redis.Redis.from_url(LIVE)
    stem = f"windows-test-{secrets.token_hex(4)}"
    keys = [stem + ":log", stem + ":tok"]
    try:
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
    finally:
        await client.delete(*keys)
        await client.aclose()
