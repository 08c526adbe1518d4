"""Keeping the SQL schema at the newest Alembic revision.

SQLite (the embedded default) upgrades itself at start: it is one file owned by this node, and
a fresh install must work with no manual step. Concurrent workers take an exclusive file lock
beside the database so exactly one runs the migrations. PostgreSQL is shared by every node, and
schema changes there deserve an operator's decision (and one runner, not N racing nodes), so
``start()`` only *checks* and asks for ``junction migrate`` when the schema is behind.

A database already at the newest revision is recognised without Alembic (one ``SELECT`` of the
version table, and the revisions read from the migration files' ``revision``/``down_revision``
lines), so a start or an admin command does not import Alembic for nothing; anything unclear falls
back to Alembic.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError

from junction.errors import ConfigError
from junction.resources import alembic_config as shipped_alembic_config
from junction.resources import migrations_dir
from junction.stores.documents.sql import VERSION_TABLE

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.ext.asyncio import AsyncEngine

_REVISION_LINE = re.compile(r"^revision(?:\s*:[^=]+)?\s*=\s*[\"']([^\"']+)[\"']\s*$", re.MULTILINE)
_DOWN_REVISION_LINE = re.compile(r"^down_revision(?:\s*:[^=]+)?\s*=\s*(.+)$", re.MULTILINE)
_QUOTED = re.compile(r"[\"']([^\"']+)[\"']")

def alembic_config(**attributes: Any) -> Config:
    """The documents chain's Alembic config; ``attributes`` reach ``migrations/env.py``."""
    return shipped_alembic_config(**attributes)


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def head_from_files(versions: Path) -> str | None:
    """The one head of the chain in ``versions`` read from its files' ``revision`` and
    ``down_revision`` lines, or ``None`` when any file does not say them plainly (then ask Alembic)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in versions.glob("*.py"):
        if path.name.startswith("__"):
            continue
        text = path.read_text(encoding="utf-8")
        revision, down = _REVISION_LINE.findall(text), _DOWN_REVISION_LINE.findall(text)
        if len(revision) != 1 or len(down) != 1:
            return None
        revisions.add(revision[0])
        parents.update(_QUOTED.findall(down[0]))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


async def at_head(engine: AsyncEngine, versions: Path | None = None, version_table: str = VERSION_TABLE) -> bool:
    """Whether the database is at the chain's head, told without Alembic; ``False`` when unsure."""
    head = head_from_files(versions or migrations_dir() / "versions")
    if head is None:
        return False
    try:
        async with engine.connect() as connection:
            rows = (await connection.execute(sa.text(f"SELECT version_num FROM {version_table}"))).all()
    except DBAPIError:  # no version table yet: a new database
        return False
    return [row[0] for row in rows] == [head]


def _current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def _upgrade(connection: Connection) -> None:
    from alembic import command

    command.upgrade(alembic_config(connection=connection), "head")


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(_current_revision)


async def upgrade_to_head(engine: AsyncEngine) -> None:
    """Run the migrations on ``engine`` (used for SQLite at start, and by tests)."""
    if await at_head(engine):
        return
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
    if await at_head(engine):
        return
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
