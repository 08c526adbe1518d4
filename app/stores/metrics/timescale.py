"""The TimescaleDB branch of the usage ledger: hypertable, continuous aggregates and policies.

Chosen automatically when the metrics database can load the ``timescaledb`` extension (it must be
in ``shared_preload_libraries``) the first time the ledger is migrated, unless
``[metrics] timescaledb = "off"``. ``usage_events`` then becomes a hypertable, and the continuous
aggregates ``usage_minute`` and ``usage_hour`` (real-time: recent, not yet materialised rows are
aggregated on the fly) replace the rollup tables the writer maintains on the plain branch. The
policies (compression, retention, refresh) follow ``[metrics]`` and are (re)applied by
``junction migrate``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from junction.stores.metrics.schema import DIMENSIONS, HISTOGRAM_COLUMNS, MODEL_DIMENSIONS

if TYPE_CHECKING:
    from junction.stores.metrics.settings import MetricsSettings

log = logging.getLogger("junction.metrics")

#: The continuous aggregates, by rollup granularity.
AGGREGATES = {"minute": "usage_minute", "hour": "usage_hour"}
#: The hourly aggregate by provider and model only (see ``rollup_hour_model``; migration m0002).
MODEL_AGGREGATE = "usage_hour_model"


def extension_loadable(connection: Connection) -> bool:
    """Whether the server has the ``timescaledb`` extension and preloads it; if so, create it.
    (Trying ``CREATE EXTENSION`` on a server that does not preload it kills the connection.)"""
    available = connection.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")).first()
    if available is None:
        log.info("usage ledger: no timescaledb extension on this server; plain PostgreSQL branch")
        return False
    preloaded = connection.execute(sa.text("SELECT current_setting('shared_preload_libraries')")).scalar()
    if "timescaledb" not in (preloaded or ""):
        log.warning("usage ledger: timescaledb is installed but not in shared_preload_libraries; "
                    "plain PostgreSQL branch")
        return False
    connection.execute(sa.text("CREATE EXTENSION IF NOT EXISTS timescaledb"))
    return True


def aggregate_sql(name: str, width: str, dimensions: tuple[str, ...] = DIMENSIONS) -> str:
    histogram = ",\n  ".join(f"(count(*) FILTER (WHERE latency_bucket = {index}))::integer AS {column}"
                             for index, column in enumerate(HISTOGRAM_COLUMNS))
    return f"""
CREATE MATERIALIZED VIEW {name}
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '{width}', time) AS bucket, {", ".join(dimensions)},
  count(*)::integer AS requests,
  (count(*) FILTER (WHERE status >= 400))::integer AS errors,
  (count(*) FILTER (WHERE cache_hit))::integer AS cache_hits,
  count(cost_usd)::integer AS priced_requests,
  sum(input_tokens) AS input_tokens,
  sum(output_tokens) AS output_tokens,
  sum(cached_tokens) AS cached_tokens,
  sum(cache_write_tokens) AS cache_write_tokens,
  sum(reasoning_tokens) AS reasoning_tokens,
  sum(cost_usd) AS cost_usd,
  sum(latency_ms) AS latency_ms_sum,
  {histogram}
