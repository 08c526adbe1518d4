"""Vectors in one table per dimension count (``rag_vectors_<n>``), created on first use with an
HNSW index (``vector_cosine_ops``). A collection small enough is searched exactly (the planner
is kept off the HNSW index), so filtering by collection and metadata never loses results there;
a larger one goes through HNSW with ``hnsw.ef_search`` raised to a multiple of ``top_k``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from junction.errors import ConfigError
from junction.plugins.protocols import PluginContext
from junction.plugins.vector_indexes import IndexUnavailable
from junction.plugins.vectors import IndexedVector, VectorHit, VectorIndexConfig, VectorQuery
from junction.stores.documents.knowledge import Collection
from junction.stores.sql_engine import open_engine

log = logging.getLogger("junction.knowledge.pgvector")
MAX_DIMENSIONS = 2000  # pgvector's HNSW limit for the vector type


class PgvectorConfig(VectorIndexConfig, kw_only=True):
    #: A ``postgresql+asyncpg://`` URL; default: the documents store's database.
    url: str | None = None
    #: HNSW build parameters (pgvector's defaults).
    m: int = 16
    ef_construction: int = 64
    #: ``hnsw.ef_search`` is ``max(ef_search, ef_search_per_result * top_k)`` for each query.
    ef_search: int = 40
    ef_search_per_result: int = 4
    #: Collections with at most this many chunks are searched exactly.
    exact_below: int = 10_000


def _literal(vector: bytes) -> str:
    import numpy as np  # here: a serving worker that searches nothing never loads numpy

    return "[" + ",".join(f"{value:.7g}" for value in np.frombuffer(vector, dtype="<f4").tolist()) + "]"


class PgvectorIndex:
    def __init__(self, config: PgvectorConfig, context: PluginContext) -> None:
        url = config.url
        if url is None and not context.settings.stores.documents.startswith("postgresql"):
            raise ConfigError("knowledge.indexes.pgvector.url: required when the documents store is not PostgreSQL")
        if url is not None and not url.startswith("postgresql+asyncpg://"):
            raise ConfigError("knowledge.indexes.pgvector.url: must be a postgresql+asyncpg:// URL")
        self._config = config
        self._url = url
        self._sql = context.sql
        self._engine: AsyncEngine | None = None
        self._own_engine = False
        self._tables: set[int] = set()

    async def start(self) -> None:
        if self._url is not None:
            self._engine, self._own_engine = open_engine(self._url, hide_parameters=True, pool_pre_ping=True), True
        else:
            assert self._sql is not None
            self._engine = self._sql.engine("documents")
        try:
            async with self._engine.begin() as connection:
                available = await connection.scalar(sa.text(
                    "SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'"))
                if not available:
                    raise IndexUnavailable("the PostgreSQL server has no 'vector' extension (pgvector)")
                await connection.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector"))
        except DBAPIError as error:
            await self.close()
            raise IndexUnavailable(f"CREATE EXTENSION vector failed: {type(error.orig).__name__}") from None
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._own_engine and self._engine is not None:
            await self._engine.dispose()
        self._engine = None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("the pgvector index is not started")
        return self._engine

    async def _table(self, connection: AsyncConnection, dimensions: int) -> str:
        if not 1 <= dimensions <= MAX_DIMENSIONS:
            raise ConfigError(f"pgvector indexes at most {MAX_DIMENSIONS} dimensions, not {dimensions}")
        table = f"rag_vectors_{dimensions}"
        if dimensions in self._tables:
            return table
        await connection.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": table})
        await connection.execute(sa.text(
            f"CREATE TABLE IF NOT EXISTS {table} (chunk_id text PRIMARY KEY, collection_id text NOT NULL, "
            f"document_id text NOT NULL, metadata jsonb NOT NULL, embedding vector({dimensions}) NOT NULL)"))
        await connection.execute(sa.text(
            f"CREATE INDEX IF NOT EXISTS {table}_document ON {table} (collection_id, document_id)"))
        await connection.execute(sa.text(
            f"CREATE INDEX IF NOT EXISTS {table}_hnsw ON {table} USING hnsw (embedding vector_cosine_ops) "
            f"WITH (m = {int(self._config.m)}, ef_construction = {int(self._config.ef_construction)})"))
        self._tables.add(dimensions)
        return table

    async def add(self, collection: Collection, document_id: str, vectors: Sequence[IndexedVector]) -> None:
        if collection.dimensions is None:
            return
        async with self.engine.begin() as connection:
            table = await self._table(connection, collection.dimensions)
            await connection.execute(sa.text(
                f"DELETE FROM {table} WHERE collection_id = :collection AND document_id = :document"),
                {"collection": collection.id, "document": document_id})
            if vectors:
                await connection.execute(sa.text(
                    f"INSERT INTO {table} (chunk_id, collection_id, document_id, metadata, embedding) "
                    "VALUES (:chunk, :collection, :document, CAST(:metadata AS jsonb), CAST(:embedding AS vector))"),
                    [{"chunk": v.chunk_id, "collection": collection.id, "document": document_id,
                      "metadata": msgspec.json.encode(v.metadata).decode(), "embedding": _literal(v.vector)}
                     for v in vectors])

    async def remove_document(self, collection: Collection, document_id: str) -> None:
        if collection.dimensions is None:
            return
        async with self.engine.begin() as connection:
            table = await self._table(connection, collection.dimensions)
            await connection.execute(sa.text(
                f"DELETE FROM {table} WHERE collection_id = :collection AND document_id = :document"),
                {"collection": collection.id, "document": document_id})

    async def remove_collection(self, collection: Collection) -> None:
        if collection.dimensions is None:
            return
        async with self.engine.begin() as connection:
            table = await self._table(connection, collection.dimensions)
            await connection.execute(sa.text(f"DELETE FROM {table} WHERE collection_id = :collection"),
                                     {"collection": collection.id})

    async def search(self, collection: Collection, query: VectorQuery) -> list[VectorHit]:
        if collection.dimensions is None:
            return []
        config = self._config
        where = "collection_id = :collection"
        values: dict[str, Any] = {"collection": collection.id, "vector": _literal(query.vector), "k": query.top_k}
        if query.filter:
            where += " AND metadata @> CAST(:filter AS jsonb)"
            values["filter"] = msgspec.json.encode(query.filter).decode()
        async with self.engine.begin() as connection:
            table = await self._table(connection, collection.dimensions)
            if collection.chunks <= config.exact_below:
                await connection.execute(sa.text("SET LOCAL enable_indexscan = off"))
            else:
                ef_search = min(1000, max(config.ef_search, config.ef_search_per_result * query.top_k))
                await connection.execute(sa.text(f"SET LOCAL hnsw.ef_search = {int(ef_search)}"))
            rows = await connection.execute(sa.text(
                f"SELECT chunk_id, 1 - (embedding <=> CAST(:vector AS vector)) AS score FROM {table} "
                f"WHERE {where} ORDER BY embedding <=> CAST(:vector AS vector) LIMIT :k"), values)
            hits = [VectorHit(row.chunk_id, float(row.score)) for row in rows]
        return [hit for hit in hits if hit.score >= query.min_score]
