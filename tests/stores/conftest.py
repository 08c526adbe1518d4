"""Document store backends for the contract suite.

Every backend the project supports runs the same tests: SQLite (a temporary file) and the real
PostgreSQL at 127.0.0.1:5432 always (a fresh ``junction_test_<random>`` database per session,
migrated with ``junction migrate`` and dropped afterwards); MongoDB through mongomock-motor always,
and a real MongoDB when ``JUNCTION_TEST_MONGODB_URL`` is set (a fresh database, dropped after).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from junction.security.crypto import Cipher, EncryptionKey
from junction.stores.documents import open_document_store
from junction.stores.documents.mongo_store import MongoDocumentStore
from junction.stores.documents.protocol import DocumentStore
from junction.stores.notify import ChangeBus
from tests.stores.mongomock_shim import mock_database

POSTGRES_SERVER = os.environ.get("JUNCTION_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432")
MONGODB_URL = os.environ.get("JUNCTION_TEST_MONGODB_URL")
PROJECT_ROOT = Path(__file__).resolve().parents[2]

OLD_KEY = EncryptionKey(id="k1", material=bytes(range(32)))
NEW_KEY = EncryptionKey(id="k2", material=bytes(range(32, 64)))


def run_junction_migrate(directory: Path, documents_url: str) -> subprocess.CompletedProcess[str]:
    """``junction migrate --config ...`` in a child process, as an operator runs it."""
    config = directory / "migrate.toml"
    config.write_text(f'[stores]\ndocuments = "{documents_url}"\n'
                      f'metrics = "sqlite+aiosqlite:///{directory / "metrics.db"}"\n', encoding="utf-8")
    environment = {key: value for key, value in os.environ.items() if key != "JUNCTION_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "junction.cli", "migrate", "--config", str(config)],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def _admin(statement: str) -> None:
    engine = create_async_engine(f"{POSTGRES_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(sa.text(statement))
    finally:
        await engine.dispose()


async def create_postgres_database() -> str:
    name = f"junction_test_{secrets.token_hex(6)}"
    await _admin(f'CREATE DATABASE "{name}"')
    return name


async def drop_postgres_database(name: str) -> None:
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Backend:
    """One backend under test: how to open a store on its (shared) database, and raw access."""

    name: str
    url: str
    #: For MongoDB: the database, to read raw documents (and, for the stand-in, to lend the store).
    mongo_database: Any = None
    lend_database: bool = False
    stores: list[DocumentStore] = field(default_factory=list)

    async def open(self, cipher: Cipher | None = None, changes: ChangeBus | None = None) -> DocumentStore:
        cipher = cipher or Cipher([OLD_KEY])
        if self.lend_database:
            store: DocumentStore = MongoDocumentStore(
                self.url, cipher=cipher, changes=changes, database=self.mongo_database
            )
        else:
            store = open_document_store(self.url, cipher=cipher, changes=changes)
        await store.start()
        self.stores.append(store)
        return store

    async def raw_credential_rows(self, org_id: str) -> list[dict[str, Any]]:
        """The stored credential rows/documents exactly as the database holds them."""
        if self.mongo_database is not None:
            cursor = self.mongo_database["provider_credentials"].find({"org_id": org_id})
            return [dict(document) for document in await cursor.to_list(None)]
        engine = create_async_engine(self.url)
        try:
            async with engine.connect() as connection:
                result = await connection.execute(
                    sa.text("SELECT * FROM provider_credentials WHERE org_id = :org"), {"org": org_id}
                )
                return [dict(row._mapping) for row in result]
        finally:
            await engine.dispose()

    async def close(self) -> None:
        for store in self.stores:
            await store.close()
        self.stores.clear()


@pytest.fixture(scope="session")
async def postgres_database(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A fresh, migrated PostgreSQL database URL for the session; dropped at the end."""
    name = await create_postgres_database()
    url = f"{POSTGRES_SERVER}/{name}"
    try:
        migrated = run_junction_migrate(tmp_path_factory.mktemp("pg-migrate"), url)
        assert migrated.returncode == 0, migrated.stderr
        yield url
    finally:
        await drop_postgres_database(name)


def with_database(url: str, name: str) -> str:
    """``url`` naming database ``name`` (the store uses the URL's database)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


#: The real MongoDB joins only when configured (there is no MongoDB server on the dev/CI machine).
BACKENDS = ["sqlite", "postgresql", "mongomock"] + (["mongodb"] if MONGODB_URL else [])


@pytest.fixture(params=BACKENDS)
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_database: str
) -> AsyncIterator[Backend]:
    """Each contract test runs once per backend, on a database of its own (or, for PostgreSQL,
    the session's database: ids are random, so tests never see each other's records)."""
    kind = request.param
    if kind == "sqlite":
        yield Backend(kind, f"sqlite+aiosqlite:///{tmp_path / 'documents.db'}")
    elif kind == "postgresql":
        yield Backend(kind, postgres_database)
    elif kind == "mongomock":
        yield Backend(kind, "mongodb://mongomock", mongo_database=mock_database(), lend_database=True)
    else:
        from pymongo import AsyncMongoClient

        assert MONGODB_URL
        client: AsyncMongoClient[Any] = AsyncMongoClient(MONGODB_URL, tz_aware=True)
        name = f"junction_test_{secrets.token_hex(6)}"
        try:
            yield Backend(kind, with_database(MONGODB_URL, name), mongo_database=client[name])
        finally:
            await client.drop_database(name)
            await client.close()


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[DocumentStore]:
    try:
        yield await backend.open()
    finally:
        await backend.close()
