"""The tenancy services over the document store: org credentials, bridges and threads, with the
per-worker caches that the change bus keeps honest. The :class:`~junction.runtime.Runtime` builds one
:class:`Domain` per process, hands its services to the plugins, and starts it after the stores
(and closes it before them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from junction.domain.bridges.service import BridgeService
from junction.domain.credentials.resolver import OrgCredentials
from junction.domain.invalidation import cache_ttl
from junction.domain.rag.service import KnowledgeService
from junction.domain.threads.history import ThreadHistory
from junction.settings import Settings
from junction.stores.documents.protocol import DocumentStore
from junction.stores.notify import ChangeBus


@dataclass(slots=True)
class Domain:
    settings: Settings
    documents: DocumentStore
    changes: ChangeBus
    credentials: OrgCredentials
    bridges: BridgeService
    threads: ThreadHistory
    knowledge: KnowledgeService | None = None

    def start(self) -> None:
        self.credentials.start()
        self.bridges.start()

    def close(self) -> None:
        self.bridges.close()
        self.credentials.close()


def build_domain(settings: Settings, documents: DocumentStore, changes: ChangeBus, redis: Any | None,
                 knowledge: KnowledgeService | None = None) -> Domain:
    """The services over ``documents`` (nothing is connected yet). ``redis``: the process's
    shared client when ``[stores] cache`` is Redis; ``knowledge``: RAG collections, for bridges
    that answer from them."""
    ttl = cache_ttl(settings.stores.cache)
    return Domain(
        settings=settings,
        documents=documents,
        changes=changes,
        credentials=OrgCredentials(documents.credentials, changes, ttl=ttl),
        bridges=BridgeService(documents.bridges, documents.orgs, changes, ttl=ttl, limits=settings.limits,
                              knowledge=knowledge),
        threads=ThreadHistory(documents.threads, redis, settings.threads),
        knowledge=knowledge,
    )
