"""Edge cases where the backends used to disagree, or a store leaked what it opened: each test
here failed on at least one backend before its fix."""

from __future__ import annotations

import gc
import warnings
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pymongo.errors import ServerSelectionTimeoutError

from junction.errors import InvalidRequest
from junction.security.crypto import Cipher
from junction.stores.documents.mongo_store import MongoDocumentStore
from junction.stores.documents.protocol import DocumentStore, NewApiKey
from tests.stores.conftest import OLD_KEY

# --- times from callers --------------------------------------------------------------------------


async def test_a_key_expiry_in_another_zone_is_stored_and_returned_as_utc(store: DocumentStore) -> None:
    org = await store.orgs.create("zones")
    in_paris = datetime(2031, 6, 1, 14, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    issued = await store.keys.create(org.id, NewApiKey(name="k", expires_at=in_paris))

    assert issued.record.expires_at == datetime(2031, 6, 1, 12, 30, 15, 123000, tzinfo=UTC)
    assert issued.record.expires_at.tzinfo is UTC
    # What create hands back is what every later read returns (BSON keeps milliseconds only).
    assert await store.keys.get(org.id, issued.record.id) == issued.record
    assert await store.keys.authenticate(issued.key) == issued.record


async def test_a_key_expiry_without_a_time_zone_is_refused(store: DocumentStore) -> None:
    org = await store.orgs.create("naive")
    with pytest.raises(InvalidRequest) as refused:
        await store.keys.create(org.id, NewApiKey(name="k", expires_at=datetime(2031, 6, 1, 12, 0)))
    assert refused.value.param == "expires_at"
    assert await store.keys.list(org.id) == []


# --- listing limits ------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [0, -1])
async def test_listing_threads_with_a_limit_below_one_is_refused(store: DocumentStore, limit: int) -> None:
    org = await store.orgs.create("limits")
    await store.threads.create(org.id)
    with pytest.raises(InvalidRequest) as refused:
        await store.threads.list(org.id, limit=limit)
    assert refused.value.param == "limit"
    assert len(await store.threads.list(org.id, limit=1)) == 1


# --- resources -----------------------------------------------------------------------------------


async def test_a_mongo_store_that_cannot_start_releases_its_client() -> None:
    store = MongoDocumentStore(
        "mongodb://127.0.0.1:1/junction?serverSelectionTimeoutMS=200", cipher=Cipher([OLD_KEY])
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with pytest.raises(ServerSelectionTimeoutError):
            await store.start()
        del store
        gc.collect()
    assert [str(warning.message) for warning in caught if "Unclosed" in str(warning.message)] == []
