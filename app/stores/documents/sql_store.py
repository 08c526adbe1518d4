"""The SQL document store: SQLite (aiosqlite) embedded, PostgreSQL (asyncpg) in production."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.security.crypto import Cipher
from app.stores.documents.common import Notifier
from app.stores.documents.sql_bridges import SqlBridges, SqlThreads
from app.stores.documents.sql_repos import SqlApiKeys, SqlCredentials, SqlOrgs
from app.stores.documents.sql_schema import require_head, upgrade_to_head
from app.stores.notify import ChangeBus

#: Seconds a SQLite writer waits for another worker's write lock before failing.
SQLITE_BUSY_TIMEOUT_MS = 10_000


class SqlDatabase:
    """The engine, created in ``start()``; repositories reach it through this handle."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: AsyncEngine | None = None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("the document store is not started; await store.start() first")
        return self._engine

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    def open(self) -> AsyncEngine:
        options: dict[str, Any] = {"pool_pre_ping": not self.is_sqlite}
        self._engine = create_async_engine(self.url, **options)
        if self.is_sqlite:
            event.listen(self._engine.sync_engine, "connect", _sqlite_pragmas)
        return self._engine

    async def dispose(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Foreign keys make org/bridge/thread deletes cascade; WAL lets workers read while one writes.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


class SqlDocumentStore:
    def __init__(self, url: str, *, cipher: Cipher, changes: ChangeBus | None = None) -> None:
        self.database = SqlDatabase(url)
        notify = Notifier(changes)
        self.orgs = SqlOrgs(self.database, notify)
        self.keys = SqlApiKeys(self.database, notify)
        self.credentials = SqlCredentials(self.database, notify, cipher)
        self.bridges = SqlBridges(self.database, notify)
        self.threads = SqlThreads(self.database, notify, self.bridges)

    async def start(self) -> None:
        engine = self.database.open()
        try:
            if self.database.is_sqlite:
                await upgrade_to_head(engine)
            else:
                await require_head(engine)
        except BaseException:
            await self.database.dispose()
            raise

    async def close(self) -> None:
        await self.database.dispose()
