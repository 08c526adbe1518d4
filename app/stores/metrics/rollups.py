"""Writer-maintained rollups (SQLite): a flushed batch is summed here per
(bucket, org, key, bridge, provider, model) (:func:`summed`; the hour sums from the minute
ones, and per (hour, provider, model) from those) and added to ``usage_rollup_minute``,
``usage_rollup_hour`` and ``usage_rollup_hour_model`` with one upsert each, in the batch's
transaction, so rollups and events never disagree. (PostgreSQL sums in the database: a trigger
on the plain branch, see :mod:`junction.stores.metrics.pg_rollups`; continuous aggregates on
TimescaleDB.)"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from junction.stores.metrics.events import UsageEvent
from junction.stores.metrics.schema import (
    DIMENSIONS,
    HISTOGRAM_COLUMNS,
    MEASURES,
    MODEL_DIMENSIONS,
    rollup_hour,
    rollup_hour_model,
    rollup_minute,
)

_COUNTERS = len(MEASURES) + len(HISTOGRAM_COLUMNS)
_HISTOGRAM_START = len(MEASURES)


def summed(events: Sequence[UsageEvent], width: int) -> dict[tuple[Any, ...], list[float]]:
    sums: dict[tuple[Any, ...], list[float]] = {}
    zeros = [0] * _COUNTERS
    for event in events:
        key = (int(event.time // width) * width, event.org_id or "", event.key_id or "",
               event.bridge_id or "", event.provider or "", event.model or "")
        row = sums.get(key)
        if row is None:
            row = sums[key] = zeros.copy()
        row[0] += 1
        if event.status >= 400:
            row[1] += 1
        if event.cache_hit:
            row[2] += 1
        if event.cost_usd is not None:
            row[3] += 1
            row[9] += event.cost_usd
        row[4] += event.input_tokens or 0
        row[5] += event.output_tokens or 0
        row[6] += event.cached_tokens or 0
        row[7] += event.cache_write_tokens or 0
        row[8] += event.reasoning_tokens or 0
        row[10] += event.latency_ms
        row[_HISTOGRAM_START + event.latency_bucket] += 1
    return sums


def coarser(sums: dict[tuple[Any, ...], list[float]], width: int,
            model_only: bool = False) -> dict[tuple[Any, ...], list[float]]:
    """Sums of a finer width (minutes) re-bucketed into ``width`` (hours); ``model_only``: keyed
    by bucket, provider and model only (the other dimensions summed)."""
    coarse: dict[tuple[Any, ...], list[float]] = {}
    for key, values in sums.items():
        wide = (key[0] // width * width, *(key[-2:] if model_only else key[1:]))
        row = coarse.get(wide)
        if row is None:
            coarse[wide] = values.copy()
        else:
            coarse[wide] = [a + b for a, b in zip(row, values)]
    return coarse


def rollup_sums(events: Sequence[UsageEvent]) -> list[tuple[sa.Table, tuple[str, ...], dict[tuple[Any, ...], list[float]]]]:
    """Each rollup table, its dimensions and the batch's sums for it."""
    minutes = summed(events, 60)
    return [(rollup_minute, DIMENSIONS, minutes), (rollup_hour, DIMENSIONS, coarser(minutes, 3600)),
            (rollup_hour_model, MODEL_DIMENSIONS, coarser(minutes, 3600, model_only=True))]


def _sqlite_upsert(table: str, dimensions: tuple[str, ...]) -> str:
    columns = ("bucket", *dimensions, *MEASURES, *HISTOGRAM_COLUMNS)
    updates = ", ".join(f"{column} = {column} + excluded.{column}" for column in (*MEASURES, *HISTOGRAM_COLUMNS))
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)}) "
            f"ON CONFLICT (bucket, {', '.join(dimensions)}) DO UPDATE SET {updates}")


_SQLITE_UPSERTS = {table.name: _sqlite_upsert(table.name, dimensions)
                   for table, dimensions in ((rollup_minute, DIMENSIONS), (rollup_hour, DIMENSIONS),
                                             (rollup_hour_model, MODEL_DIMENSIONS))}


def sqlite_upserts(events: Sequence[UsageEvent], bucket_text: Any) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """SQLite: ``events`` summed here, as one upsert statement and its rows per rollup table
    (plain tuples for the driver's ``executemany``). ``bucket_text(epoch)``: a bucket as
    SQLAlchemy stores datetimes on SQLite."""
    # Sorted: concurrent writers (workers, nodes) lock rows in the same order, never deadlock.
    return [(_SQLITE_UPSERTS[table.name], [(bucket_text(key[0]), *key[1:], *values) for key, values in sorted(sums.items())])
            for table, _dimensions, sums in rollup_sums(events)]

