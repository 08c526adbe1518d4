"""``create_app(settings)``: the one place the Litestar app is assembled, around a Runtime."""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Sequence
from functools import partial
from typing import Any

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.middleware import DefineMiddleware
from litestar.plugins import PluginProtocol
from litestar.types import Receive, Scope, Send

import junction
from junction.body_guard import BodyGuard
from junction.domain.batches.controllers import batch_routes
from junction.domain.batches.openai import openai_batch_routes
from junction.domain.chatbots.controllers import chatbot_routes
from junction.domain.jobs.controllers import job_routes, submit_bridge_chat, submit_chat
from junction.domain.rag.controllers import rag_routes
from junction.domain.routes import domain_routes
from junction.domain.usage.controllers import usage_routes
from junction.errors import EXCEPTION_HANDLERS, ConfigError
from junction.health import health_routes
from junction.ingress.anthropic import anthropic_routes
from junction.ingress.embeddings import embeddings_routes
from junction.ingress.lean import PATH as LEAN_PATH
from junction.ingress.lean import LeanChat
from junction.ingress.openai import openai_routes
from junction.logs import AccessLog, configure_logging, flush_logs
from junction.native_threads import NativeThreadPolicy
from junction.openapi import describe_request_bodies, docs_assets, openapi_config
from junction.plugins.manager import collect_routes
from junction.plugins.protocols import RouteContext
from junction.plugins.routes import plugin_routes
from junction.request_id import add_request_id_header
from junction.runtime import Runtime
from junction.settings import Settings, ensure_master_key, load_settings

log = logging.getLogger("junction")


#: Allocations between two young-generation collections once serving (CPython's default: 700).
#: A request allocates hundreds of container objects, nearly all freed by reference counting; at
#: 700 the collector ran every request or two. Measured (bench/peers/peers.sh junction-lean vs
#: junction-lean-gc10000, 2 rounds each): about −10% CPU per request.
GC_YOUNG_THRESHOLD = 10_000


async def freeze_startup_objects() -> None:
    """Move everything built at start-up out of the garbage collector's sight: later
    collections then only walk per-request objects, which keeps tail latency down."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


class JunctionApp(Litestar):
    """Litestar, with ``POST /v1/chat/completions`` answered first by the lean path when it is on."""

    lean: LeanChat | None = None
    #: HTTP requests this worker is serving now (a lone one lets the Redis connection poll for
    #: its replies: :meth:`~junction.stores.redis_protocol.Connection._await_lone_reply`).
    requests_in_flight = 0

    @staticmethod
    def _get_default_plugins(plugins: list[PluginProtocol]) -> list[PluginProtocol]:
        """Litestar's default plugins, less its pydantic and attrs ones unless something loaded
        imported those libraries: our routes use msgspec, and a route can only annotate with a
        pydantic or attrs type from a module that imported it. Importing them for nothing is
        ~9 MB of every worker (Litestar adds them whenever they are installed)."""
        if "pydantic" in sys.modules or "attrs" in sys.modules or "attr" in sys.modules:
            return Litestar._get_default_plugins(plugins)
        from litestar.plugins.core import MsgspecDIPlugin

        plugins.append(MsgspecDIPlugin())
        return plugins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # type: ignore[override]
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        self.requests_in_flight += 1
        try:
            lean = self.lean
            if (lean is not None and scope["path"] == LEAN_PATH and scope["method"] == "POST"
                    and await lean.handle(scope, receive, send)):
                return
            await super().__call__(scope, receive, send)
        finally:
            self.requests_in_flight -= 1


def create_app(settings: Settings, *, provisional: bool = False) -> Litestar:
    """Validate the plugins against ``settings`` and build the app. Raises ConfigError early,
    before anything listens, for every configuration problem. ``provisional``: only to validate
    (``junction serve`` before it starts workers), so no key file is written yet."""
    if not provisional:
        ensure_master_key(settings)
    configure_logging(settings.logging)
    runtime = Runtime(settings, provisional=provisional)
    gateway, catalog, plugins = runtime.gateway, runtime.catalog, runtime.plugins
    assert gateway is not None and catalog is not None and plugins is not None
    jobs = runtime.jobs
    assert jobs is not None
    own = [*openai_routes(gateway, catalog, partial(submit_chat, jobs.service)), *embeddings_routes(gateway),
           *anthropic_routes(gateway), *job_routes(gateway, jobs.service), *batch_routes(gateway, jobs.batches),
           *openai_batch_routes(gateway, jobs.batches),
           *health_routes(settings.stores, runtime.probes()), *plugin_routes(gateway),
           *domain_routes(gateway, runtime.domain, partial(submit_bridge_chat, jobs.service)),
           *usage_routes(gateway, runtime.metrics), docs_assets(),
           *chatbot_routes(gateway, runtime.domain, runtime.cipher, runtime.redis),
           *rag_routes(gateway, runtime.knowledge, runtime.documents.orgs, jobs.service.submit_task)]
    context = RouteContext(authenticate=gateway.authenticate, components=plugins.by_name, services=runtime.context,
                           runtime=runtime)
    added, middleware = collect_routes(plugins, context)
    native_threads = NativeThreadPolicy(settings.server.batch_native_threads)
    _refuse_taken_paths(own, added)
    describe_request_bodies(own)
    built = JunctionApp(
        route_handlers=[*own, *added],
        middleware=[DefineMiddleware(BodyGuard, settings=settings), *middleware],
        before_send=[add_request_id_header],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        on_startup=[runtime.start, catalog.warm_up, freeze_startup_objects, native_threads.start],
        on_shutdown=[native_threads.close, runtime.close, flush_logs],
        request_max_body_size=settings.server.max_body_bytes,
        openapi_config=openapi_config(junction.__version__),
        cors_config=_cors(settings),
        state={"gateway": gateway, "runtime": runtime},
        logging_config=None,
    )
    if settings.server.lean_ingress and not middleware:  # a plugin's ASGI middleware must see every request
        built.lean = LeanChat(gateway, settings, lambda: built.requests_in_flight)
    if runtime.redis_pipeline is not None:
        # One request, waiting on its round trip: poll for the reply (not with none: what is
        # written after an answer, settles and fills, has nobody waiting for it).
        runtime.redis_pipeline.serving_one = lambda: built.requests_in_flight == 1
    return built


def _cors(settings: Settings) -> CORSConfig | None:
    cors = settings.server.cors
    if not cors.allow_origins:
        return None
    return CORSConfig(allow_origins=cors.allow_origins, allow_methods=cors.allow_methods,  # type: ignore[arg-type]
                      allow_headers=cors.allow_headers, expose_headers=cors.expose_headers,
                      allow_credentials=cors.allow_credentials, max_age=cors.max_age)


def _refuse_taken_paths(own: Sequence[Any], added: Sequence[Any]) -> None:
    """A plugin's route must not shadow one of ours (or another plugin's)."""
    taken: set[tuple[str, str]] = set()
    for handler in [*own, *added]:
        for path in getattr(handler, "paths", ()):
            for method in sorted(getattr(handler, "http_methods", ()) or ()):
                if (path, method) in taken:
                    raise ConfigError(f"a plugin's route {method} {path} is already served; choose another path")
                taken.add((path, method))


def create_app_from_environment() -> AccessLog:
    """Factory for Granian workers: settings from ``$JUNCTION_CONFIG`` (or built-in defaults).
    The access log wraps the whole app, so it also sees requests no route matched."""
    settings = load_settings()
    return AccessLog(create_app(settings), enabled=settings.logging.access_log)
