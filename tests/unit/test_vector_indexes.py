"""Vector indexes as plugins: selection by ``[knowledge] index``, config validation naming the key,
``auto`` falling back when a backend is missing; and the in-process index's exact search (top-k
order, score threshold, metadata filter, reload on a new revision) on a real SQLite store."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path

import numpy as np
import pytest

from junction.errors import ConfigError
from junction.plugins.protocols import PluginContext
from junction.plugins.vector_indexes import FirstAvailable, load_vector_index
from junction.plugins.vectors import VectorQuery
from junction.security.crypto import Cipher, EncryptionKey
from junction.settings import settings_from_mapping
from junction.stores.documents import open_document_store
from junction.stores.documents.common import utc_now
from junction.stores.documents.knowledge import Chunk, KnowledgeDocument, NewCollection
from junction.vector_indexes.in_process.index import InProcessConfig, InProcessIndex
from tests.unit.vector_index_plugins import ListIndex

SAMPLES = "tests.unit.vector_index_plugins"


def sources(*pairs: tuple[str, str]):
    points = [EntryPoint(name, f"{SAMPLES}:{attribute}", "junction.vector_indexes") for name, attribute in pairs]
    return lambda group: points if group == "junction.vector_indexes" else []


def context(**knowledge) -> PluginContext:
    return PluginContext(settings=settings_from_mapping({"knowledge": knowledge}))


def test_the_configured_index_is_built_with_its_validated_table():
    index = load_vector_index(context(index="list", indexes={"list": {"label": "mine"}}), sources(("list", "list_plugin")))
    assert isinstance(index, ListIndex) and index.label == "mine"


def test_bad_names_and_keys_stop_start_up_naming_them():
    with pytest.raises(ConfigError, match=r"knowledge.index: no installed vector index is named 'nope'"):
        load_vector_index(context(index="nope"), sources(("list", "list_plugin")))
    with pytest.raises(ConfigError, match=r"knowledge.indexes.list"):
        load_vector_index(context(index="list", indexes={"list": {"colour": 1}}), sources(("list", "list_plugin")))
    with pytest.raises(ConfigError, match=r"knowledge.indexes.other: no installed vector index"):
        load_vector_index(context(index="list", indexes={"other": {}}), sources(("list", "list_plugin")))


async def test_auto_falls_back_when_the_first_backend_is_missing():
    settings = settings_from_mapping({"stores": {"documents": "postgresql+asyncpg://x@127.0.0.1/db"}})
    index = load_vector_index(PluginContext(settings=settings),
                              sources(("pgvector", "missing_plugin"), ("in-process", "fallback_plugin")))
    assert isinstance(index, FirstAvailable)
    await index.start()
    assert index.name == "in-process"
    await index.close()


def unit(values: list[float]) -> bytes:
    vector = np.asarray(values, dtype="<f4")
    return (vector / np.linalg.norm(vector)).astype("<f4").tobytes()


async def test_in_process_search_is_exact_filtered_and_follows_revisions(tmp_path: Path):
    ring = Cipher([EncryptionKey(id="k", material=bytes(32))])
    store = open_document_store(f"sqlite+aiosqlite:///{tmp_path / 'docs.db'}", cipher=ring)
    await store.start()
    try:
        org = await store.orgs.create("o")
        collection = await store.knowledge.create_collection(org.id, NewCollection(name="c"))
        index = InProcessIndex(InProcessConfig(), PluginContext(settings=settings_from_mapping({}), documents=store))

        async def put(document_id: str, vectors: list[list[float]], **metadata):
            now = utc_now()
            chunks = [Chunk(id=f"{document_id}-{i}", collection_id=collection.id, document_id=document_id,
                            org_id=org.id, position=i, text=document_id, metadata=metadata, embedding=unit(v))
                      for i, v in enumerate(vectors)]
            document = KnowledgeDocument(id=document_id, collection_id=collection.id, org_id=org.id,
                                         metadata=metadata, chunks=len(chunks), created_at=now, updated_at=now)
            return await store.knowledge.replace_document(document, chunks, 3)

        await put("a", [[1, 0, 0], [0.9, 0.1, 0]], lang="en")
        current = await put("b", [[0, 1, 0], [0.7, 0.7, 0]], lang="de")
        query = VectorQuery(vector=unit([1, 0, 0]), top_k=3)
        hits = await index.search(current, query)
        assert [h.chunk_id for h in hits] == ["a-0", "a-1", "b-1"]
        assert hits[0].score == pytest.approx(1.0) and hits[0].score > hits[1].score > hits[2].score
        assert [h.chunk_id for h in await index.search(current, VectorQuery(vector=unit([1, 0, 0]), top_k=5,
                                                                             min_score=0.9))] == ["a-0", "a-1"]
        filtered = await index.search(current, VectorQuery(vector=unit([1, 0, 0]), top_k=5, filter={"lang": "de"}))
        assert [h.chunk_id for h in filtered] == ["b-1", "b-0"]
        # a new revision (another worker's ingestion, say) is loaded by the next query
        current = await put("a", [[0, 0, 1]], lang="en")
        assert (await index.search(current, query))[0].chunk_id == "b-1"
    finally:
        await store.close()
