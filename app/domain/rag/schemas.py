"""Request and response bodies of the RAG routes (``/api/v1/rag/...``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from junction.stores.documents.knowledge import Collection


class CollectionBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    org_id: str | None = None
    #: ``provider/model`` of any enabled provider with embeddings, an alias, or ``local/<name>``.
    embedding_model: str = "local/all-MiniLM-L6-v2"
    chunk_tokens: int = 256
    chunk_overlap: int = 32


class CollectionView(msgspec.Struct, kw_only=True):
    id: str
    org_id: str
    name: str
    embedding_model: str
    chunk_tokens: int
    chunk_overlap: int
    dimensions: int | None
    documents: int
    chunks: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, collection: Collection) -> CollectionView:
        return cls(**{name: getattr(collection, name) for name in cls.__struct_fields__})


class DocumentBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    id: str
    #: The document as text (``content_type`` says how to read it: plain text by default) ...
    text: str | None = None
    #: ... or its bytes in base64 (PDF, or text in UTF-8).
    content_base64: str | None = None
    content_type: str | None = None
    metadata: dict[str, Any] = {}


class IngestedDocument(msgspec.Struct, kw_only=True):
    id: str
    chunks: int
    collection_revision: int


class QueryBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    query: str
    top_k: int = 5
    min_score: float | None = None
    #: Chunks whose document metadata holds every one of these key/value pairs.
    filter: dict[str, Any] = {}


class QueryResult(msgspec.Struct, kw_only=True):
    document_id: str
    chunk_id: str
    text: str
    score: float
    metadata: dict[str, Any]


class QueryResults(msgspec.Struct, kw_only=True):
    results: list[QueryResult]
