"""RAG collections, documents and chunks on SQL (see :mod:`junction.stores.documents.knowledge`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
import sqlalchemy as sa

from junction.errors import Conflict
from junction.stores.documents.common import new_id, utc_now
from junction.stores.documents.knowledge import (
    Chunk,
    Collection,
    KnowledgeDocument,
    NewCollection,
    collection_not_found,
    document_not_found,
)
from junction.stores.documents.sql import rag_chunks, rag_collections, rag_documents
from junction.stores.documents.sql_repos import SqlRepository, require_org, row_values, to_record

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

_VECTOR_COLUMNS = (rag_chunks.c.id, rag_chunks.c.collection_id, rag_chunks.c.document_id, rag_chunks.c.org_id,
                   rag_chunks.c.position, sa.literal("").label("text"), rag_chunks.c.metadata,
                   rag_chunks.c.embedding)
_TEXT_COLUMNS = (*_VECTOR_COLUMNS[:5], rag_chunks.c.text, rag_chunks.c.metadata)


def _collection_in_org(org_id: str, collection_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(rag_collections.c.id == collection_id, rag_collections.c.org_id == org_id)


async def _locked_collection(connection: AsyncConnection, org_id: str, collection_id: str) -> Collection:
    """The collection, row-locked until the transaction ends (PostgreSQL; SQLite serialises writers),
    so two ingestions into one collection count and number revisions one after the other."""
    query = rag_collections.select().where(_collection_in_org(org_id, collection_id)).with_for_update()
    row = (await connection.execute(query)).first()
    if row is None:
        raise collection_not_found(collection_id)
    return to_record(row, Collection)


async def _bump(connection: AsyncConnection, collection: Collection, documents: int, chunks: int,
                dimensions: int | None) -> Collection:
    statement = (rag_collections.update().where(rag_collections.c.id == collection.id)
                 .values(revision=collection.revision + 1, documents=collection.documents + documents,
                         chunks=collection.chunks + chunks, dimensions=dimensions, updated_at=utc_now())
                 .returning(*rag_collections.c))
    return to_record((await connection.execute(statement)).one(), Collection)


class SqlKnowledge(SqlRepository):
    async def create_collection(self, org_id: str, spec: NewCollection) -> Collection:
        now = utc_now()
        collection = Collection(id=new_id("col"), org_id=org_id, created_at=now, updated_at=now,
                                **msgspec.structs.asdict(spec))
        async with self._db.begin() as connection:
            await require_org(connection, org_id)
            await connection.execute(rag_collections.insert().values(**row_values(collection)))
        return collection

    async def get_collection(self, org_id: str, collection_id: str) -> Collection:
        query = rag_collections.select().where(_collection_in_org(org_id, collection_id))
        return await self._one(query, Collection, collection_not_found(collection_id))

    async def list_collections(self, org_id: str) -> list[Collection]:
        query = (rag_collections.select().where(rag_collections.c.org_id == org_id)
                 .order_by(rag_collections.c.created_at, rag_collections.c.id))
        return await self._all(query, Collection)

    async def delete_collection(self, org_id: str, collection_id: str) -> None:
        statement = rag_collections.delete().where(_collection_in_org(org_id, collection_id))
        await self._delete(statement, collection_not_found(collection_id))  # documents and chunks cascade

    async def replace_document(self, document: KnowledgeDocument, chunks: list[Chunk], dimensions: int) -> Collection:
        async with self._db.begin() as connection:
            collection = await _locked_collection(connection, document.org_id, document.collection_id)
            if collection.dimensions not in (None, dimensions):
                raise Conflict(f"collection {collection.id!r} holds {collection.dimensions}-dimensional vectors; "
                               f"its embedding model now returned {dimensions}", code="dimensions_mismatch")
            in_document = sa.and_(rag_documents.c.collection_id == document.collection_id,
                                  rag_documents.c.id == document.id)
            earlier = (await connection.execute(sa.select(rag_documents.c.chunks, rag_documents.c.created_at)
                                                .where(in_document))).first()
            if earlier is not None:
                document = msgspec.structs.replace(document, created_at=earlier.created_at)
                await connection.execute(rag_documents.delete().where(in_document))
                await connection.execute(rag_chunks.delete().where(
                    sa.and_(rag_chunks.c.collection_id == document.collection_id,
                            rag_chunks.c.document_id == document.id)))
            await connection.execute(rag_documents.insert().values(**row_values(document)))
            if chunks:
                await connection.execute(rag_chunks.insert(), [row_values(chunk) for chunk in chunks])
            removed = earlier.chunks if earlier is not None else 0
            return await _bump(connection, collection, 0 if earlier is not None else 1, len(chunks) - removed,
                               dimensions)

    async def delete_document(self, org_id: str, collection_id: str, document_id: str) -> Collection:
        async with self._db.begin() as connection:
            collection = await _locked_collection(connection, org_id, collection_id)
            deleted = (await connection.execute(
                rag_documents.delete().where(sa.and_(rag_documents.c.collection_id == collection_id,
                                                     rag_documents.c.id == document_id))
                .returning(rag_documents.c.chunks))).first()
            if deleted is None:
                raise document_not_found(document_id)
            await connection.execute(rag_chunks.delete().where(
                sa.and_(rag_chunks.c.collection_id == collection_id, rag_chunks.c.document_id == document_id)))
            return await _bump(connection, collection, -1, -deleted.chunks, collection.dimensions)

    async def chunks(self, org_id: str, collection_id: str, chunk_ids: list[str]) -> list[Chunk]:
        if not chunk_ids:
            return []
        # By primary key alone: given the collection too, SQLite would walk the collection's index
        # (every chunk of it) instead. Rows of another collection or org are dropped here.
        query = sa.select(*_TEXT_COLUMNS).where(rag_chunks.c.id.in_(chunk_ids))
        found = await self._all(query, Chunk)
        return [chunk for chunk in found if chunk.collection_id == collection_id and chunk.org_id == org_id]

    async def vectors(self, org_id: str, collection_id: str) -> list[Chunk]:
        query = (sa.select(*_VECTOR_COLUMNS)
                 .where(rag_chunks.c.collection_id == collection_id, rag_chunks.c.org_id == org_id)
                 .order_by(rag_chunks.c.document_id, rag_chunks.c.position))
        return await self._all(query, Chunk)
