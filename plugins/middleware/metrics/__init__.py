"""The ``metrics`` plugin: the usage ledger's rows, Prometheus ``/metrics`` and ``Server-Timing``
(see stage.py and prometheus.py), and under ``junction serve`` on a node with a core its workers
leave idle (or with ``relay = true``) the node's usage relay (relay.py).
On by default; ``[middleware.metrics]`` switches its parts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from litestar import Request, Response, get

from junction.middleware.metrics import relay
from junction.middleware.metrics.config import MetricsConfig
from junction.middleware.metrics.stage import MetricsStage
from junction.plugins import (
    MiddlewareSpec,
    NodeService,
    RouteContext,
    StagePlacement,
    hookimpl,
    require_scope,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@hookimpl
def register_middleware(register):
    register(MiddlewareSpec(name="metrics", config_type=MetricsConfig, create=MetricsStage,
                            stage=StagePlacement(phase="observe")))


@hookimpl
def register_routes(register, context: RouteContext):
    stage = context.components.get("metrics")
    if not isinstance(stage, MetricsStage) or stage.prometheus is None:
        return
    require_key = stage.config.metrics_require_key

    @get("/metrics", summary="Prometheus metrics (every worker's)", include_in_schema=False)
    async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
        if require_key:
            require_scope(await context.authenticate(request.headers), "admin")
        # As a header: given as the media type, Litestar adds a second charset (a type Go's MIME
        # parser, and so Prometheus 3's scraper, refuses).
        return Response(await stage.current(), headers={"content-type": CONTENT_TYPE})

    register(metrics)


@hookimpl
def register_node_services(register: Callable[[NodeService], None], components: Mapping[str, object],
                           workers: int) -> None:
    stage = components.get("metrics")
    if isinstance(stage, MetricsStage) and stage.config.relay_for(workers):
        register(NodeService(name="usage-relay", module=__name__, env=relay.RELAY_ENV))  # __main__.py
