"""The usage ledger's schema: migrations up and down on every backend, ``junction migrate``
bringing both SQL stores up to date, and the TimescaleDB branch (hypertable, continuous
aggregates, compression and retention policies), whose jobs the test runs itself: on PostgreSQL
15.20 TimescaleDB's background scheduler fails them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from junction.stores.metrics import migrate
from junction.stores.metrics.queries import UsageQueries, UsageQuery
from junction.stores.metrics.writer import UsageWriter
from tests.metrics.conftest import (
    NO_TIMESCALE,
    TIMESCALE_SERVER,
    call_with_retry,
    close_backend,
    open_backend,
)
from tests.metrics.seed import D5_D7, seeded
from tests.stores.conftest import (
    POSTGRES_SERVER,
    PROJECT_ROOT,
    create_postgres_database,
    drop_postgres_database,
)

LEDGER_TABLES = {"usage_events", "usage_rollup_minute", "usage_rollup_hour", "usage_rollup_hour_model"}


async def tables(engine) -> set[str]:
    async with engine.connect() as connection:
        return await connection.run_sync(lambda sync: set(sa.inspect(sync).get_table_names()))


async def test_migrations_up_and_down(metrics_backend):
    engine, settings = metrics_backend.engine, metrics_backend.settings
    assert LEDGER_TABLES <= await tables(engine)
    assert await migrate.current_revision(engine) == migrate.head_revision()
    await migrate.downgrade(engine, settings)
    assert not LEDGER_TABLES & await tables(engine)
    assert await migrate.current_revision(engine) is None
    await migrate.upgrade(engine, settings)
    assert LEDGER_TABLES <= await tables(engine)
    await UsageWriter(engine, settings.metrics, keeps_rollups=metrics_backend.name != "timescaledb").write(seeded())


async def test_upgrading_a_ledger_fills_the_model_rollup_from_the_hourly_one(metrics_backend):
    """m0002 on a ledger with history: the across-orgs answer (read from the by-model rollup)
    equals the same question asked org by org of the full hourly rollup, hour by hour."""
    engine, settings = metrics_backend.engine, metrics_backend.settings
    writer = UsageWriter(engine, settings.metrics, keeps_rollups=metrics_backend.name != "timescaledb")
    await writer.write(seeded())
    await migrate.downgrade(engine, settings, "m0001_usage_ledger")
    assert "usage_rollup_hour_model" not in await tables(engine)
    await migrate.upgrade(engine, settings)
    queries = UsageQueries(engine, timescale=metrics_backend.name == "timescaledb")
    everyone = UsageQuery(start=D5_D7[0], end=D5_D7[1], bucket="hour", group_by=("provider", "model"))
    by_org = UsageQuery(start=D5_D7[0], end=D5_D7[1], bucket="hour", group_by=("provider", "model"),
                        orgs=("org-a", "org-b"))
    assert queries.table(everyone).name.endswith("_model") and not queries.table(by_org).name.endswith("_model")
    totals, series = await queries.series(everyone)
    assert (totals.requests, totals.errors, totals.input_tokens, totals.cache_hits) == (6, 2, 1310, 1)
    assert series == (await queries.series(by_org))[1]
    assert [(point.bucket.day, point.bucket.hour, point.group["model"], point.stats.requests) for point in series] == [
        (5, 10, "claude-x", 1), (5, 10, "gpt-4o", 3), (5, 11, "claude-x", 1), (6, 9, None, 1)]
    if metrics_backend.name == "sqlite":  # nothing reads the embedded ledger's events by time
        async with engine.connect() as connection:
            indexes = await connection.run_sync(
                lambda sync: {index["name"] for index in sa.inspect(sync).get_indexes("usage_events")})
        assert "ix_usage_events_time" not in indexes


async def test_junction_migrate_brings_both_stores_up_to_date(tmp_path):
    name = await create_postgres_database()
    url = f"{POSTGRES_SERVER}/{name}"
    try:
        config = tmp_path / "junction.toml"
        config.write_text(f'[stores]\ndocuments = "{url}"\nmetrics = "{url}"\n', encoding="utf-8")
        environment = {key: value for key, value in os.environ.items() if key != "JUNCTION_CONFIG"}
        done = subprocess.run([sys.executable, "-m", "junction.cli", "migrate", "--config", str(config)],
                              cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        engine = create_async_engine(url)
        try:
            found = await tables(engine)
            assert LEDGER_TABLES <= found and {"orgs", "api_keys"} <= found
            assert await migrate.current_revision(engine) == migrate.head_revision()
            async with engine.connect() as connection:
                indexes = await connection.run_sync(
                    lambda sync: {index["name"] for index in sa.inspect(sync).get_indexes("usage_events")})
            assert {"ix_usage_events_org_id_time", "ix_usage_events_time"} <= indexes
        finally:
            await engine.dispose()
    finally:
        await drop_postgres_database(name)


async def test_a_postgresql_ledger_behind_head_asks_for_junction_migrate(tmp_path):
    from junction.errors import ConfigError

    name = await create_postgres_database()
    engine = create_async_engine(f"{POSTGRES_SERVER}/{name}")
    try:
        with pytest.raises(ConfigError, match="run `junction migrate` first"):
            await migrate.require_head(engine)
    finally:
        await engine.dispose()
        await drop_postgres_database(name)


@pytest.fixture
async def timescale(tmp_path):
    if TIMESCALE_SERVER is None:
        pytest.skip(NO_TIMESCALE)
    backend, to_drop = await open_backend("timescaledb", tmp_path, chunk_interval="6 hours",
                                          compress_after_days=7, retain_days=90)
    try:
        yield backend
    finally:
        await close_backend(backend, to_drop)


async def _scalar(engine, statement: str):
    async with engine.connect() as connection:
        return (await connection.execute(sa.text(statement))).scalar()


async def test_timescale_branch_hypertable_aggregates_and_policies(timescale):
    engine = timescale.engine
    assert await _scalar(engine, "SELECT count(*) FROM timescaledb_information.hypertables "
                                 "WHERE hypertable_name = 'usage_events'") == 1
    interval = await _scalar(engine, "SELECT time_interval FROM timescaledb_information.dimensions "
                                     "WHERE hypertable_name = 'usage_events'")
    assert interval.total_seconds() == 6 * 3600  # [metrics] chunk_interval
    views = await _scalar(engine, "SELECT string_agg(view_name, ',' ORDER BY view_name) "
                                  "FROM timescaledb_information.continuous_aggregates")
    assert views == "usage_hour,usage_hour_model,usage_minute"
    jobs = await _scalar(engine, "SELECT string_agg(proc_name || ':' || hypertable_name, ',' ORDER BY proc_name, "
                                 "hypertable_name) FROM timescaledb_information.jobs WHERE hypertable_name IS NOT NULL")
    assert "policy_compression:usage_events" in jobs and "policy_retention:usage_events" in jobs
    assert jobs.count("policy_refresh_continuous_aggregate") == 3
    assert jobs.count("policy_retention") == 4  # events, and each aggregate


async def test_timescale_rollups_outlive_raw_retention(timescale):
    """Events older than the retention are dropped from the hypertable; the hourly aggregate,
    kept longer, still answers for them."""
    engine = timescale.engine
    await UsageWriter(engine, timescale.settings.metrics, keeps_rollups=False).write(seeded())
    autocommit = create_async_engine(timescale.url, isolation_level="AUTOCOMMIT")
    try:
        for name in ("usage_minute", "usage_hour", "usage_hour_model"):
            await call_with_retry(autocommit, f"CALL refresh_continuous_aggregate('{name}', NULL, NULL)")
        job = await _scalar(engine, "SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = "
                                    "'policy_retention' AND hypertable_name = 'usage_events'")
        await call_with_retry(autocommit, f"CALL run_job({job})")  # the seeded events are > 90 days old
    finally:
        await autocommit.dispose()
    assert await _scalar(engine, "SELECT count(*) FROM usage_events") == 0
    totals, _ = await UsageQueries(engine, timescale=True).series(UsageQuery(start=D5_D7[0], end=D5_D7[1]))
    assert (totals.requests, totals.errors, totals.input_tokens) == (6, 2, 1310)
    assert totals.cost_usd == pytest.approx(0.002375)



