"""Writer-maintained rollups (SQLite and plain PostgreSQL): a flushed batch is summed per
(bucket, org, key, bridge, provider, model) and added to ``usage_rollup_minute`` and
``usage_rollup_hour`` with one upsert each, in the batch's transaction, so rollups and events
never disagree. On PostgreSQL the batch is copied into a temporary table and summed there by
one ``INSERT ... SELECT ... GROUP BY`` per rollup (:func:`postgres_upsert`); on SQLite it is
summed here (:func:`summed`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from app.stores.metrics.events import UsageEvent
from app.stores.metrics.schema import DIMENSIONS, HISTOGRAM_COLUMNS, MEASURES, rollup_hour, rollup_minute

_COUNTERS = len(MEASURES) + len(HISTOGRAM_COLUMNS)
_HISTOGRAM_START = len(MEASURES)
_WIDTHS = ((rollup_minute, 60), (rollup_hour, 3600))


def summed(events: Sequence[UsageEvent], width: int) -> dict[tuple[Any, ...], list[float]]:
    sums: dict[tuple[Any, ...], list[float]] = {}
    for event in events:
        key = (int(event.time // width) * width, event.org_id or "", event.key_id or "",
               event.bridge_id or "", event.provider or "", event.model or "")
        row = sums.get(key)
        if row is None:
            row = sums[key] = [0] * _COUNTERS
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


async def add(connection: AsyncConnection, events: Sequence[UsageEvent], as_datetime: Any) -> None:
    """SQLite: sum ``events`` here and upsert the sums."""
    from sqlalchemy.dialects.sqlite import insert

    columns = (*MEASURES, *HISTOGRAM_COLUMNS)
    for table, width in _WIDTHS:
        sums = summed(events, width)
        # Sorted: concurrent writers (workers, nodes) lock rows in the same order, never deadlock.
        rows = [{"bucket": as_datetime(key[0]), **dict(zip(DIMENSIONS, key[1:])), **dict(zip(columns, values))}
                for key, values in sorted(sums.items())]
        statement = insert(table)
        statement = statement.on_conflict_do_update(
            index_elements=["bucket", *DIMENSIONS],
            set_={column: table.c[column] + statement.excluded[column] for column in columns})
        await connection.execute(statement, rows)



#: The batch's staging table on PostgreSQL (per connection, emptied at commit).
STAGING = "junction_usage_batch"
STAGING_DDL = f"CREATE TEMP TABLE IF NOT EXISTS {STAGING} (LIKE usage_events) ON COMMIT DELETE ROWS"


def postgres_upsert(table: str, width: str) -> str:
    """Sum the staged batch into ``table`` (rows in key order: concurrent writers lock rows in
    the same order, never deadlock)."""
    keys = ", ".join(f"coalesce({dimension}, '')" for dimension in DIMENSIONS)
    histogram = ", ".join(f"count(*) FILTER (WHERE latency_bucket = {index})"
                          for index in range(len(HISTOGRAM_COLUMNS)))
    columns = ("bucket", *DIMENSIONS, *MEASURES, *HISTOGRAM_COLUMNS)
    updates = ", ".join(f"{column} = {table}.{column} + EXCLUDED.{column}" for column in (*MEASURES, *HISTOGRAM_COLUMNS))
    return f"""INSERT INTO {table} ({", ".join(columns)})
SELECT date_bin(INTERVAL '{width}', time, TIMESTAMPTZ '2000-01-01 00:00:00+00'), {keys},
  count(*), count(*) FILTER (WHERE status >= 400), count(*) FILTER (WHERE cache_hit), count(cost_usd),
  coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0), coalesce(sum(cached_tokens), 0),
  coalesce(sum(cache_write_tokens), 0), coalesce(sum(reasoning_tokens), 0), coalesce(sum(cost_usd), 0),
  sum(latency_ms), {histogram}
FROM {STAGING} GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
ON CONFLICT (bucket, {", ".join(DIMENSIONS)}) DO UPDATE SET {updates}"""


POSTGRES_UPSERTS = (postgres_upsert(rollup_minute.name, "1 minute"), postgres_upsert(rollup_hour.name, "1 hour"))
