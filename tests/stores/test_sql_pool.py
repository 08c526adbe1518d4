"""PostgreSQL connection pool options: set in the ``[stores] documents`` URL, validated when the
store is built (at start-up), and in force on the real PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import TimeoutError as PoolTimeout

from junction.errors import ConfigError, ServiceUnavailable
from junction.security.crypto import Cipher
from junction.stores.documents import open_document_store
from junction.stores.documents.sql_store import SqlDocumentStore
from tests.stores.conftest import OLD_KEY


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("pool_size=0", "pool_size"),
        ("pool_size=many", "pool_size"),
        ("max_overflow=-1", "max_overflow"),
        ("pool_timeout=0", "pool_timeout"),
        ("pool_recycle=0", "pool_recycle"),
    ],
)
def test_bad_pool_options_stop_start_up_naming_the_option(query: str, named: str) -> None:
    url = f"postgresql+asyncpg://junction:hunter2@db.internal/junction?{query}"
    with pytest.raises(ConfigError) as refused:
        open_document_store(url, cipher=Cipher([OLD_KEY]))
    assert "stores.documents" in refused.value.message and named in refused.value.message
    assert "hunter2" not in refused.value.message


def test_pool_options_on_sqlite_are_refused() -> None:
    with pytest.raises(ConfigError, match="PostgreSQL"):
        open_document_store("sqlite+aiosqlite:///junction.db?pool_size=5", cipher=Cipher([OLD_KEY]))


async def test_the_pool_has_sensible_defaults(postgres_database: str) -> None:
    store = open_document_store(postgres_database, cipher=Cipher([OLD_KEY]))
    assert isinstance(store, SqlDocumentStore)
    await store.start()
    try:
        pool = store.database.engine.pool
        assert (pool.size(), pool.timeout()) == (5, 10.0)  # type: ignore[attr-defined]
    finally:
        await store.close()


async def test_a_full_pool_fails_after_the_configured_wait(postgres_database: str) -> None:
    url = f"{postgres_database}?pool_size=2&max_overflow=0&pool_timeout=0.3"
    store = open_document_store(url, cipher=Cipher([OLD_KEY]))
    assert isinstance(store, SqlDocumentStore)
    await store.start()
    try:
        org = await store.orgs.create("pooled")  # the pool options never reach the driver
        engine = store.database.engine
        async with engine.connect(), engine.connect():
            started = asyncio.get_running_loop().time()
            with pytest.raises(ServiceUnavailable) as refused:
                await store.orgs.get(org.id)
            assert isinstance(refused.value.__cause__, PoolTimeout)
            assert refused.value.status == 503 and refused.value.headers == {"Retry-After": "1"}
            assert 0.25 < asyncio.get_running_loop().time() - started < 2.0
        assert (await store.orgs.get(org.id)).name == "pooled"
    finally:
        await store.close()
