"""``create_app(settings)``: the one place the Litestar app is assembled."""

from __future__ import annotations

import gc
import logging

from litestar import Litestar
from litestar.openapi import OpenAPIConfig

import app
from app.domain.routes import domain_routes
from app.domain.runtime import build_domain
from app.errors import EXCEPTION_HANDLERS
from app.health import health_routes
from app.ingress.anthropic import anthropic_routes
from app.ingress.embeddings import embeddings_routes
from app.ingress.openai import openai_routes
from app.pipeline import Gateway
from app.plugins.manager import load_plugins
from app.plugins.routes import plugin_routes
from app.plugins.protocols import PluginContext
from app.request_id import add_request_id_header
from app.routing.catalog import ModelCatalog
from app.routing.router import Router
from app.settings import Settings, ensure_master_key, load_settings

log = logging.getLogger("junction")


async def freeze_startup_objects() -> None:
    """Move everything built at start-up out of the garbage collector's sight: later
    collections then only walk per-request objects, which keeps tail latency down."""
    gc.collect()
    gc.freeze()


def create_app(settings: Settings) -> Litestar:
    """Validate the plugins against ``settings`` and build the app. Raises ConfigError early,
    before anything listens, for every configuration problem."""
    ensure_master_key(settings)
    domain = build_domain(settings)
    plugins = load_plugins(settings, context=PluginContext(settings=settings, documents=domain.documents,
                                                           changes=domain.changes))
    installed = {info.name for info in plugins.infos if info.kind == "provider"}
    router = Router(plugins.providers, installed, settings.models)
    gateway = Gateway(settings, plugins, router, bridges=domain.bridges, credentials=domain.credentials)
    catalog = ModelCatalog(plugins.providers, router.alias_names)
    return Litestar(
        route_handlers=[*openai_routes(gateway, catalog), *embeddings_routes(gateway),
                        *anthropic_routes(gateway), *health_routes(settings.stores, domain.probes()), *plugin_routes(gateway),
                        *domain_routes(gateway, domain)],
        before_send=[add_request_id_header],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        on_startup=[domain.start, gateway.start, catalog.warm_up, freeze_startup_objects],
        on_shutdown=[gateway.close, domain.close],
        request_max_body_size=settings.server.max_body_bytes,
        openapi_config=OpenAPIConfig(title="Junction", version=app.__version__, path="/schema"),
        state={"gateway": gateway},
        logging_config=None,
    )


def create_app_from_environment() -> Litestar:
    """Factory for Granian workers: settings from ``$JUNCTION_CONFIG`` (or built-in defaults)."""
    return create_app(load_settings())
