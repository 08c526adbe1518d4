"""The plain-PostgreSQL branch's rollups, kept by the database itself: a statement-level
``AFTER INSERT`` trigger on ``usage_events`` (migration m0003) sums the statement's new rows (its
transition table) per minute and adds them to ``usage_rollup_minute``, then re-sums those per
hour into ``usage_rollup_hour`` and ``usage_rollup_hour_model``, in the inserting transaction.

Why in the database rather than in the writer: the writer's ``COPY`` is then its only work (no
per-event summing in Python, no per-value array encoding of the sums), the sums are computed from
exactly the rows stored, whoever inserted them (the writer, a hand-written ``INSERT``, a bulk
load), and the bucketing is the database's own. One ``COPY`` of a batch is one statement, so one
trigger run per batch. Buckets are ``date_bin`` from 2000-01-01 UTC: whole minutes and hours in
UTC whatever the session's time zone. The upserts take their rows sorted by key, so concurrent
writers (two batches in flight, several workers or nodes) lock them in the same order and never
deadlock.

(TimescaleDB keeps its own continuous aggregates and gets no trigger; SQLite's writer sums in
Python, see :mod:`junction.stores.metrics.rollups`.)
"""

from __future__ import annotations

from junction.stores.metrics.schema import (
    DIMENSIONS,
    HISTOGRAM_COLUMNS,
    MEASURES,
    MODEL_DIMENSIONS,
    rollup_hour,
    rollup_hour_model,
    rollup_minute,
)

FUNCTION = "junction_usage_rollup"
TRIGGER = "junction_usage_rollup"
_SUMMED = (*MEASURES, *HISTOGRAM_COLUMNS)
_ORIGIN = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"


def _positions(count: int) -> str:
    return ", ".join(str(position) for position in range(1, count + 1))


def _minute_sums(source: str) -> str:
    """The statement's rows summed per minute and dimension (NULL dimensions become '')."""
    keys = ", ".join(f"coalesce({dimension}, '') AS {dimension}" for dimension in DIMENSIONS)
    histogram = ", ".join(f"count(*) FILTER (WHERE latency_bucket = {index}) AS {column}"
                          for index, column in enumerate(HISTOGRAM_COLUMNS))
    return f"""SELECT date_bin(INTERVAL '1 minute', time, {_ORIGIN}) AS bucket, {keys},
  count(*) AS requests, count(*) FILTER (WHERE status >= 400) AS errors,
  count(*) FILTER (WHERE cache_hit) AS cache_hits, count(cost_usd) AS priced_requests,
  coalesce(sum(input_tokens), 0) AS input_tokens, coalesce(sum(output_tokens), 0) AS output_tokens,
  coalesce(sum(cached_tokens), 0) AS cached_tokens, coalesce(sum(cache_write_tokens), 0) AS cache_write_tokens,
  coalesce(sum(reasoning_tokens), 0) AS reasoning_tokens, coalesce(sum(cost_usd), 0) AS cost_usd,
  sum(latency_ms) AS latency_ms_sum, {histogram}
FROM {source} GROUP BY {_positions(len(DIMENSIONS) + 1)}"""


def _hour_sums(source: str, dimensions: tuple[str, ...]) -> str:
    sums = ", ".join(f"sum({column})" for column in _SUMMED)
    return (f"SELECT date_bin(INTERVAL '1 hour', bucket, {_ORIGIN}), {', '.join(dimensions)}, {sums} "
            f"FROM {source} GROUP BY {_positions(len(dimensions) + 1)}")


def _upsert(table: str, dimensions: tuple[str, ...], select: str) -> str:
    columns = ("bucket", *dimensions, *_SUMMED)
    updates = ", ".join(f"{column} = {table}.{column} + EXCLUDED.{column}" for column in _SUMMED)
    return (f"INSERT INTO {table} ({', '.join(columns)}) {select} ORDER BY {_positions(len(dimensions) + 1)}\n"
            f"ON CONFLICT (bucket, {', '.join(dimensions)}) DO UPDATE SET {updates}")


def rollup_statement(source: str = "batch") -> str:
    """One statement adding the rows of ``source`` to the three rollups (the minute sums are
    computed once and re-summed per hour)."""
    return (f"WITH minutes AS MATERIALIZED ({_minute_sums(source)}),\n"
            f"to_minute AS ({_upsert(rollup_minute.name, DIMENSIONS, 'SELECT * FROM minutes')}),\n"
            f"to_hour AS ({_upsert(rollup_hour.name, DIMENSIONS, _hour_sums('minutes', DIMENSIONS))})\n"
            f"{_upsert(rollup_hour_model.name, MODEL_DIMENSIONS, _hour_sums('minutes', MODEL_DIMENSIONS))}")


def create_statements() -> list[str]:
    return [
        f"""CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $rollup$
BEGIN
{rollup_statement("batch")};
RETURN NULL;
END
$rollup$""",
        f"DROP TRIGGER IF EXISTS {TRIGGER} ON usage_events",
        f"""CREATE TRIGGER {TRIGGER} AFTER INSERT ON usage_events REFERENCING NEW TABLE AS batch
FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()""",
    ]


DROP_STATEMENTS = [f"DROP TRIGGER IF EXISTS {TRIGGER} ON usage_events", f"DROP FUNCTION IF EXISTS {FUNCTION}()"]
