"""Stored Responses, on every document store backend (see conftest.BACKENDS)."""

from __future__ import annotations

import pytest

from junction.errors import NotFound
from junction.schemas.chat import Message
from junction.stores.documents.common import new_id, utc_now
from junction.stores.documents.protocol import DocumentStore
from junction.stores.documents.responses import StoredResponse


def record(org_id: str | None, **fields: object) -> StoredResponse:
    values: dict[str, object] = {
        "id": new_id("resp"),
        "org_id": org_id,
        "owner": "key:k1",
        "created_at": utc_now(),
        "response": {"object": "response", "output_text": "hi\x00there", "usage": None},
        "input_items": [
            {
                "id": "msg_1",
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "hello"}],
            }
        ],
        "context": [
            Message(role="user", content="hello"),
            Message(
                role="assistant",
                content="hi",
                reasoning="thought",
                provider_metadata={"anthropic": {"signature": "sig=="}},
            ),
        ],
    }
    values.update(fields)
    return StoredResponse(**values)  # type: ignore[arg-type]


async def test_put_get_find_delete(store: DocumentStore) -> None:
    org = await store.orgs.create("responses")
    saved = record(org.id)
    await store.responses.put(saved)

    got = await store.responses.get(org.id, saved.id)
    assert got.context == saved.context  # provider metadata round-trips
    assert got.input_items == saved.input_items and got.owner == "key:k1"
    assert got.response["output_text"] == "hi\ufffdthere"  # no backend stores NUL
    assert (await store.responses.find(saved.id)).id == saved.id

    await store.responses.delete(org.id, saved.id)
    with pytest.raises(NotFound):
        await store.responses.get(org.id, saved.id)
    with pytest.raises(NotFound):
        await store.responses.delete(org.id, saved.id)


async def test_responses_are_confined_to_their_org(store: DocumentStore) -> None:
    mine, theirs = await store.orgs.create("mine"), await store.orgs.create("theirs")
    saved = record(mine.id)
    await store.responses.put(saved)
    with pytest.raises(NotFound):
        await store.responses.get(theirs.id, saved.id)
    with pytest.raises(NotFound):
        await store.responses.get(None, saved.id)
    with pytest.raises(NotFound):
        await store.responses.delete(theirs.id, saved.id)
    assert (await store.responses.get(mine.id, saved.id)).id == saved.id


async def test_responses_of_no_org(store: DocumentStore) -> None:
    saved = record(None, owner="master")
    await store.responses.put(saved)
    assert (await store.responses.get(None, saved.id)).org_id is None
    org = await store.orgs.create("other")
    with pytest.raises(NotFound):
        await store.responses.get(org.id, saved.id)


async def test_a_missing_org_is_refused_and_deleting_an_org_removes_its_responses(
    store: DocumentStore,
) -> None:
    with pytest.raises(NotFound):
        await store.responses.put(record("org_missing"))
    org = await store.orgs.create("doomed")
    saved = record(org.id)
    await store.responses.put(saved)
    await store.orgs.delete(org.id)
    with pytest.raises(NotFound):
        await store.responses.find(saved.id)
