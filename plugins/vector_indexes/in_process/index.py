"""Exact cosine search over a collection's vectors, loaded from the documents store per revision."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from junction.errors import ConfigError
from junction.plugins.protocols import PluginContext
from junction.plugins.vectors import IndexedVector, VectorHit, VectorIndexConfig, VectorQuery
from junction.stores.documents.knowledge import Collection

if TYPE_CHECKING:
    import numpy as np


class InProcessConfig(VectorIndexConfig, kw_only=True):
    #: Collections whose vectors a worker keeps in memory (least recently queried dropped first).
    max_collections: int = 64
    #: Collections with more vectors than this are searched in a worker thread, so the event loop
    #: keeps serving meanwhile.
    thread_above: int = 20_000


@dataclass(slots=True)
class _Loaded:
    revision: int
    ids: list[str]
    metadata: list[dict[str, Any]]
    matrix: np.ndarray


class InProcessIndex:
    def __init__(self, config: InProcessConfig, context: PluginContext) -> None:
        if context.documents is None:
            raise ConfigError("knowledge.index: the in-process index needs the documents store")
        if config.max_collections < 1:
            raise ConfigError("knowledge.indexes.in-process.max_collections: must be at least 1")
        self._store = context.documents.knowledge
        self._config = config
        self._loaded: OrderedDict[str, _Loaded] = OrderedDict()
        self._loading: dict[str, asyncio.Lock] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._loaded.clear()

    # The documents store already holds the vectors; a new revision makes the next query reload.
    async def add(self, collection: Collection, document_id: str, vectors: Sequence[IndexedVector]) -> None:
        return None

    async def remove_document(self, collection: Collection, document_id: str) -> None:
        return None

    async def remove_collection(self, collection: Collection) -> None:
        self._loaded.pop(collection.id, None)

    async def search(self, collection: Collection, query: VectorQuery) -> list[VectorHit]:
        import numpy as np  # here, not at import: workers that never search a collection do without it

        loaded = await self._vectors(collection)
        if not loaded.ids:
            return []
        vector = np.frombuffer(query.vector, dtype="<f4")
        if len(loaded.ids) > self._config.thread_above:
            return await asyncio.to_thread(_best, loaded, vector, query)
        return _best(loaded, vector, query)

    async def _vectors(self, collection: Collection) -> _Loaded:
        loaded = self._loaded.get(collection.id)
        if loaded is None or loaded.revision != collection.revision:
            lock = self._loading.setdefault(collection.id, asyncio.Lock())
            async with lock:  # concurrent queries of a stale collection load it once
                loaded = self._loaded.get(collection.id)
                if loaded is None or loaded.revision != collection.revision:
                    loaded = await self._load(collection)
            self._loading.pop(collection.id, None)
        self._loaded.move_to_end(collection.id)
        return loaded

    async def _load(self, collection: Collection) -> _Loaded:
        import numpy as np

        chunks = await self._store.vectors(collection.org_id, collection.id)
        dimensions = collection.dimensions or 0
        matrix = np.frombuffer(b"".join(chunk.embedding for chunk in chunks), dtype="<f4")
        loaded = _Loaded(revision=collection.revision, ids=[chunk.id for chunk in chunks],
                         metadata=[chunk.metadata for chunk in chunks],
                         matrix=matrix.reshape(len(chunks), dimensions) if chunks else matrix)
        self._loaded[collection.id] = loaded
        while len(self._loaded) > self._config.max_collections:
            self._loaded.popitem(last=False)
        return loaded


def _best(loaded: _Loaded, vector: np.ndarray, query: VectorQuery) -> list[VectorHit]:
    import numpy as np

    scores = loaded.matrix @ vector
    if query.filter:
        wanted = query.filter.items()
        keep = np.fromiter((all(meta.get(k) == v for k, v in wanted) for meta in loaded.metadata),
                           dtype=bool, count=len(loaded.ids))
        scores = np.where(keep, scores, -np.inf)
    k = min(query.top_k, len(scores))
    best = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    best = best[np.argsort(-scores[best], kind="stable")]
    return [VectorHit(loaded.ids[i], float(scores[i])) for i in best if scores[i] >= query.min_score]
