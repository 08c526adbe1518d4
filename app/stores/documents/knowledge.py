"""RAG collections, their documents and chunks: the records and the repository Protocol.

The documents store is the source of truth for a collection's chunks, their text, metadata and
embedding (float32 bytes): the in-process vector index reads its vectors from here, and an
external index (pgvector) can always be rebuilt from here. ``revision`` goes up with every change
to a collection's chunks, so a worker's in-memory index knows, with the one read a query makes
anyway, whether it is stale — on every node.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import msgspec

from junction.errors import NotFound


class NewCollection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    embedding_model: str = "local/all-MiniLM-L6-v2"
    #: Target chunk size and overlap, in tokens (see :mod:`junction.domain.rag.chunking`).
    chunk_tokens: int = 256
    chunk_overlap: int = 32


class Collection(msgspec.Struct, kw_only=True):
    id: str
    org_id: str
    name: str
    embedding_model: str
    chunk_tokens: int
    chunk_overlap: int
    #: Length of its vectors, set by the first document (every later one must match).
    dimensions: int | None = None
    revision: int = 0
    documents: int = 0
    chunks: int = 0
    created_at: datetime
    updated_at: datetime


class KnowledgeDocument(msgspec.Struct, kw_only=True):
    #: The caller's own id for the document (ingesting the same id again replaces it).
    id: str
    collection_id: str
    org_id: str
    metadata: dict[str, Any] = {}
    chunks: int = 0
    created_at: datetime
    updated_at: datetime


class Chunk(msgspec.Struct, kw_only=True):
    id: str
    collection_id: str
    document_id: str
    org_id: str
    position: int
    text: str
    metadata: dict[str, Any] = {}
    #: Little-endian float32 (``b""`` when a read left it out).
    embedding: bytes = b""


def collection_not_found(collection_id: str) -> NotFound:
    return NotFound(f"collection {collection_id!r} not found", param="collection_id", code="collection_not_found")


def document_not_found(document_id: str) -> NotFound:
    return NotFound(f"document {document_id!r} not found", param="doc_id", code="document_not_found")


@runtime_checkable
class KnowledgeRepository(Protocol):
    async def create_collection(self, org_id: str, spec: NewCollection) -> Collection:
        """NotFound when the org does not exist."""
        ...

    async def get_collection(self, org_id: str, collection_id: str) -> Collection: ...

    async def list_collections(self, org_id: str) -> list[Collection]:
        """Oldest first."""
        ...

    async def delete_collection(self, org_id: str, collection_id: str) -> None:
        """The collection, its documents and chunks."""
        ...

    async def replace_document(self, document: KnowledgeDocument, chunks: list[Chunk], dimensions: int) -> Collection:
        """Store the document and its chunks in place of any earlier version of it, atomically,
        and return the collection with its new revision. Conflict when ``dimensions`` differs from
        the collection's."""
        ...

    async def delete_document(self, org_id: str, collection_id: str, document_id: str) -> Collection:
        """Remove the document and its chunks; returns the collection with its new revision."""
        ...

    async def chunks(self, org_id: str, collection_id: str, chunk_ids: list[str]) -> list[Chunk]:
        """The named chunks of the collection (without embeddings), in no particular order."""
        ...

    async def vectors(self, org_id: str, collection_id: str) -> list[Chunk]:
        """Every chunk of the collection with its embedding and metadata but without its text
        (what an in-process index loads)."""
        ...
