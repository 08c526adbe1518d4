"""Plain PostgreSQL keeps its rollups itself (migration m0003's trigger): whatever inserts the
events — the writer's COPY, a hand-written INSERT, in any session time zone — the minute, hour
and by-model rollup rows equal the hand-computed sums of tests/metrics/seed.py, histogram
included; and writers with batches in flight on several connections neither deadlock nor lose a
count."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import msgspec
import pytest
import sqlalchemy as sa

from junction.stores.metrics import migrate
from junction.stores.metrics.schema import latency_bucket, usage_events
from junction.stores.metrics.writer import UsageWriter, as_datetime
from tests.metrics.seed import event, seeded


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, minute, tzinfo=UTC)


async def rollup(engine, table: str, dimensions: str) -> dict[tuple, tuple]:
    """Rollup rows by (bucket, *dimensions): requests, errors, cache hits, priced requests,
    input / output tokens, cost, latency sum, and the non-empty histogram buckets."""
    histogram = ", ".join(f"lat_{index:02d}" for index in range(41))
    async with engine.connect() as connection:
        rows = (await connection.execute(sa.text(
            f"SELECT bucket, {dimensions}, requests, errors, cache_hits, priced_requests, input_tokens, "
            f"output_tokens, cost_usd, latency_ms_sum, ARRAY[{histogram}] FROM {table}"))).all()
    width = 1 + len(dimensions.split(","))
    found = {}
    for row in rows:
        counts = {index: count for index, count in enumerate(row[-1]) if count}
        found[tuple(row[:width])] = (*row[width:width + 6], round(row[width + 6], 9), row[width + 7], counts)
    return found


B = latency_bucket  # the histogram bucket of a latency


EXPECTED_MODEL_HOURS = {
    # E1, E2, E5: 300 + 10 input tokens, 150 + 10 output, three priced calls, one cache hit.
    (at(5, 10), "openai", "gpt-4o"): (3, 0, 1, 3, 310, 160, 0.002375, 420.0, {B(100): 1, B(300): 1, B(20): 1}),
    (at(5, 10), "anthropic", "claude-x"): (1, 1, 0, 0, 0, 0, 0.0, 50.0, {B(50): 1}),  # E3: failed, no usage
    (at(5, 11), "anthropic", "claude-x"): (1, 0, 0, 0, 1000, 10, 0.0, 1000.0, {B(1000): 1}),  # E4: no price
    (at(6, 9), "", ""): (1, 1, 0, 0, 0, 0, 0.0, 1.0, {B(1): 1}),  # E6: refused before a model: '' dimensions
}


async def test_rollups_equal_hand_computed_sums_for_any_insert(postgres_backend):
    engine = postgres_backend.engine
    events = seeded()
    # E1-E3 through the writer's COPY, E4-E6 through a plain INSERT in a session whose time zone
    # has a half-hour offset (the buckets stay UTC hours and minutes).
    await UsageWriter(engine, postgres_backend.settings.metrics).write(events[:3])
    async with engine.begin() as connection:
        await connection.execute(sa.text("SET LOCAL TIME ZONE 'Asia/Kolkata'"))
        columns = [column.name for column in usage_events.columns]
        await connection.execute(usage_events.insert(), [
            dict(zip(columns, (as_datetime(item.time), *msgspec.structs.astuple(item)[1:]))) for item in events[3:]])

    assert await rollup(engine, "usage_rollup_hour_model", "provider, model") == EXPECTED_MODEL_HOURS
    hours = await rollup(engine, "usage_rollup_hour", "org_id, key_id, bridge_id, provider, model")
    assert hours == {
        (at(5, 10), "org-a", "a1", "", "openai", "gpt-4o"): (2, 0, 1, 2, 300, 150, 0.00225, 400.0, {B(100): 1, B(300): 1}),
        (at(5, 10), "org-a", "a2", "", "anthropic", "claude-x"): (1, 1, 0, 0, 0, 0, 0.0, 50.0, {B(50): 1}),
        (at(5, 11), "org-a", "a2", "", "anthropic", "claude-x"): (1, 0, 0, 0, 1000, 10, 0.0, 1000.0, {B(1000): 1}),
        (at(5, 10), "org-b", "b1", "", "openai", "gpt-4o"): (1, 0, 0, 1, 10, 10, 0.000125, 20.0, {B(20): 1}),
        (at(6, 9), "org-b", "b1", "", "", ""): (1, 1, 0, 0, 0, 0, 0.0, 1.0, {B(1): 1}),
    }
    minutes = await rollup(engine, "usage_rollup_minute", "org_id, key_id, provider, model")
    assert minutes[(at(5, 10, 0), "org-a", "a1", "openai", "gpt-4o")][:3] == (2, 0, 1)  # E1 and E2
    assert minutes[(at(5, 10, 1), "org-a", "a2", "anthropic", "claude-x")][:2] == (1, 1)  # E3
    assert minutes[(at(5, 10, 0), "org-b", "b1", "openai", "gpt-4o")][:1] == (1,)  # E5
    assert len(minutes) == 5 and sum(row[0] for row in minutes.values()) == 6  # E1 and E2 share a minute

    # A second insert of the same events adds to the same rows (an upsert, not an overwrite).
    await UsageWriter(engine, postgres_backend.settings.metrics).write(events)
    doubled = await rollup(engine, "usage_rollup_hour_model", "provider, model")
    assert {key: (row[0], row[4], row[6]) for key, row in doubled.items()} == {
        key: (2 * row[0], 2 * row[4], pytest.approx(2 * row[6])) for key, row in EXPECTED_MODEL_HOURS.items()}


async def test_batches_in_flight_on_several_connections_sum_exactly(postgres_backend):
    """Small batches of the same few keys and minutes, several in flight at once: every upsert
    touches rows another transaction is updating; all counts arrive, no deadlock."""
    settings = msgspec.structs.replace(postgres_backend.settings.metrics, batch_size=50, flush_seconds=0.01)
    writer = UsageWriter(postgres_backend.engine, settings)
    await writer.start()
    now = time.time() // 60 * 60
    try:
        for index in range(3000):
            org, key = ("org-x", f"kx{index % 3}") if index % 2 else ("org-y", f"ky{index % 3}")
            writer.record(event(org, key, "openai/gpt-4o" if index % 4 < 2 else "anthropic/claude-x",
                                now + index % 120, 200, (1, 2), 0.5, 10.0 + index % 500))
        while writer.pending:
            await asyncio.sleep(0.01)
    finally:
        await writer.close()
    assert writer.written == 3000 and writer.failed_flushes == 0
    async with postgres_backend.engine.connect() as connection:
        sums = [(await connection.execute(sa.text(
            f"SELECT sum(requests), sum(input_tokens), sum(output_tokens), sum(cost_usd), "
            f"sum({' + '.join(f'lat_{index:02d}' for index in range(41))}) FROM {table}"))).one()
            for table in ("usage_rollup_minute", "usage_rollup_hour", "usage_rollup_hour_model")]
    assert all(tuple(row) == (3000, 3000, 6000, pytest.approx(1500.0), 3000) for row in sums)


async def test_downgrading_past_m0003_removes_the_trigger(postgres_backend):
    engine, settings = postgres_backend.engine, postgres_backend.settings
    await migrate.downgrade(engine, settings, "m0002_model_rollup")
    await UsageWriter(engine, settings.metrics).write(seeded()[:1])
    async with engine.connect() as connection:
        assert (await connection.execute(sa.text("SELECT count(*) FROM usage_rollup_minute"))).scalar() == 0
    await migrate.upgrade(engine, settings)
    await UsageWriter(engine, settings.metrics).write(seeded()[:1])
    async with engine.connect() as connection:
        assert (await connection.execute(sa.text("SELECT sum(requests) FROM usage_rollup_minute"))).scalar() == 1
