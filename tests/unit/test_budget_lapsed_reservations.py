"""The budget ledger's scripts on a real Redis: a reservation whose call never settled (its node
died) stops holding budget once it lapses — for the next call that needs the room, and in reports."""

from __future__ import annotations

import asyncio
import secrets

import redis.asyncio as redis

from junction.traffic.ledger import RESERVE, SETTLE, USAGE, Ledger, ledger_fixed, parse_reservation

LIVE = "redis://127.0.0.1:6379/0"


async def test_a_lapsed_reservation_frees_its_budget_for_the_next_call_and_in_reports() -> None:
    client = redis.Redis.from_url(LIVE)
    stem = f"lapse-test-{secrets.token_hex(4)}"
    ledger = Ledger(scope="key", stem=stem, cap=100, amount=70, period_end=None)
    keys, fixed = ledger_fixed([ledger])
    fixed[0] = 200  # reservations lapse after 0.2 s instead of 15 minutes
    try:
        first = parse_reservation(await client.eval(RESERVE, len(keys), *keys, *fixed, "dead-call", 70))
        assert first.refused is None and first.reserved == [70]
        # 70 held, 70 more does not fit under 100 while the first call may still be running.
        second = parse_reservation(await client.eval(RESERVE, len(keys), *keys, *fixed, "call-2", 70))
        assert second.refused == 0 and second.reserved == [70]
        await asyncio.sleep(0.3)
        assert [int(v) for v in await client.eval(USAGE, len(keys), *keys)] == [0, 0]  # report: freed
        third = parse_reservation(await client.eval(RESERVE, len(keys), *keys, *fixed, "call-3", 70))
        assert third.refused is None and third.reserved == [70]
        await client.eval(RESERVE, len(keys), *keys, *fixed, "call-4", 20)
        await asyncio.sleep(0.3)
        # Only what could change the answer is purged: call-3 and call-4 lapsed, 90 is freed.
        fourth = parse_reservation(await client.eval(RESERVE, len(keys), *keys, *fixed, "call-5", 70))
        assert fourth.refused is None and fourth.reserved == [70]
        await client.eval(SETTLE, len(keys), *keys, "call-5:70", 70, 30)
        assert [int(v) for v in await client.eval(USAGE, len(keys), *keys)] == [30, 0]
    finally:
        await client.delete(*keys)
        await client.aclose()


async def test_settles_of_nothing_reserved_or_nothing_spent_leave_the_ledger_exact() -> None:
    """A free call reserves 0 and a failed one costs 0: the settle sends nothing for either
    (Redis refuses to add "-0"), and the rest is still settled."""
    client = redis.Redis.from_url(LIVE)
    stem = f"zero-test-{secrets.token_hex(4)}"
    ledger = Ledger(scope="key", stem=stem, cap=100, amount=0, period_end=None)
    keys, fixed = ledger_fixed([ledger])
    try:
        for call, amount, cost in (("free", 0, 0), ("free-but-charged", 0, 12), ("refunded", 40, 0)):
            assert parse_reservation(await client.eval(RESERVE, len(keys), *keys, *fixed, call, amount)).refused is None
            await client.eval(SETTLE, len(keys), *keys, f"{call}:{amount}", amount, cost)
        assert [int(v) for v in await client.eval(USAGE, len(keys), *keys)] == [12, 0]
        assert await client.zcard(keys[1]) == 0  # no reservation left behind
    finally:
        await client.delete(*keys)
        await client.aclose()
