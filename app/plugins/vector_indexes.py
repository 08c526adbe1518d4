"""Loads the vector index ``[knowledge] index`` names from the ``junction.vector_indexes``
entry-point group (see :mod:`junction.plugins.vectors`). Nothing runs at import time."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec
import pluggy

from junction.errors import ConfigError
from junction.plugins.hooks import PluginHooks
from junction.plugins.hookspecs import PROJECT_NAME, JunctionHookSpecs
from junction.plugins.manager import EntryPointSource, installed_entry_points
from junction.plugins.vectors import IndexedVector, VectorHit, VectorIndex, VectorIndexSpec, VectorQuery
from junction.settings import describe_validation_error

if TYPE_CHECKING:
    from junction.plugins.protocols import PluginContext
    from junction.stores.documents.knowledge import Collection

GROUP = "junction.vector_indexes"
AUTO = "auto"
PGVECTOR, IN_PROCESS = "pgvector", "in-process"

log = logging.getLogger("junction.knowledge")


class IndexUnavailable(Exception):
    """Raised by an index's ``start`` when its backend lacks what it needs (e.g. the extension);
    with ``index = "auto"`` the next candidate is used instead."""


def load_vector_index(context: PluginContext, entry_points: EntryPointSource = installed_entry_points) -> VectorIndex:
    settings = context.settings
    chosen = settings.knowledge.index
    found = {ep.name: ep for ep in entry_points(GROUP)}
    for name in settings.knowledge.indexes:
        if name not in found:
            raise ConfigError(f"knowledge.indexes.{name}: no installed vector index has this name "
                              f"(installed: {', '.join(sorted(found)) or 'none'})")
    if chosen == AUTO:
        documents = settings.stores.documents.split("://", 1)[0]
        names = [PGVECTOR, IN_PROCESS] if documents.startswith("postgresql") else [IN_PROCESS]
    elif chosen in found:
        names = [chosen]
    else:
        raise ConfigError(f"knowledge.index: no installed vector index is named {chosen!r} "
                          f"(installed: {', '.join(sorted(found)) or 'none'}, or auto)")
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(JunctionHookSpecs)
    for name in names:
        if name not in found:
            raise ConfigError(f"knowledge.index: the {name!r} vector index is not installed")
        try:
            manager.register(found[name].load(), name=name)
        except Exception as error:  # a broken third-party package must name itself
            raise ConfigError(f"vector index {name!r} failed to import: {error!r}") from error
    specs: dict[str, VectorIndexSpec] = {}

    def register(spec: VectorIndexSpec) -> None:
        if not isinstance(spec, VectorIndexSpec) or spec.name not in names:
            raise ConfigError(f"register_vector_indexes was given {spec!r}; expected a VectorIndexSpec named "
                              f"after its entry point ({', '.join(names)})")
        specs[spec.name] = spec

    PluginHooks(manager).register_vector_indexes(register)
    indexes: list[tuple[str, VectorIndex]] = []
    for name in names:
        spec = specs.get(name)
        if spec is None:
            raise ConfigError(f"vector index plugin {name!r} registered no VectorIndexSpec")
        config = _validate_config_table(name, spec, settings.knowledge.indexes.get(name, {}))
        indexes.append((name, spec.create(config, context)))
    return indexes[0][1] if len(indexes) == 1 else FirstAvailable(indexes)


def _validate_config_table(name: str, spec: VectorIndexSpec, raw: dict[str, Any]) -> object:
    try:
        return msgspec.convert(raw, spec.config_type)
    except msgspec.ValidationError as error:
        raise ConfigError(describe_validation_error(error, prefix=f"knowledge.indexes.{name}")) from None


class FirstAvailable:
    """``index = "auto"``: the first candidate whose ``start`` succeeds serves."""

    def __init__(self, candidates: Sequence[tuple[str, VectorIndex]]) -> None:
        self._candidates = list(candidates)
        self._index: VectorIndex = candidates[-1][1]
        self.name = candidates[-1][0]

    async def start(self) -> None:
        for name, index in self._candidates:
            try:
                await index.start()
            except IndexUnavailable as reason:
                log.info("vector index %s is unavailable (%s); trying the next one", name, reason)
                continue
            self._index, self.name = index, name
            log.info("RAG collections use the %s vector index", name)
            return
        raise ConfigError("knowledge.index: no vector index could start")

    async def close(self) -> None:
        await self._index.close()

    async def add(self, collection: Collection, document_id: str, vectors: Sequence[IndexedVector]) -> None:
        await self._index.add(collection, document_id, vectors)

    async def remove_document(self, collection: Collection, document_id: str) -> None:
        await self._index.remove_document(collection, document_id)

    async def remove_collection(self, collection: Collection) -> None:
        await self._index.remove_collection(collection)

    async def search(self, collection: Collection, query: VectorQuery) -> list[VectorHit]:
        return await self._index.search(collection, query)
