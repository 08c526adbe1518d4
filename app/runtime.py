"""The composition root: settings → stores and shared clients → domain services → plugins →
router, routing policy and gateway. It does not depend on Litestar: ``junction serve`` (through
``create_app``), the CLI's admin commands, the tests and the queued-jobs worker all build a
:class:`Runtime` the same way, start it inside their event loop and close it at the end.

Start order: shared Redis client (lazy), change bus, document store, domain caches, HTTP clients,
plugins. Close order is the reverse, and every step of it runs even when one fails.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from junction.agents.connected import GatewayBridgeCalls
from junction.domain.rag.embedder import GatewayEmbedder
from junction.domain.rag.service import KnowledgeService
from junction.domain.services import Domain, build_domain
from junction.errors import ConfigError
from junction.pipeline.gateway import Gateway
from junction.plugins.manager import LoadedPlugins, load_plugins
from junction.plugins.protocols import PluginContext, ProviderConfig
from junction.plugins.vector_indexes import load_vector_index
from junction.pricing import PriceBook
from junction.routing.catalog import ModelCatalog
from junction.routing.router import Router
from junction.security.crypto import cipher_from_settings
from junction.settings import Settings
from junction.stores.documents import SQL_SCHEMES, open_document_store, url_scheme
from junction.stores.metrics.store import MetricsStore
from junction.stores.notify import is_redis_url, open_change_bus
from junction.stores.sql_engine import open_engine
from junction.stores.startup_errors import explain
from junction.upstream.http import ErrorMapper, UpstreamClient, error_for_status, new_upstream_client
from junction.worker import Jobs

log = logging.getLogger("junction.runtime")


class HttpClients:
    """Pooled HTTP clients by name, started and closed with the process."""

    def __init__(self) -> None:
        self._clients: dict[str, UpstreamClient] = {}

    def client(self, name: str, config: ProviderConfig, map_error: ErrorMapper | None = None) -> UpstreamClient:
        found = self._clients.get(name)
        if found is None:
            found = self._clients[name] = new_upstream_client(name, config, map_error or error_for_status)
        return found

    async def start(self) -> None:
        for client in self._clients.values():
            await client.start()

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()


class SqlEngines:
    """One SQLAlchemy engine per SQL store of the process."""

    def __init__(self, settings: Settings, documents: Any) -> None:
        self._settings = settings
        self._documents = documents
        self._own: dict[str, Any] = {}

    def engine(self, store: str) -> Any:
        url = getattr(self._settings.stores, store, None)
        if url is None or url_scheme(url) not in SQL_SCHEMES:
            raise ConfigError(f"stores.{store}: not a SQL store ({', '.join(SQL_SCHEMES)})")
        if store == "documents":
            return self._documents.database.engine  # the store's own pool, open once it started
        if store not in self._own:
            # hide_parameters: a failed statement must not put row contents into the log.
            self._own[store] = open_engine(url, hide_parameters=True, pool_pre_ping=True)
        return self._own[store]

    async def close(self) -> None:
        for engine in self._own.values():
            await engine.dispose()
        self._own.clear()


class Runtime:
    """Everything one process serves with. Building it connects nothing; ``start`` does."""

    def __init__(self, settings: Settings, *, with_plugins: bool = True, worker: bool = False,
                 provisional: bool = False) -> None:
        """``provisional``: built only to validate the config, so nothing is written (no key file)."""
        self.settings = settings
        self.redis = _shared_redis(settings.stores.cache)
        self.redis_pipeline = (_pipelined_redis(settings.stores.cache, settings.server.redis_reply_poll_us)
                               if self.redis is not None else None)
        try:
            self.changes = open_change_bus(settings.stores.cache, self.redis)
        except ValueError as error:
            raise ConfigError(f"{settings.source}: {error}") from None
        #: Seals stored credentials and tool headers, and chatbot tokens.
        self.cipher = cipher_from_settings(settings, create_key_file=not provisional)
        self.documents = open_document_store(settings.stores.documents, cipher=self.cipher, changes=self.changes)
        self.http = HttpClients()
        self.sql = SqlEngines(settings, self.documents)
        #: Embeddings through the gateway's own path (bound to the gateway once it is built).
        self.embeddings = GatewayEmbedder()
        index = load_vector_index(PluginContext(settings=settings, documents=self.documents, redis=self.redis,
                                                sql=self.sql))
        #: RAG collections (their vector index is a plugin: ``[knowledge] index``).
        self.knowledge = KnowledgeService(self.documents.knowledge, index, self.embeddings, settings.knowledge)
        self.domain: Domain = build_domain(settings, self.documents, self.changes, self.redis, self.knowledge)
        #: The usage ledger (started only by processes that serve: with plugins).
        self.metrics = MetricsStore(settings, self.sql)
        try:
            self.pricing = PriceBook(settings.pricing)
        except ConfigError as error:
            raise ConfigError(f"{settings.source}: {error}") from None
        self.bridge_calls = GatewayBridgeCalls(self.domain.bridges)
        self.context = PluginContext(settings=settings, documents=self.documents, changes=self.changes,
                                     redis=self.redis, redis_pipeline=self.redis_pipeline, sql=self.sql,
                                     http=self.http, bridges=self.domain.bridges, credentials=self.domain.credentials,
                                     bridge_calls=self.bridge_calls, pricing=self.pricing, usage=self.metrics,
                                     embeddings=self.embeddings, knowledge=self.knowledge)
        self.plugins: LoadedPlugins | None = None
        self.gateway: Gateway | None = None
        self.catalog: ModelCatalog | None = None
        if with_plugins:
            self.plugins = plugins = load_plugins(settings, context=self.context)
            installed = {info.name for info in plugins.infos if info.kind == "provider"}
            router = Router(plugins.providers, installed, settings.models, plugins.enable_hints())
            assert plugins.policy is not None, "load_plugins selects the routing policy"
            self.gateway = self.bridge_calls.gateway = Gateway(settings, plugins, router, plugins.policy)
            self.embeddings.bind(self.gateway)
            self.catalog = ModelCatalog(plugins.providers, router.alias_names)
        #: Queued jobs (app/worker.py): the queue, the webhook sender, the job service and runner.
        self.jobs: Jobs | None = None
        if self.gateway is not None:
            self.jobs = Jobs(settings, self.documents.jobs, self.gateway, worker=worker, domain=self.domain)
        self._started: list[Callable[[], Awaitable[None]]] = []

    async def start(self) -> None:
        await self._step(self.changes.start, self.changes.close, store="cache")
        await self._step(self.documents.start, self.documents.close, store="documents")
        self.domain.start()
        self._started.append(_as_async(self.domain.close))
        await self._step(self.http.start, self.http.close)
        if self.gateway is not None and self.redis_pipeline is not None:
            # Connected (scripts loaded) before the first call, and closed after the gateway.
            await self._step(self.redis_pipeline.connect, self.redis_pipeline.aclose)
        if self.gateway is not None:
            # Before the gateway: it closes first, so the writer's final flush sees every call.
            await self._step(self.metrics.start, self.metrics.close)
            await self._step(self.knowledge.index.start, self.knowledge.index.close)
            await self._step(self.gateway.start, self.gateway.close)
        if self.jobs is not None:
            await self._step(self.jobs.start, self.jobs.close, store="queue")

    async def _step(self, start: Callable[[], Awaitable[None]], close: Callable[[], Awaitable[None]],
                    store: str | None = None) -> None:
        try:
            await start()
        except BaseException as error:
            await self.close()
            # An unreachable store is said in a line naming it, not as the driver's traceback.
            explained = explain(store, getattr(self.settings.stores, store), error) if store else None
            if explained is not None and not isinstance(error, ConfigError):
                raise explained from error
            raise
        self._started.append(close)

    async def close(self) -> None:
        while self._started:
            close = self._started.pop()
            try:
                await close()
            except Exception:  # the others still close; the failure is logged
                log.exception("closing %r failed", close)
        await self.sql.close()
        if self.redis is not None:
            await self.redis.aclose()

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def probes(self) -> dict[str, Callable[[], Awaitable[None]]]:
        """Readiness pings of the stores this process keeps open (``/readyz``)."""
        return {"documents": self.documents.ping, "cache": self.changes.ping}


def _pipelined_redis(url: str, reply_poll_us: int) -> Any:
    # Imported here: redis-py (with what it imports) is ~8 MB a worker without a Redis cache never needs.
    from junction.stores.redis_pipeline import PipelinedRedis

    return PipelinedRedis(url, reply_poll=reply_poll_us / 1_000_000)


def _shared_redis(url: str) -> Any | None:
    """The one client (and connection pool) of ``[stores] cache`` for the whole process."""
    if not is_redis_url(url):
        return None
    import redis.asyncio as redis

    return redis.Redis.from_url(url, client_name="junction")


def _as_async(function: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        function()

    return run
