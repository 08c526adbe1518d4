"""The SQL schema: Alembic migrations are the one source, applied by ``junction migrate`` (both
dialects) and automatically at start on SQLite; PostgreSQL refuses to start behind the head."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from junction.errors import ConfigError
from junction.security.crypto import Cipher
from junction.stores.documents import open_document_store
from junction.stores.documents.protocol import NewApiKey
from junction.stores.documents.sql import VERSION_TABLE, metadata
from junction.stores.documents.sql_schema import alembic_config, current_revision, head_revision
from tests.stores.conftest import (
    OLD_KEY,
    POSTGRES_SERVER,
    create_postgres_database,
    drop_postgres_database,
    run_junction_migrate,
)


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"version_table": VERSION_TABLE, "compare_type": True}
    )
    return compare_metadata(context, metadata)


async def schema_differences(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as connection:
        return await connection.run_sync(_differences)


async def test_embedded_sqlite_creates_its_schema_at_start_and_survives_restart(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    first = open_document_store(url, cipher=Cipher([OLD_KEY]))
    await first.start()
    org = await first.orgs.create("persisted")
    issued = await first.keys.create(org.id, NewApiKey(name="k"))
    await first.close()

    again = open_document_store(url, cipher=Cipher([OLD_KEY]))
    await again.start()
    try:
        assert (await again.keys.authenticate(issued.key)) is not None
    finally:
        await again.close()

    engine = create_async_engine(url)
    try:
        assert await current_revision(engine) == head_revision()
        assert await schema_differences(engine) == []  # migrations build exactly sql.py's tables
    finally:
        await engine.dispose()


async def test_workers_starting_together_on_a_fresh_sqlite_file_all_succeed(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'race.db'}"
    stores = [open_document_store(url, cipher=Cipher([OLD_KEY])) for _ in range(4)]
    await asyncio.gather(*(store.start() for store in stores))
    try:
        orgs = await asyncio.gather(
            *(store.orgs.create(f"org {index}") for index, store in enumerate(stores))
        )
        assert len(await stores[0].orgs.list()) == len(orgs)
    finally:
        for store in stores:
            await store.close()


async def test_postgresql_refuses_to_start_until_junction_migrate_ran(tmp_path: Path) -> None:
    name = await create_postgres_database()
    url = f"{POSTGRES_SERVER}/{name}"
    try:
        store = open_document_store(url, cipher=Cipher([OLD_KEY]))
        with pytest.raises(ConfigError, match="junction migrate"):
            await store.start()

        migrated = await asyncio.to_thread(run_junction_migrate, tmp_path, url)
        assert migrated.returncode == 0, migrated.stderr
        again = await asyncio.to_thread(run_junction_migrate, tmp_path, url)  # idempotent
        assert again.returncode == 0, again.stderr

        store = open_document_store(url, cipher=Cipher([OLD_KEY]))
        await store.start()
        try:
            assert (await store.orgs.create("works")).name == "works"
        finally:
            await store.close()
        engine = create_async_engine(url)
        try:
            assert await schema_differences(engine) == []
        finally:
            await engine.dispose()
    finally:
        await drop_postgres_database(name)


async def test_junction_migrate_creates_the_sqlite_schema(tmp_path: Path) -> None:
    database = tmp_path / "cli.db"
    result = await asyncio.to_thread(run_junction_migrate, tmp_path, f"sqlite+aiosqlite:///{database}")
    assert result.returncode == 0, result.stderr
    engine = create_async_engine(f"sqlite+aiosqlite:///{database}")
    try:
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_junction_migrate_with_a_mongodb_documents_store_says_there_is_nothing_to_do(
    tmp_path: Path,
) -> None:
    result = await asyncio.to_thread(run_junction_migrate, tmp_path, "mongodb://127.0.0.1:1/junction")
    assert result.returncode == 0, result.stderr
    assert "MongoDB" in result.stderr


def _downgrade_then_upgrade(connection: Connection) -> None:
    command.downgrade(alembic_config(connection=connection), "base")
    command.upgrade(alembic_config(connection=connection), "head")


async def test_migrations_downgrade_and_upgrade_cleanly(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cycle.db'}"
    store = open_document_store(url, cipher=Cipher([OLD_KEY]))
    await store.start()
    await store.close()
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_downgrade_then_upgrade)
        assert await schema_differences(engine) == []
    finally:
        await engine.dispose()
