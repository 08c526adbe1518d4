"""Keeping the SQL schema at the newest Alembic revision.

SQLite (the embedded default) upgrades itself at start: it is one file owned by this node, and
a fresh install must work with no manual step. Concurrent workers take an exclusive file lock
beside the database so exactly one runs the migrations. PostgreSQL is shared by every node, and
schema changes there deserve an operator's decision (and one runner, not N racing nodes), so
``start()`` only *checks* and asks for ``junction migrate`` when the schema is behind.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app.errors import ConfigError
from app.resources import alembic_config as shipped_alembic_config
from app.stores.documents.sql import VERSION_TABLE

def alembic_config(**attributes: Any) -> Config:
    """The documents chain's Alembic config; ``attributes`` reach ``migrations/env.py``."""
    return shipped_alembic_config(**attributes)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _current_revision(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection=connection), "head")


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(_current_revision)


async def upgrade_to_head(engine: AsyncEngine) -> None:
    """Run the migrations on ``engine`` (used for SQLite at start, and by tests)."""
    lock_path = _sqlite_lock_path(engine)
    if lock_path is None:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade)
        return
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        # flock blocks; a thread keeps the event loop free while another worker migrates.
        await asyncio.to_thread(fcntl.flock, descriptor, fcntl.LOCK_EX)
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade)
    finally:
        os.close(descriptor)  # closing releases the lock


async def require_head(engine: AsyncEngine) -> None:
    current, head = await current_revision(engine), head_revision()
    if current != head:
        url = engine.url.render_as_string(hide_password=True)
        raise ConfigError(
            f"stores.documents: the database {url} is at schema revision {current or 'none'}, "
            f"this Junction needs {head}; run `junction migrate` first"
        )


def _sqlite_lock_path(engine: AsyncEngine) -> Path | None:
    if engine.dialect.name != "sqlite":
        return None
    database = make_url(str(engine.url)).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).with_name(Path(database).name + ".migrate-lock")
