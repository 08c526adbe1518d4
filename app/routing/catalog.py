"""The model list served by ``GET /v1/models``: each enabled provider's models plus the aliases."""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec

from junction.errors import JunctionError
from junction.plugins.protocols import ProviderAdapter

log = logging.getLogger("junction.models")

#: How long a provider's fetched model list is reused before asking it again.
CATALOG_TTL_SECONDS = 600.0
#: How long start-up waits for the providers' model lists before serving without them.
WARM_UP_SECONDS = 3.0


class ModelEntry(msgspec.Struct):
    id: str
    owned_by: str
    object: str = "model"
    created: int = 0


class ModelList(msgspec.Struct):
    data: list[ModelEntry]
    object: str = "list"


class ModelCatalog:
    def __init__(self, providers: dict[str, ProviderAdapter], aliases: list[str]) -> None:
        self._providers = providers
        self._aliases = aliases
        self._cached: dict[str, tuple[float, list[str]]] = {}

    async def _models_of(self, name: str, provider: ProviderAdapter) -> list[str]:
        cached = self._cached.get(name)
        if cached and time.monotonic() - cached[0] < CATALOG_TTL_SECONDS:
            return cached[1]
        try:
            models = await provider.list_models()
        except JunctionError as error:
            # One unreachable provider must not hide the others' models; it is logged, and the
            # last good answer (if any) is served meanwhile.
            log.warning("listing models of %s failed: %s", name, error.message)
            return cached[1] if cached else []
        except Exception:  # a plugin's own bug: it must not fail start-up or /v1/models for all
            log.exception("listing models of %s raised", name)
            return cached[1] if cached else []
        self._cached[name] = (time.monotonic(), models)
        return models

    async def warm_up(self) -> None:
        """At start-up: fetch every provider's model list once, so the first ``/v1/models`` is
        served from the cache. A slow or failing provider delays start-up by at most
        ``WARM_UP_SECONDS`` and is asked again on the first request."""
        try:
            async with asyncio.timeout(WARM_UP_SECONDS):  # not wait_for: see junction.tasks
                await self.list()
        except TimeoutError:
            log.warning("model lists were not all fetched within %.0fs of start-up", WARM_UP_SECONDS)

    async def list(self) -> ModelList:
        names = sorted(self._providers)
        lists = await asyncio.gather(*(self._models_of(n, self._providers[n]) for n in names))
        entries = [ModelEntry(id=alias, owned_by="junction") for alias in self._aliases]
        for name, models in zip(names, lists, strict=True):
            entries.extend(ModelEntry(id=f"{name}/{model}", owned_by=name) for model in models)
        return ModelList(data=entries)

    async def get(self, model_id: str) -> ModelEntry | None:
        """The entry ``GET /v1/models/{id}`` answers with, or ``None`` when the list has no such model."""
        return next((entry for entry in (await self.list()).data if entry.id == model_id), None)
