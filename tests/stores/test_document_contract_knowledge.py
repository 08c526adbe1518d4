"""RAG collections, documents and chunks, on every document store backend (see conftest.BACKENDS)."""

from __future__ import annotations

import numpy as np
import pytest

from junction.errors import Conflict, NotFound
from junction.stores.documents.common import new_id, utc_now
from junction.stores.documents.knowledge import Chunk, KnowledgeDocument, NewCollection
from junction.stores.documents.protocol import DocumentStore


def _document(org_id: str, collection_id: str, document_id: str, texts: list[str], dims: int = 3,
              **metadata: object) -> tuple[KnowledgeDocument, list[Chunk]]:
    now = utc_now()
    document = KnowledgeDocument(id=document_id, collection_id=collection_id, org_id=org_id, metadata=metadata,
                                 chunks=len(texts), created_at=now, updated_at=now)
    chunks = [Chunk(id=new_id("ch"), collection_id=collection_id, document_id=document_id, org_id=org_id,
                    position=i, text=text, metadata=metadata,
                    embedding=np.full(dims, i + 1, dtype="<f4").tobytes()) for i, text in enumerate(texts)]
    return document, chunks


async def test_collections_documents_and_chunks(store: DocumentStore) -> None:
    org = await store.orgs.create("rag")
    other = await store.orgs.create("rag-other")
    knowledge = store.knowledge
    collection = await knowledge.create_collection(org.id, NewCollection(name="handbook"))
    assert collection.revision == 0 and collection.dimensions is None
    assert [c.id for c in await knowledge.list_collections(org.id)] == [collection.id]
    assert await knowledge.list_collections(other.id) == []
    with pytest.raises(NotFound):  # another org's collection is missing
        await knowledge.get_collection(other.id, collection.id)

    document, chunks = _document(org.id, collection.id, "doc-1", ["one", "two"], topic="a")
    stored = await knowledge.replace_document(document, chunks, 3)
    assert (stored.revision, stored.documents, stored.chunks, stored.dimensions) == (1, 1, 2, 3)
    found = await knowledge.chunks(org.id, collection.id, [chunks[1].id])
    assert [(c.text, c.metadata, c.embedding) for c in found] == [("two", {"topic": "a"}, b"")]
    assert await knowledge.chunks(other.id, collection.id, [chunks[1].id]) == []
    vectors = await knowledge.vectors(org.id, collection.id)
    assert [np.frombuffer(v.embedding, dtype="<f4")[0] for v in vectors] == [1.0, 2.0]

    # the same id again replaces the document's chunks
    document, replacement = _document(org.id, collection.id, "doc-1", ["three"], topic="b")
    stored = await knowledge.replace_document(document, replacement, 3)
    assert (stored.revision, stored.documents, stored.chunks) == (2, 1, 1)
    assert [v.id for v in await knowledge.vectors(org.id, collection.id)] == [replacement[0].id]
    with pytest.raises(Conflict):
        await knowledge.replace_document(*_document(org.id, collection.id, "doc-2", ["x"], dims=4), 4)

    with pytest.raises(NotFound):
        await knowledge.delete_document(other.id, collection.id, "doc-1")
    stored = await knowledge.delete_document(org.id, collection.id, "doc-1")
    assert (stored.revision, stored.documents, stored.chunks) == (3, 0, 0)
    with pytest.raises(NotFound):
        await knowledge.delete_document(org.id, collection.id, "doc-1")
    assert await knowledge.vectors(org.id, collection.id) == []

    await knowledge.replace_document(*_document(org.id, collection.id, "doc-3", ["kept"]), 3)
    with pytest.raises(NotFound):
        await knowledge.delete_collection(other.id, collection.id)
    await knowledge.delete_collection(org.id, collection.id)
    with pytest.raises(NotFound):
        await knowledge.get_collection(org.id, collection.id)
    assert await knowledge.vectors(org.id, collection.id) == []


async def test_deleting_the_org_deletes_its_collections(store: DocumentStore) -> None:
    org = await store.orgs.create("rag-gone")
    collection = await store.knowledge.create_collection(org.id, NewCollection(name="c"))
    await store.knowledge.replace_document(*_document(org.id, collection.id, "d", ["t"]), 3)
    await store.orgs.delete(org.id)
    assert await store.knowledge.list_collections(org.id) == []
    assert await store.knowledge.vectors(org.id, collection.id) == []
    with pytest.raises(NotFound):
        await store.knowledge.create_collection(org.id, NewCollection(name="late"))
