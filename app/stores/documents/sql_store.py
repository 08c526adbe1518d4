"""The SQL document store: SQLite (aiosqlite) embedded, PostgreSQL (asyncpg) in production."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from junction.errors import ConfigError, ServiceUnavailable
from junction.security.crypto import Cipher
from junction.settings import describe_validation_error
from junction.stores.documents.common import Notifier
from junction.stores.documents.sql_bridges import SqlBridges, SqlThreads
from junction.stores.documents.sql_jobs import SqlJobs
from junction.stores.documents.sql_knowledge import SqlKnowledge
from junction.stores.documents.sql_repos import SqlApiKeys, SqlCredentials, SqlOrgs
from junction.stores.documents.sql_responses import SqlResponses
from junction.stores.documents.sql_schema import require_head, upgrade_to_head
from junction.stores.documents.sql_tools import SqlTools
from junction.stores.notify import ChangeBus
from junction.stores.sql_engine import open_engine

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger("junction.stores.sql")

#: Seconds a SQLite writer waits for another worker's write lock before failing.
SQLITE_BUSY_TIMEOUT_MS = 10_000


class PoolOptions(msgspec.Struct, kw_only=True):
    """PostgreSQL connection pool of one worker, set in the URL's query (``?pool_size=20``).

    The defaults keep a few workers on a few nodes below PostgreSQL's default 100 connections,
    and a request waits seconds, not SQLAlchemy's 30, for a connection before failing.
    """

    #: Connections kept open.
    pool_size: Annotated[int, msgspec.Meta(ge=1)] = 5
    #: Extra connections opened under load, closed again when returned.
    max_overflow: Annotated[int, msgspec.Meta(ge=0)] = 10
    #: Seconds a query waits for a free connection before it fails.
    pool_timeout: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    #: Seconds after which a connection is replaced (firewalls and proxies drop idle ones).
    pool_recycle: Annotated[int, msgspec.Meta(ge=1)] = 1800


POOL_OPTION_NAMES = frozenset(PoolOptions.__struct_fields__)


def split_pool_options(url: str) -> tuple[str, PoolOptions | None]:
    """The URL for the driver (pool options removed) and the pool options (``None`` for SQLite)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigError(
            "stores.documents: not a database URL (sqlite+aiosqlite:// or postgresql+asyncpg://)"
        ) from None
    given = {name: value for name, value in parsed.query.items() if name in POOL_OPTION_NAMES}
    if parsed.get_backend_name() == "sqlite":
        if given:
            raise ConfigError(
                f"stores.documents: {', '.join(sorted(given))}: pool options apply to PostgreSQL only"
            )
        return url, None
    try:
        options = msgspec.convert(given, PoolOptions, strict=False)
    except msgspec.ValidationError as error:  # names the option, never the URL (it may hold a password)
        raise ConfigError(describe_validation_error(error, prefix="stores.documents")) from None
    if not given:
        return url, options
    return parsed.difference_update_query(given).render_as_string(hide_password=False), options


class SqlDatabase:
    """The engine, created in ``start()``; repositories reach it through this handle."""

    def __init__(self, url: str) -> None:
        # Parsed here, when the store is built at start-up, so a bad option stops the server early.
        self.url, self.pool = split_pool_options(url)
        self._engine: AsyncEngine | None = None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("the document store is not started; await store.start() first")
        return self._engine

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads; an unreachable database or an exhausted pool is a 503."""
        async with self.available(), self.engine.connect() as connection:
            yield connection

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction, committed when the block ends without an error."""
        async with self.available(), self.engine.begin() as connection:
            yield connection

    @asynccontextmanager
    async def available(self) -> AsyncIterator[None]:
        try:
            yield
        except (PoolTimeout, OperationalError, InterfaceError, OSError) as error:
            # Logged without the statement or its parameters (they may hold key hashes).
            log.error("the document store is unavailable: %s", type(error).__name__)
            raise ServiceUnavailable("the document store is unavailable; retry shortly",
                                     code="store_unavailable", headers={"Retry-After": "1"}) from error

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    def open(self) -> AsyncEngine:
        if self._engine is not None:
            raise RuntimeError("the document store is already started")
        # hide_parameters: a failed statement's error must not put key hashes or message
        # contents into the gateway log.
        options: dict[str, Any] = {"pool_pre_ping": not self.is_sqlite, "hide_parameters": True}
        if self.pool is not None:
            options.update(msgspec.structs.asdict(self.pool))
        self._engine = open_engine(self.url, **options)
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
        self.jobs = SqlJobs(self.database, notify, cipher)
        self.responses = SqlResponses(self.database, notify)
        self.tools = SqlTools(self.database, notify, cipher)
        self.knowledge = SqlKnowledge(self.database, notify)

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
        try:
            await self.jobs.close()
        finally:
            await self.database.dispose()

    async def ping(self) -> None:
        async with self.database.connect() as connection:
            await connection.execute(text("SELECT 1"))
