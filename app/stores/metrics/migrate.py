"""Keeping the metrics store's schema (``migrations/metrics``) at its newest revision.

As for the documents store: the embedded SQLite file upgrades itself at start (one worker at a
time, behind a file lock); PostgreSQL is only checked at start and upgraded by ``junction migrate``,
which also (re)applies the TimescaleDB policies from ``[metrics]``. A database already at the newest
revision is recognised without importing Alembic (as the documents store does), so a serving
worker that starts on a migrated file does without it.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from junction.errors import ConfigError
from junction.resources import alembic_config as shipped_alembic_config
from junction.resources import migrations_dir
from junction.settings import Settings
from junction.stores.documents.sql_schema import _sqlite_lock_path, at_head
from junction.stores.metrics import timescale
from junction.stores.metrics.schema import VERSION_TABLE
from junction.stores.sql_engine import open_engine

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.ext.asyncio import AsyncEngine


def alembic_config(**attributes: Any) -> Config:
    return shipped_alembic_config("metrics", **attributes)


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()


def _upgrade(connection: Connection, settings: Settings, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(connection=connection, settings=settings), revision)
    if timescale.is_timescale(connection):
        timescale.apply_policies(connection, settings.metrics)


def _downgrade(connection: Connection, settings: Settings, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(connection=connection, settings=settings), revision)


async def upgrade(engine: AsyncEngine, settings: Settings, revision: str = "head") -> None:
    """Run the migrations (SQLite at start, ``junction migrate``, tests)."""
    # SQLite at head: nothing to do (PostgreSQL goes on: `junction migrate` re-applies the
    # TimescaleDB policies, also at head).
    if revision == "head" and engine.dialect.name == "sqlite" and await _at_head(engine):
        return
    lock_path = _sqlite_lock_path(engine)
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600) if lock_path else None
    try:
        if descriptor is not None:  # flock blocks; a thread keeps the loop free meanwhile
            await asyncio.to_thread(fcntl.flock, descriptor, fcntl.LOCK_EX)
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade, settings, revision)
    finally:
        if descriptor is not None:
            os.close(descriptor)


async def downgrade(engine: AsyncEngine, settings: Settings, revision: str = "base") -> None:
    async with engine.begin() as connection:
        await connection.run_sync(_downgrade, settings, revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(_current)


async def _at_head(engine: AsyncEngine) -> bool:
    return await at_head(engine, migrations_dir("metrics") / "versions", VERSION_TABLE)


async def require_head(engine: AsyncEngine) -> None:
    if await _at_head(engine):
        return
    current, head = await current_revision(engine), head_revision()
    if current != head:
        url = engine.url.render_as_string(hide_password=True)
        raise ConfigError(f"stores.metrics: the database {url} is at schema revision {current or 'none'}, "
                          f"this Junction needs {head}; run `junction migrate` first")


def migrate_url(settings: Settings) -> None:
    """``junction migrate`` for the metrics store (a fresh event loop, one connection)."""

    async def run() -> None:
        engine = open_engine(settings.stores.metrics, poolclass=NullPool)
        try:
            await upgrade(engine, settings)
        finally:
            await engine.dispose()

    asyncio.run(run())

