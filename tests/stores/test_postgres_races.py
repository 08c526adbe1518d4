"""Writes racing a deletion on the real PostgreSQL (READ COMMITTED): the existence check and the
write must act as one, so the writer sees NotFound — not a foreign-key error or a missing row
(500), nor, for a bridge, a made-up slug conflict (409)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from junction.errors import NotFound
from junction.security.crypto import Cipher
from junction.stores.documents import open_document_store
from junction.stores.documents.bridges import NewBridge
from junction.stores.documents.protocol import DocumentStore, NewApiKey, ProviderSecret
from tests.stores.conftest import OLD_KEY

Write = Callable[[DocumentStore, str], Awaitable[object]]
ORG_WRITES: dict[str, Write] = {
    "keys.create": lambda store, org_id: store.keys.create(org_id, NewApiKey(name="k")),
    "credentials.put": lambda store, org_id: store.credentials.put(
        org_id, "openai", ProviderSecret(api_key="sk-x")
    ),
    "bridges.create": lambda store, org_id: store.bridges.create(
        org_id, NewBridge(slug="another", name="B", model="openai/gpt-4o")
    ),
    "threads.create": lambda store, org_id: store.threads.create(org_id),
}
BRIDGE_WRITES: dict[str, Write] = {
    "threads.create(bridge)": lambda store, org_id: store.threads.create(org_id, "b"),
    "bridges.publish": lambda store, org_id: store.bridges.publish(org_id, "b", 1),
}


async def write_while_deleting(postgres_database: str, table: str, write: Write) -> None:
    """Run ``write`` while another connection deletes the row it depends on (org or bridge ``b``):
    the write reaches the row while the delete is uncommitted, then the delete commits."""
    store = open_document_store(postgres_database, cipher=Cipher([OLD_KEY]))
    await store.start()
    deleter = create_async_engine(postgres_database)
    try:
        org = await store.orgs.create("racing")
        bridge = await store.bridges.create(org.id, NewBridge(slug="b", name="B", model="openai/gpt-4o"))
        await store.bridges.create_version(org.id, bridge.id)
        doomed = org.id if table == "orgs" else bridge.id
        async with deleter.connect() as connection:
            transaction = await connection.begin()
            await connection.execute(sa.text(f"DELETE FROM {table} WHERE id = :id"), {"id": doomed})
            writing = asyncio.create_task(write(store, org.id))
            await asyncio.sleep(0.3)  # the write now waits on the deleted, uncommitted row
            await transaction.commit()
        with pytest.raises(NotFound):
            await writing
    finally:
        await deleter.dispose()
        await store.close()


@pytest.mark.parametrize("write", ORG_WRITES)
async def test_a_write_into_an_org_deleted_meanwhile_is_not_found(postgres_database: str, write: str) -> None:
    await write_while_deleting(postgres_database, "orgs", ORG_WRITES[write])


@pytest.mark.parametrize("write", BRIDGE_WRITES)
async def test_a_write_on_a_bridge_deleted_meanwhile_is_not_found(postgres_database: str, write: str) -> None:
    await write_while_deleting(postgres_database, "bridges", BRIDGE_WRITES[write])
