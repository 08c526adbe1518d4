"""Analytics over the usage ledger, always from the rollups (writer-maintained tables on SQLite
and plain PostgreSQL, continuous aggregates on TimescaleDB): a query reads one row per bucket and
group, never the events, so it stays fast with tens of millions of events.

``minute`` buckets come from the minute rollup, ``hour`` and ``day`` from the hourly one (days are
summed here from hours, in UTC); a question across every org that groups and filters by provider
and model only (the master key's overview) reads the hourly rollup by model, one row per hour and
model. Percentiles come from the rollups' latency histograms
(:data:`~junction.stores.metrics.schema.LATENCY_BOUNDS_MS`), interpolated within a bucket.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import accumulate
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Literal

import msgspec
import sqlalchemy as sa

from junction.stores.metrics.schema import (
    DIMENSIONS,
    HISTOGRAM_COLUMNS,
    LATENCY_BOUNDS_MS,
    MEASURES,
    MODEL_DIMENSIONS,
    rollup_hour,
    rollup_hour_model,
    rollup_minute,
)
from junction.stores.metrics.timescale import AGGREGATES, MODEL_AGGREGATE

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

Bucket = Literal["minute", "hour", "day"]
BUCKET_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_SUMMED = (*MEASURES, *HISTOGRAM_COLUMNS)
_RESULT_TYPES = {"cost_usd": sa.Float, "latency_ms_sum": sa.Float}


class LatencyStats(msgspec.Struct, gc=False):
    avg: float | None
    p50: float | None
    p95: float | None


class UsageStats(msgspec.Struct, gc=False):
    requests: int
    errors: int
    error_rate: float | None
    cache_hits: int
    cache_hit_rate: float | None
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    #: The cost of the calls whose price was known; ``unpriced_requests`` had none.
    cost_usd: float
    unpriced_requests: int
    latency_ms: LatencyStats


class UsagePoint(msgspec.Struct, gc=False):
    bucket: datetime
    group: dict[str, str | None]
    stats: UsageStats


class UsageGroup(msgspec.Struct, gc=False):
    group: dict[str, str | None]
    stats: UsageStats


class UsageQuery(msgspec.Struct, kw_only=True):
    start: datetime
    end: datetime
    bucket: Bucket = "hour"
    group_by: tuple[str, ...] = ()
    #: Dimension → value (``org_id``, ``key_id``, ``bridge_id``, ``provider``, ``model``).
    filters: dict[str, str] = {}
    #: The orgs the caller may see; ``None``: all of them (the master key).
    orgs: tuple[str, ...] | None = None


def _aggregate_table(name: str, like: sa.Table = rollup_minute) -> sa.Table:
    """A continuous aggregate, read like a rollup table (same columns)."""
    return sa.Table(name, sa.MetaData(), *(sa.Column(column.name, column.type) for column in like.columns))


_MODEL_ONLY = frozenset(MODEL_DIMENSIONS)


class UsageQueries:
    def __init__(self, engine: AsyncEngine, *, timescale: bool) -> None:
        self._engine = engine
        if timescale:
            self._tables = {"minute": _aggregate_table(AGGREGATES["minute"]),
                            "hour": _aggregate_table(AGGREGATES["hour"]),
                            "hour_model": _aggregate_table(MODEL_AGGREGATE, rollup_hour_model)}
        else:
            self._tables = {"minute": rollup_minute, "hour": rollup_hour, "hour_model": rollup_hour_model}

    def table(self, query: UsageQuery) -> sa.Table:
        """The smallest rollup that answers ``query``."""
        if query.bucket == "minute":
            return self._tables["minute"]
        if query.orgs is None and _MODEL_ONLY.issuperset(query.group_by) and _MODEL_ONLY.issuperset(query.filters):
            return self._tables["hour_model"]
        return self._tables["hour"]

    def statement(self, query: UsageQuery, *, by_bucket: bool) -> sa.Select[Any]:
        """The SQL that sums ``query``'s rollup rows (per bucket too when ``by_bucket``)."""
        table = self.table(query)
        dims = [sa.func.coalesce(table.c[dimension], "").label(dimension) for dimension in query.group_by]
        # Integer columns sum to bigint; bigint sums (tokens) come back as numeric, whose decoding
        # (Decimal) would cost more than the query: cast them back.
        sums = [sa.cast(sa.func.coalesce(sa.func.sum(table.c[column]), 0), _RESULT_TYPES.get(column, sa.BigInteger))
                .label(column) for column in _SUMMED]
        keys = ([table.c.bucket] if by_bucket else []) + dims
        statement = (sa.select(*keys, *sums)
                     .where(table.c.bucket >= query.start, table.c.bucket < query.end))
        for dimension, value in query.filters.items():
            statement = statement.where(table.c[dimension] == value)
        if query.orgs is not None:
            statement = statement.where(table.c.org_id.in_(query.orgs))
        if keys:
            statement = statement.group_by(*keys)
        return statement

    async def _rows(self, query: UsageQuery, *, by_bucket: bool) -> list[Any]:
        statement = self.statement(query, by_bucket=by_bucket)
        async with self._engine.connect() as connection:
            return list((await connection.execute(statement)).all())

    async def series(self, query: UsageQuery) -> tuple[UsageStats, list[UsagePoint]]:
        """Totals over the range, and one point per bucket and group (oldest first)."""
        rows = await self._rows(query, by_bucket=True)
        offset = 1 + len(query.group_by)
        if query.bucket == "day":
            rows = _days(rows, offset)  # summed here from hours, in UTC
        # Otherwise the SQL grouped by the rollup's own bucket: one row per point already. A
        # 30-day hourly series is thousands of points, so this loop is kept to the bare calls.
        rows.sort(key=itemgetter(*range(offset)))
        names = query.group_by
        sums = [row[offset:] for row in rows]
        series = [UsagePoint(_aware(row[0]), {name: value or None for name, value in zip(names, row[1:offset])},
                             stats_of(values)) for row, values in zip(rows, sums)]
        # Columns summed with zip/sum (C loops).
        total = [sum(column) for column in zip(*sums)] if sums else [0] * len(_SUMMED)
        return stats_of(total), series

    async def groups(self, query: UsageQuery) -> tuple[UsageStats, list[UsageGroup]]:
        """Totals, and one entry per group over the whole range (highest cost first)."""
        rows = await self._rows(query, by_bucket=False)
        total = [0.0] * len(_SUMMED)
        groups = []
        width = len(query.group_by)
        for row in rows:
            values = row[width:]
            for index, value in enumerate(values):
                total[index] += value
            if query.group_by:
                groups.append(UsageGroup(group=_group(query.group_by, row[:width]), stats=stats_of(values)))
        groups.sort(key=lambda entry: (-entry.stats.cost_usd, -entry.stats.requests))
        return stats_of(total), groups


