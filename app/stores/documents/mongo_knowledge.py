"""RAG collections, documents and chunks on MongoDB (see :mod:`junction.stores.documents.knowledge`).

No multi-document transaction: re-ingesting inserts the new chunks first and then removes the
old ones, so a query meanwhile finds the document's old or new chunks, never none of them.
"""

from __future__ import annotations

from typing import Any

import msgspec
from beanie import UpdateResponse

from junction.errors import Conflict
from junction.stores.documents.common import as_utc, new_id, utc_now
from junction.stores.documents.knowledge import (
    Chunk,
    Collection,
    KnowledgeDocument,
    NewCollection,
    collection_not_found,
    document_not_found,
)
from junction.stores.documents.mongo import MongoRepository, require_org, to_record

OLDEST_FIRST = [("created_at", 1), ("_id", 1)]


class MongoKnowledge(MongoRepository):
    async def create_collection(self, org_id: str, spec: NewCollection) -> Collection:
        await require_org(self._m, org_id)
        now = utc_now()
        collection = Collection(id=new_id("col"), org_id=org_id, created_at=now, updated_at=now,
                                **msgspec.structs.asdict(spec))
        await self._m.rag_collections(**msgspec.structs.asdict(collection)).insert()
        return collection

    async def get_collection(self, org_id: str, collection_id: str) -> Collection:
        query = {"_id": collection_id, "org_id": org_id}
        return await self._one(self._m.rag_collections, query, Collection, collection_not_found(collection_id))

    async def list_collections(self, org_id: str) -> list[Collection]:
        return await self._all(self._m.rag_collections, {"org_id": org_id}, OLDEST_FIRST, Collection)

    async def delete_collection(self, org_id: str, collection_id: str) -> None:
        await self._delete(self._m.rag_collections, {"_id": collection_id, "org_id": org_id},
                           collection_not_found(collection_id))
        await self._m.rag_documents.find({"collection_id": collection_id}).delete()
        await self._m.rag_chunks.find({"collection_id": collection_id}).delete()

    async def _claim_dimensions(self, collection: Collection, dimensions: int) -> None:
        if collection.dimensions is None:
            await self._m.rag_collections.find_one({"_id": collection.id, "dimensions": None}).update(
                {"$set": {"dimensions": dimensions}})
            collection = await self.get_collection(collection.org_id, collection.id)
        if collection.dimensions != dimensions:
            raise Conflict(f"collection {collection.id!r} holds {collection.dimensions}-dimensional vectors; "
                           f"its embedding model now returned {dimensions}", code="dimensions_mismatch")

    async def _bump(self, org_id: str, collection_id: str, documents: int, chunks: int) -> Collection:
        document = await self._m.rag_collections.find_one({"_id": collection_id, "org_id": org_id}).update(
            {"$inc": {"revision": 1, "documents": documents, "chunks": chunks}, "$set": {"updated_at": utc_now()}},
            response_type=UpdateResponse.NEW_DOCUMENT)
        if document is None:
            raise collection_not_found(collection_id)
        return to_record(document, Collection)

    async def replace_document(self, document: KnowledgeDocument, chunks: list[Chunk], dimensions: int) -> Collection:
        collection = await self.get_collection(document.org_id, document.collection_id)
        await self._claim_dimensions(collection, dimensions)
        key = f"{document.collection_id}/{document.id}"
        earlier = await self._m.rag_documents.find_one({"_id": key})
        if earlier is not None:
            document = msgspec.structs.replace(document, created_at=as_utc(earlier.created_at))
        if chunks:
            await self._m.rag_chunks.insert_many([self._m.rag_chunks(**msgspec.structs.asdict(c)) for c in chunks])
        await self._m.rag_chunks.find({"collection_id": document.collection_id, "document_id": document.id,
                                       "_id": {"$nin": [chunk.id for chunk in chunks]}}).delete()
        values: dict[str, Any] = msgspec.structs.asdict(document)
        values["document_id"] = values.pop("id")
        collection_docs = self._m.rag_documents.get_pymongo_collection()
        await collection_docs.replace_one({"_id": key}, {"_id": key, **values}, upsert=True)
        removed = earlier.chunks if earlier is not None else 0
        return await self._bump(document.org_id, document.collection_id, 0 if earlier is not None else 1,
                                len(chunks) - removed)

    async def delete_document(self, org_id: str, collection_id: str, document_id: str) -> Collection:
        await self.get_collection(org_id, collection_id)
        earlier = await self._m.rag_documents.find_one({"_id": f"{collection_id}/{document_id}", "org_id": org_id})
        if earlier is None:
            raise document_not_found(document_id)
        await earlier.delete()
        await self._m.rag_chunks.find({"collection_id": collection_id, "document_id": document_id}).delete()
        return await self._bump(org_id, collection_id, -1, -earlier.chunks)

    async def chunks(self, org_id: str, collection_id: str, chunk_ids: list[str]) -> list[Chunk]:
        if not chunk_ids:
            return []
        found = await self._m.rag_chunks.find({"_id": {"$in": chunk_ids}, "collection_id": collection_id,
                                               "org_id": org_id}).to_list()
        return [msgspec.structs.replace(to_record(item, Chunk), embedding=b"") for item in found]

    async def vectors(self, org_id: str, collection_id: str) -> list[Chunk]:
        found = await self._m.rag_chunks.find({"collection_id": collection_id, "org_id": org_id}).sort(
            [("document_id", 1), ("position", 1)]).to_list()
        return [msgspec.structs.replace(to_record(item, Chunk), text="") for item in found]

