"""Vector index plugins for tests/unit/test_vector_indexes.py: a third-party-style index (a list
searched by brute force), and one whose backend is always missing (for ``index = "auto"``)."""

from __future__ import annotations

import numpy as np

from junction.plugins import hookimpl
from junction.plugins.vector_indexes import IndexUnavailable
from junction.plugins.vectors import VectorHit, VectorIndexConfig, VectorIndexSpec


class ListConfig(VectorIndexConfig, kw_only=True):
    label: str = "list"


class ListIndex:
    def __init__(self, config: ListConfig, context) -> None:
        self.label = config.label
        self.vectors: dict[str, bytes] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def add(self, collection, document_id, vectors) -> None:
        self.vectors.update((v.chunk_id, v.vector) for v in vectors)

    async def remove_document(self, collection, document_id) -> None:
        return None

    async def remove_collection(self, collection) -> None:
        return None

    async def search(self, collection, query):
        q = np.frombuffer(query.vector, dtype="<f4")
        scored = sorted(((float(np.frombuffer(v, dtype="<f4") @ q), k) for k, v in self.vectors.items()), reverse=True)
        return [VectorHit(k, s) for s, k in scored[: query.top_k]]


class MissingBackend(ListIndex):
    async def start(self) -> None:
        raise IndexUnavailable("no such extension")


def _plugin(name: str, create):
    class Plugin:
        @staticmethod
        @hookimpl
        def register_vector_indexes(register):
            register(VectorIndexSpec(name=name, config_type=ListConfig, create=create))

    return Plugin()


list_plugin = _plugin("list", ListIndex)
fallback_plugin = _plugin("in-process", ListIndex)
missing_plugin = _plugin("pgvector", MissingBackend)
