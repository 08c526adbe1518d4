"""Analytics over the seeded data set (tests/metrics/seed.py), on every metrics backend: totals,
series per bucket (minute, hour, day) and per group, filters and org scoping, all by hand."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from junction.stores.metrics.queries import UsageQueries, UsageQuery
from junction.stores.metrics.writer import UsageWriter
from tests.metrics.seed import seeded

D5, D6, D7 = (datetime(2026, 1, day, tzinfo=UTC) for day in (5, 6, 7))


def hour(day: int, value: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, day, value, minute, tzinfo=UTC)


@pytest.fixture
async def queries(metrics_backend) -> UsageQueries:
    writer = UsageWriter(metrics_backend.engine, metrics_backend.settings.metrics,
                         keeps_rollups=metrics_backend.name != "timescaledb")
    # Two batches: rollup rows are added to, not overwritten.
    events = seeded()
    await writer.write(events[:3])
    await writer.write(events[3:])
    return UsageQueries(metrics_backend.engine, timescale=metrics_backend.name == "timescaledb")


async def test_totals(queries):
    totals, series = await queries.series(UsageQuery(start=D5, end=D7))
    assert (totals.requests, totals.errors, totals.cache_hits) == (6, 2, 1)
    assert totals.error_rate == pytest.approx(2 / 6) and totals.cache_hit_rate == pytest.approx(1 / 6)
    assert (totals.input_tokens, totals.output_tokens) == (1310, 170)
    assert totals.cost_usd == pytest.approx(0.002375)
    assert totals.unpriced_requests == 3
    assert totals.latency_ms.avg == pytest.approx((100 + 300 + 50 + 1000 + 20 + 1) / 6, abs=1e-3)
    # Percentiles from the histogram: within the bucket (ratio 1.35) of the exact value.
    assert 50 / 1.35 <= totals.latency_ms.p50 <= 50 * 1.35
    assert 1000 / 1.35 <= totals.latency_ms.p95 <= 1000 * 1.35
    assert [(point.bucket, point.stats.requests) for point in series] == [
        (hour(5, 10), 4), (hour(5, 11), 1), (hour(6, 9), 1)]
    assert series[0].stats.cost_usd == pytest.approx(0.002375) and series[0].stats.errors == 1
    assert series[0].stats.input_tokens == 310


async def test_hourly_by_model(queries):
    _, series = await queries.series(UsageQuery(start=D5, end=D7, group_by=("model",)))
    got = [(point.bucket, point.group["model"], point.stats.requests, point.stats.input_tokens,
            point.stats.errors) for point in series]
    assert got == [
        (hour(5, 10), "claude-x", 1, 0, 1),
        (hour(5, 10), "gpt-4o", 3, 310, 0),
        (hour(5, 11), "claude-x", 1, 1000, 0),
        (hour(6, 9), None, 1, 0, 1),
    ]


async def test_minute_and_day_buckets(queries):
    _, minutes = await queries.series(UsageQuery(start=hour(5, 10), end=hour(5, 11), bucket="minute"))
    assert [(point.bucket, point.stats.requests) for point in minutes] == [(hour(5, 10), 3), (hour(5, 10, 1), 1)]
    _, days = await queries.series(UsageQuery(start=D5, end=D7, bucket="day", group_by=("org_id",)))
    assert [(point.bucket, point.group["org_id"], point.stats.requests) for point in days] == [
        (D5, "org-a", 4), (D5, "org-b", 1), (D6, "org-b", 1)]


async def test_filters_and_org_scope(queries):
    totals, _ = await queries.series(UsageQuery(start=D5, end=D7, orgs=("org-b",)))
    assert (totals.requests, totals.errors, totals.input_tokens) == (2, 1, 10)
    assert totals.cost_usd == pytest.approx(0.000125)
    totals, groups = await queries.groups(UsageQuery(start=D5, end=D7, orgs=("org-a",), group_by=("key_id",)))
    assert totals.requests == 4
    assert [(entry.group["key_id"], entry.stats.requests, round(entry.stats.cost_usd, 6)) for entry in groups] == [
        ("a1", 2, 0.00225), ("a2", 2, 0.0)]
    assert groups[1].stats.unpriced_requests == 2
    totals, _ = await queries.series(UsageQuery(start=D5, end=D7, filters={"provider": "openai", "key_id": "a1"}))
    assert (totals.requests, totals.output_tokens, totals.cache_hits) == (2, 150, 1)
    totals, _ = await queries.series(UsageQuery(start=hour(5, 11), end=D6))
    assert totals.requests == 1  # the range bounds the buckets
