"""Vector indexes: how a RAG collection's chunks are searched by embedding.

A vector index is a plugin of the ``junction.vector_indexes`` entry-point group. Its module
implements the ``register_vector_indexes`` hook and registers a :class:`VectorIndexSpec`;
``[knowledge] index`` picks one by name (``auto``: ``pgvector`` when the documents store is
PostgreSQL and the extension is available there, else ``in-process``), and
``[knowledge.indexes.<name>]`` is its config table. The documents store keeps every chunk's
embedding; an index may keep its own copy (pgvector) or read them from there (in-process).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import msgspec

from junction.plugins.protocols import PluginConfig

if TYPE_CHECKING:
    from junction.plugins.protocols import PluginContext
    from junction.stores.documents.knowledge import Collection


class VectorIndexConfig(PluginConfig):
    """Base of every vector index's config Struct (``[knowledge.indexes.<name>]``)."""


class IndexedVector(msgspec.Struct, frozen=True, kw_only=True):
    chunk_id: str
    document_id: str
    metadata: dict[str, Any]
    #: Little-endian float32, normalised to unit length.
    vector: bytes


class VectorQuery(msgspec.Struct, frozen=True, kw_only=True):
    #: Little-endian float32, normalised to unit length.
    vector: bytes
    top_k: int
    #: Hits scoring below it (cosine similarity, -1..1) are left out.
    min_score: float = -1.0
    #: Chunks whose metadata holds every one of these key/value pairs (empty: every chunk).
    filter: dict[str, Any] = {}


class VectorHit(msgspec.Struct, frozen=True):
    chunk_id: str
    score: float


@runtime_checkable
class VectorIndex(Protocol):
    """Per-request methods are async; ``start``/``close`` run with the process."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def add(self, collection: Collection, document_id: str, vectors: Sequence[IndexedVector]) -> None:
        """Index a document's vectors in place of its earlier ones (``collection`` as stored after
        the new chunks were saved)."""
        ...

    async def remove_document(self, collection: Collection, document_id: str) -> None: ...

    async def remove_collection(self, collection: Collection) -> None: ...

    async def search(self, collection: Collection, query: VectorQuery) -> list[VectorHit]:
        """The best ``top_k`` chunks of ``collection``, best first."""
        ...


@dataclass(frozen=True, slots=True)
class VectorIndexSpec:
    """A vector index, as registered by ``register_vector_indexes``."""

    name: str
    config_type: type[VectorIndexConfig]
    create: Callable[[Any, PluginContext], VectorIndex]
