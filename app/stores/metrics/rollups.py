"""Writer-maintained rollups (SQLite and plain PostgreSQL): a flushed batch is summed here per
(bucket, org, key, bridge, provider, model) (:func:`summed`; the hour sums from the minute
ones, and per (hour, provider, model) from those) and added to ``usage_rollup_minute``,
``usage_rollup_hour`` and ``usage_rollup_hour_model`` with one upsert each, in the batch's
transaction, so rollups and events never disagree. On PostgreSQL the sums travel as one
array per column (``INSERT ... SELECT FROM unnest(...) ON CONFLICT``): a batch of thousands of
events is a few hundred rollup rows, so summing them here costs the database nothing.
:func:`postgres_rebuild` sums a whole events table in SQL instead (bench seeding)."""

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


_SUMMED_COLUMNS = (*MEASURES, *HISTOGRAM_COLUMNS)
_PG_TYPES = {"cost_usd": "float8", "latency_ms_sum": "float8", "input_tokens": "int8", "output_tokens": "int8",
             "cached_tokens": "int8", "cache_write_tokens": "int8", "reasoning_tokens": "int8"}
_FLOATS = frozenset(index for index, column in enumerate(_SUMMED_COLUMNS) if _PG_TYPES.get(column) == "float8")


def _unnest_upsert(table: str, dimensions: tuple[str, ...]) -> str:
    columns = ("bucket", *dimensions, *_SUMMED_COLUMNS)
    types = ("timestamptz", *("text" for _ in dimensions), *(_PG_TYPES.get(column, "int4") for column in _SUMMED_COLUMNS))
    arrays = ", ".join(f"${index}::{kind}[]" for index, kind in enumerate(types, start=1))
    updates = ", ".join(f"{column} = {table}.{column} + EXCLUDED.{column}" for column in _SUMMED_COLUMNS)
    return (f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays}) "
            f"ON CONFLICT (bucket, {', '.join(dimensions)}) DO UPDATE SET {updates}")


_UPSERTS = {table.name: _unnest_upsert(table.name, dimensions)
            for table, dimensions in ((rollup_minute, DIMENSIONS), (rollup_hour, DIMENSIONS),
                                      (rollup_hour_model, MODEL_DIMENSIONS))}


async def add_postgres(driver: Any, events: Sequence[UsageEvent], as_datetime: Any) -> None:
    """PostgreSQL (``driver``: the asyncpg connection, in the batch's transaction): sum
    ``events`` here and upsert the sums, one statement per rollup."""
    for table, dimensions, sums in rollup_sums(events):
        # Sorted: concurrent writers (workers, nodes) lock rows in the same order, never deadlock.
        ordered = sorted(sums.items())
        columns: list[list[Any]] = [[as_datetime(key[0]) for key, _ in ordered]]
        columns.extend([key[position] for key, _ in ordered] for position in range(1, len(dimensions) + 1))
        for index in range(_COUNTERS):
            if index in _FLOATS:
                columns.append([float(values[index]) for _, values in ordered])
            else:
                columns.append([values[index] for _, values in ordered])
        await driver.execute(_UPSERTS[table.name], *columns)


def postgres_rebuild(table: str, width: str, source: str = "usage_events", dimensions: tuple[str, ...] = DIMENSIONS) -> str:
    """Sum every event of ``source`` into ``table`` in SQL (seeding a large ledger at once)."""
    keys = ", ".join(f"coalesce({dimension}, '')" for dimension in dimensions)
    group = ", ".join(str(position) for position in range(1, len(dimensions) + 2))
    histogram = ", ".join(f"count(*) FILTER (WHERE latency_bucket = {index})"
                          for index in range(len(HISTOGRAM_COLUMNS)))
    columns = ("bucket", *dimensions, *MEASURES, *HISTOGRAM_COLUMNS)
    updates = ", ".join(f"{column} = {table}.{column} + EXCLUDED.{column}" for column in (*MEASURES, *HISTOGRAM_COLUMNS))
    return f"""INSERT INTO {table} ({", ".join(columns)})
SELECT date_bin(INTERVAL '{width}', time, TIMESTAMPTZ '2000-01-01 00:00:00+00'), {keys},
  count(*), count(*) FILTER (WHERE status >= 400), count(*) FILTER (WHERE cache_hit), count(cost_usd),
  coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0), coalesce(sum(cached_tokens), 0),
  coalesce(sum(cache_write_tokens), 0), coalesce(sum(reasoning_tokens), 0), coalesce(sum(cost_usd), 0),
  sum(latency_ms), {histogram}
FROM {source} GROUP BY {group} ORDER BY {group}
ON CONFLICT (bucket, {", ".join(dimensions)}) DO UPDATE SET {updates}"""


POSTGRES_REBUILDS = (postgres_rebuild(rollup_minute.name, "1 minute"), postgres_rebuild(rollup_hour.name, "1 hour"),
                     postgres_rebuild(rollup_hour_model.name, "1 hour", dimensions=MODEL_DIMENSIONS))
