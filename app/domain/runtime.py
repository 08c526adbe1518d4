"""The tenancy services, built once per app: the document store, the change bus, and the
per-worker caches over them. ``create_app`` builds one :class:`Domain`, hands the store and bus to
the plugins (the ``api-keys`` authenticator) and the caches to the pipeline, and starts it before
the plugins (and closes it after them)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from app.domain.bridges.service import BridgeService
from app.domain.credentials.resolver import OrgCredentials
from app.domain.invalidation import cache_ttl
from app.domain.threads.history import ThreadHistory
from app.errors import ConfigError
from app.security.crypto import cipher_from_settings
from app.settings import Settings
from app.stores.documents import open_document_store
from app.stores.documents.protocol import DocumentStore
from app.stores.notify import ChangeBus, open_change_bus


@dataclass(slots=True)
class Domain:
    settings: Settings
    documents: DocumentStore
    changes: ChangeBus
    credentials: OrgCredentials
    bridges: BridgeService
    threads: ThreadHistory

    async def start(self) -> None:
        await self.changes.start()
        await self.documents.start()
        self.credentials.start()
        self.bridges.start()
        await self.threads.start()

    def probes(self) -> dict[str, Callable[[], Awaitable[None]]]:
        """Readiness pings of the stores the domain keeps open (``/readyz``)."""
        return {"documents": self.documents.ping, "cache": self.changes.ping}

    async def close(self) -> None:
        self.bridges.close()
        self.credentials.close()
        await self.threads.close()
        await self.documents.close()
        await self.changes.close()


def build_domain(settings: Settings) -> Domain:
    """Build (without connecting) the store, bus and caches the settings describe."""
    try:
        changes = open_change_bus(settings.stores.cache)
    except ValueError as error:
        raise ConfigError(f"{settings.source}: {error}") from None
    documents = open_document_store(
        settings.stores.documents, cipher=cipher_from_settings(settings), changes=changes
    )
    ttl = cache_ttl(settings.stores.cache)
    return Domain(
        settings=settings,
        documents=documents,
        changes=changes,
        credentials=OrgCredentials(documents.credentials, changes, ttl=ttl),
        bridges=BridgeService(documents.bridges, documents.orgs, changes, ttl=ttl),
        threads=ThreadHistory(documents.threads, settings.stores.cache, settings.threads),
    )