FROM usage_events
GROUP BY bucket, {", ".join(dimensions)}
WITH NO DATA"""


def create(connection: Connection) -> None:
    """Turn the freshly created ``usage_events`` into a hypertable with its aggregates."""
    connection.execute(sa.text(
        "SELECT create_hypertable('usage_events', by_range('time', INTERVAL '1 day'))"))
    for bucket, name in AGGREGATES.items():
        connection.execute(sa.text(aggregate_sql(name, f"1 {bucket}")))
    log.info("usage ledger: TimescaleDB hypertable and continuous aggregates created")


def create_model_aggregate(connection: Connection) -> None:
    connection.execute(sa.text(aggregate_sql(MODEL_AGGREGATE, "1 hour", MODEL_DIMENSIONS)))


def drop_model_aggregate(connection: Connection) -> None:
    connection.execute(sa.text(f"SELECT remove_continuous_aggregate_policy('{MODEL_AGGREGATE}', if_exists => true)"))
    connection.execute(sa.text(f"SELECT remove_retention_policy('{MODEL_AGGREGATE}', if_exists => true)"))
    connection.execute(sa.text(f"DROP MATERIALIZED VIEW IF EXISTS {MODEL_AGGREGATE} CASCADE"))


def _aggregates(connection: Connection) -> list[str]:
    """The continuous aggregates this ledger has (the model one from revision m0002 on)."""
    model = connection.execute(sa.text(f"SELECT to_regclass('{MODEL_AGGREGATE}')")).scalar() is not None
    return [*AGGREGATES.values(), *([MODEL_AGGREGATE] if model else [])]


def drop(connection: Connection) -> None:
    # Policies first: a job of theirs running during the DROP would fail it.
    for name in AGGREGATES.values():
        connection.execute(sa.text(f"SELECT remove_continuous_aggregate_policy('{name}', if_exists => true)"))
        connection.execute(sa.text(f"SELECT remove_retention_policy('{name}', if_exists => true)"))
    connection.execute(sa.text("SELECT remove_retention_policy('usage_events', if_exists => true)"))
    connection.execute(sa.text("SELECT remove_compression_policy('usage_events', if_exists => true)"))
    for name in AGGREGATES.values():
        connection.execute(sa.text(f"DROP MATERIALIZED VIEW IF EXISTS {name} CASCADE"))


def is_timescale(connection: Connection) -> bool:
    """Whether this ledger was created on the TimescaleDB branch."""
    if connection.dialect.name != "postgresql":
        return False
    found = connection.execute(sa.text(
        "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")).first()
    if found is None:
        return False
    return connection.execute(sa.text(
        "SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = 'usage_events'")).first() is not None


def apply_policies(connection: Connection, settings: MetricsSettings) -> None:
    """Chunk interval, compression, retention and refresh policies as ``[metrics]`` says.
    Idempotent: each policy is removed and added again, so a changed setting takes effect."""
    run = lambda statement, **params: connection.execute(sa.text(statement), params)  # noqa: E731
    # Intervals are inlined: asyncpg binds intervals only as timedelta, and chunk_interval is
    # validated at start-up (a number and a unit), the others are constants.
    run(f"SELECT set_chunk_time_interval('usage_events', INTERVAL '{settings.chunk_interval}')")
    run("ALTER TABLE usage_events SET (timescaledb.compress, timescaledb.compress_segmentby = 'org_id', "
        "timescaledb.compress_orderby = 'time DESC')")
    run("SELECT remove_compression_policy('usage_events', if_exists => true)")
    if settings.compress_after_days > 0:
        run("SELECT add_compression_policy('usage_events', make_interval(days => :days))",
            days=settings.compress_after_days)
    aggregates = _aggregates(connection)
    retained = {"usage_minute": settings.minute_rollup_retain_days, "usage_hour": settings.hour_rollup_retain_days,
                MODEL_AGGREGATE: settings.hour_rollup_retain_days}
    for table, days in (("usage_events", settings.retain_days), *((name, retained[name]) for name in aggregates)):
        run("SELECT remove_retention_policy(:table, if_exists => true)", table=table)
        if days > 0:
            run("SELECT add_retention_policy(:table, make_interval(days => :days))", table=table, days=days)
    # Refresh windows stay inside the raw retention: refreshing a range whose events were
    # dropped would empty the aggregate there.
    windows = {"usage_minute": ("2 hours", "1 minute", "1 minute"),
               "usage_hour": ("3 days", "1 hour", "15 minutes"),
               MODEL_AGGREGATE: ("3 days", "1 hour", "15 minutes")}
    for name in aggregates:
        start, end, every = windows[name]
        run("SELECT remove_continuous_aggregate_policy(:name, if_exists => true)", name=name)
        run(f"SELECT add_continuous_aggregate_policy(:name, start_offset => INTERVAL '{start}', "
            f"end_offset => INTERVAL '{end}', schedule_interval => INTERVAL '{every}')", name=name)
    log.info("usage ledger: TimescaleDB policies applied (chunks %s, compress after %s d, keep %s d)",
             settings.chunk_interval, settings.compress_after_days, settings.retain_days)


def refresh(connection: Connection) -> None:
    """Materialise the aggregates over all time (tests and benchmarks; the policies do it in
    production). Must run outside a transaction (an AUTOCOMMIT connection)."""
    for name in _aggregates(connection):
        connection.execute(sa.text(f"CALL refresh_continuous_aggregate('{name}', NULL, NULL)"))
