"""The one way Junction opens a SQL engine: a SQLite database file is made owner-only before
SQLite creates it (it holds prompts, threads, key hashes, sealed credentials and usage rows), for
the serving stores, ``junction migrate`` and the Alembic environments alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from junction.security.private_files import private_sqlite_file


def open_engine(url: str, **options: Any) -> AsyncEngine:
    """``create_async_engine(url, **options)``, the SQLite file made private first."""
    if url.startswith("sqlite"):
        private_sqlite_file(url)
    return create_async_engine(url, **options)


async def run_migrations_online(url: str, configure_and_run: Callable[[Connection], None]) -> None:
    """An Alembic environment's online run: one connection, migrated and committed."""
    engine = open_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(configure_and_run)
            await connection.commit()
    finally:
        await engine.dispose()
