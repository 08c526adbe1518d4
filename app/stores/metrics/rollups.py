"""Writer-maintained rollups (SQLite): a flushed batch is summed here per
(bucket, org, key, bridge, provider, model) (:func:`add_columns`, chunk by chunk as its inserts
are built; the hour sums from the minute ones, and per (hour, provider, model) from those) and
added to ``usage_rollup_minute``,
``usage_rollup_hour`` and ``usage_rollup_hour_model`` with one upsert each, in the batch's
transaction, so rollups and events never disagree. (PostgreSQL sums in the database: a trigger
on the plain branch, see :mod:`junction.stores.metrics.pg_rollups`; continuous aggregates on
TimescaleDB.)"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from junction.stores.metrics.schema import (
    DIMENSIONS,
    EVENT_COLUMNS,
    HISTOGRAM_COLUMNS,
    MEASURES,
    MODEL_DIMENSIONS,
    rollup_hour,
    rollup_hour_model,
    rollup_minute,
)

_COUNTERS = len(MEASURES) + len(HISTOGRAM_COLUMNS)
_HISTOGRAM_START = len(MEASURES)
#: Rollup rows being summed: (bucket epoch, dimensions...) -> measures then histogram counts.
Sums = dict[tuple[Any, ...], list[float]]


_COLUMN = {name: index for index, name in enumerate(EVENT_COLUMNS)}
_TIME, _STATUS, _CACHE_HIT, _COST, _LATENCY, _BUCKET = (
    _COLUMN[name] for name in ("time", "status", "cache_hit", "cost_usd", "latency_ms", "latency_bucket"))
#: The event columns a rollup row is keyed by (after the bucket), in ``DIMENSIONS`` order.
_DIMENSIONS = tuple(_COLUMN[name] for name in DIMENSIONS)
#: The token columns, in ``MEASURES`` order (measures 4 to 8).
_TOKENS = tuple(_COLUMN[name] for name in MEASURES[4:9])


def add_columns(sums: Sums, columns: Sequence[Sequence[Any]],
                constant: Sequence[bool], width: int = 60) -> None:
    """Add a chunk of events, given column by column (``EVENT_COLUMNS`` order, the time as epoch
    seconds; ``constant[i]``: column ``i`` holds one value throughout), to ``sums``.

    A chunk of a busy ledger mostly falls in one bucket with one org, key, bridge and model: then
    it is one rollup row, each measure summed over its column by the builtins (a Python loop
    over the events cost the serving worker more than SQLite's insert of them). A mixed chunk is
    summed event by event."""
    times = columns[_TIME]
    bucket = int(min(times) // width) * width
    if bucket != int(max(times) // width) * width or not all(constant[index] for index in _DIMENSIONS):
        _add_rows(sums, columns, width)
        return
    key = (bucket, *(columns[index][0] or "" for index in _DIMENSIONS))
    row = sums.get(key)
    if row is None:
        row = sums[key] = [0] * _COUNTERS
    size = len(times)
    statuses = columns[_STATUS]
    costs = columns[_COST]
    row[0] += size
    if constant[_STATUS]:
        row[1] += size if statuses[0] >= 400 else 0
    else:
        row[1] += sum(status >= 400 for status in statuses)
    row[2] += sum(columns[_CACHE_HIT])
    priced = size - costs.count(None)
    row[3] += priced
    for measure, index in enumerate(_TOKENS, 4):
        row[measure] += sum(filter(None, columns[index]))  # NULL counts as 0
    row[9] += sum(costs) if priced == size else sum(filter(None, costs))
    row[10] += sum(columns[_LATENCY])
    buckets = columns[_BUCKET]
    if constant[_BUCKET]:
        row[_HISTOGRAM_START + buckets[0]] += size
    else:
        for latency_bucket in set(buckets):
            row[_HISTOGRAM_START + latency_bucket] += buckets.count(latency_bucket)


def _add_rows(sums: Sums, columns: Sequence[Sequence[Any]], width: int) -> None:
    zeros = [0] * _COUNTERS
    tokens = zip(*(columns[index] for index in _TOKENS))
    dimensions = zip(*(columns[index] for index in _DIMENSIONS))
    for time, (org, key_id, bridge, provider, model), status, cache_hit, cost, counts, latency, bucket in zip(
            columns[_TIME], dimensions, columns[_STATUS], columns[_CACHE_HIT], columns[_COST], tokens,
            columns[_LATENCY], columns[_BUCKET]):
        key = (int(time // width) * width, org or "", key_id or "", bridge or "", provider or "", model or "")
        row = sums.get(key)
        if row is None:
            row = sums[key] = zeros.copy()
        row[0] += 1
        if status >= 400:
            row[1] += 1
        if cache_hit:
            row[2] += 1
        if cost is not None:
            row[3] += 1
            row[9] += cost
        for measure, count in enumerate(counts, 4):
            if count:
                row[measure] += count
        row[10] += latency
        row[_HISTOGRAM_START + bucket] += 1


def coarser(sums: Sums, width: int, model_only: bool = False) -> Sums:
    """Sums of a finer width (minutes) re-bucketed into ``width`` (hours); ``model_only``: keyed
    by bucket, provider and model only (the other dimensions summed)."""
    coarse: Sums = {}
    for key, values in sums.items():
        wide = (key[0] // width * width, *(key[-2:] if model_only else key[1:]))
        row = coarse.get(wide)
        if row is None:
            coarse[wide] = values.copy()
        else:
            coarse[wide] = [a + b for a, b in zip(row, values)]
    return coarse


def rollup_sums(minutes: Sums) -> list[tuple[sa.Table, tuple[str, ...], Sums]]:
    """Each rollup table, its dimensions and a batch's sums for it, from its per-minute sums."""
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


def sqlite_upserts(minutes: Sums, bucket_text: Any) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """SQLite: a batch's per-minute sums (:func:`add_columns`) as one upsert statement and its rows
    per rollup table (plain tuples for the driver's ``executemany``). ``bucket_text(epoch)``: a
    bucket as SQLAlchemy stores datetimes on SQLite."""
    # Sorted: concurrent writers (workers, nodes) lock rows in the same order, never deadlock.
    return [(_SQLITE_UPSERTS[table.name],
             [(bucket_text(key[0]), *key[1:], *values) for key, values in sorted(sums.items())])
            for table, _dimensions, sums in rollup_sums(minutes)]

