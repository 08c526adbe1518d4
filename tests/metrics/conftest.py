"""Metrics-store backends: SQLite (a temporary file), the real PostgreSQL at 127.0.0.1:5432 (a
fresh database per test module, plain branch), and TimescaleDB when
``JUNCTION_TEST_TIMESCALE_URL`` names a server whose ``shared_preload_libraries`` has
``timescaledb`` (e.g. ``postgresql+asyncpg://postgres@127.0.0.1:5433``); else those tests skip."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from junction.settings import Settings, settings_from_mapping
from junction.stores.metrics import migrate
from tests.stores.conftest import POSTGRES_SERVER

TIMESCALE_SERVER = os.environ.get("JUNCTION_TEST_TIMESCALE_URL")
NO_TIMESCALE = "JUNCTION_TEST_TIMESCALE_URL is not set (a PostgreSQL server preloading timescaledb)"
BACKENDS = ["sqlite", "postgresql", "timescaledb"]
NO_POLICIES = {"retain_days": 0, "compress_after_days": 0, "minute_rollup_retain_days": 0,
               "hour_rollup_retain_days": 0}


async def _admin(server: str, statement: str) -> None:
    engine = create_async_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(sa.text(statement))
    finally:
        await engine.dispose()


@dataclass
class MetricsBackend:
    name: str
    url: str
    settings: Settings
    engine: AsyncEngine


async def open_backend(kind: str, directory: Path, **metrics: object) -> tuple[MetricsBackend, str | None]:
    """A migrated metrics database of ``kind``; returns it and the PostgreSQL server/database to
    drop afterwards (``None`` for SQLite)."""
    server = None
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{directory / 'metrics.db'}"
        database = None
    else:
        server = POSTGRES_SERVER if kind == "postgresql" else TIMESCALE_SERVER
        if server is None:
            pytest.skip(NO_TIMESCALE)
        database = f"junction_test_{secrets.token_hex(6)}"
        await _admin(server, f'CREATE DATABASE "{database}"')
        url = f"{server}/{database}"
    settings = settings_from_mapping({"stores": {"metrics": url}, "metrics": metrics})
    engine = create_async_engine(url)
    await migrate.upgrade(engine, settings)
    if kind == "timescaledb":
        # The tests run the jobs themselves (on PG 15.20 the scheduler fails them anyway): keep
        # the scheduler from racing them.
        async with engine.begin() as connection:
            await connection.execute(sa.text(
                "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs WHERE job_id >= 1000"))
        for _ in range(100):  # and let any job that already started finish
            async with engine.connect() as connection:
                running = (await connection.execute(sa.text(
                    "SELECT count(*) FROM timescaledb_information.job_stats WHERE job_status = 'Running'"))).scalar()
            if not running:
                break
            await asyncio.sleep(0.05)
    return MetricsBackend(kind, url, settings, engine), (f"{server}|{database}" if server else None)


async def close_backend(backend: MetricsBackend, to_drop: str | None) -> None:
    await backend.engine.dispose()
    if to_drop is not None:
        server, database = to_drop.split("|")
        await _admin(server, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
async def metrics_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MetricsBackend]:
    # No retention or compression: the seeded events are older than any default retention, and
    # TimescaleDB's jobs start as soon as a policy is added (a dedicated test runs them).
    backend, to_drop = await open_backend(request.param, tmp_path, **NO_POLICIES)
    try:
        yield backend
    finally:
        await close_backend(backend, to_drop)


@pytest.fixture
async def postgres_backend(tmp_path: Path) -> AsyncIterator[MetricsBackend]:
    backend, to_drop = await open_backend("postgresql", tmp_path, flush_seconds=0.05, max_backoff_seconds=0.2)
    try:
        yield backend
    finally:
        await close_backend(backend, to_drop)


async def call_with_retry(engine: AsyncEngine, statement: str, attempts: int = 50) -> None:
    """``CALL`` a TimescaleDB procedure on an AUTOCOMMIT connection, retrying while a job that
    started before it was unscheduled still holds the lock."""
    for attempt in range(attempts):
        try:
            async with engine.connect() as connection:
                await connection.execute(sa.text(statement))
            return
        except sa.exc.DBAPIError as error:
            if "concurrent" not in str(error) or attempt == attempts - 1:
                raise
            await asyncio.sleep(0.1)