def _days(rows: Sequence[Any], offset: int) -> list[tuple[Any, ...]]:
    """Hourly rows (bucket, *group, *sums) summed per UTC day and group."""
    width = BUCKET_SECONDS["day"]
    merged: dict[tuple[Any, ...], list[Sequence[Any]]] = {}
    for row in rows:
        key = (int(_aware(row[0]).timestamp() // width) * width, *row[1:offset])
        found = merged.get(key)
        if found is None:
            merged[key] = [row[offset:]]
        else:
            found.append(row[offset:])
    return [(datetime.fromtimestamp(key[0], UTC), *key[1:],
             *(parts[0] if len(parts) == 1 else [sum(column) for column in zip(*parts)]))
            for key, parts in merged.items()]


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _group(names: Sequence[str], values: Sequence[Any]) -> dict[str, str | None]:
    return {name: (value or None) for name, value in zip(names, values)}


_AT = {measure: index for index, measure in enumerate(MEASURES)}
(_REQUESTS, _ERRORS, _CACHE_HITS, _PRICED, _INPUT, _OUTPUT, _CACHED, _CACHE_WRITE, _REASONING, _COST,
 _LATENCY_SUM) = (_AT[measure] for measure in (
    "requests", "errors", "cache_hits", "priced_requests", "input_tokens", "output_tokens", "cached_tokens",
    "cache_write_tokens", "reasoning_tokens", "cost_usd", "latency_ms_sum"))
_HISTOGRAM_AT = len(MEASURES)


def stats_of(values: Sequence[float]) -> UsageStats:
    """The stats of one row of sums (measures, then the histogram); called per point, so by
    index and positionally (fields in :class:`UsageStats` order)."""
    histogram = values[_HISTOGRAM_AT:]
    cumulative = list(accumulate(histogram))
    requests = int(values[_REQUESTS])
    errors, hits = int(values[_ERRORS]), int(values[_CACHE_HITS])
    return UsageStats(
        requests,
        errors,
        errors / requests if requests else None,
        hits,
        hits / requests if requests else None,
        int(values[_INPUT]),
        int(values[_OUTPUT]),
        int(values[_CACHED]),
        int(values[_CACHE_WRITE]),
        int(values[_REASONING]),
        round(float(values[_COST]), 10),
        requests - int(values[_PRICED]),
        LatencyStats(round(values[_LATENCY_SUM] / requests, 3) if requests else None,
                     percentile(histogram, 0.50, cumulative), percentile(histogram, 0.95, cumulative)),
    )


def percentile(histogram: Sequence[int], quantile: float, cumulative: Sequence[int] | None = None) -> float | None:
    """The ``quantile`` of a latency histogram, linearly interpolated inside its bucket
    (``cumulative``: its running totals, when the caller has them)."""
    if cumulative is None:
        cumulative = list(accumulate(histogram))
    count = cumulative[-1] if cumulative else 0
    if not count:
        return None
    rank = quantile * count
    # The first bucket whose running total reaches the rank (empty buckets never do first).
    index = bisect_left(cumulative, rank)
    in_bucket = histogram[index]
    seen = cumulative[index] - in_bucket
    lower = LATENCY_BOUNDS_MS[index - 1] if index else 0.0
    upper = LATENCY_BOUNDS_MS[index] if index < len(LATENCY_BOUNDS_MS) else lower * 1.35
    return round(lower + (upper - lower) * (rank - seen) / in_bucket, 3)


__all__ = ["DIMENSIONS", "UsageQueries", "UsageQuery", "UsageStats", "percentile"]
