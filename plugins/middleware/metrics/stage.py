"""The ``metrics`` observe stage: it sees every call whole (refusals included) and, once the call
has ended, queues its usage-ledger row and records its Prometheus samples. Per call that is a
row built from the Call and an append to the writer's buffer; the database is never awaited.
It also sets ``Server-Timing`` on inference answers (errors included)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from junction.errors import ConfigError, JunctionError
from junction.logs import current_request
from junction.middleware.metrics.config import MetricsConfig
from junction.middleware.metrics.events import UsageEvents, upstream_ms
from junction.middleware.metrics.prometheus import GatewayMetrics
from junction.plugins import Call, Next, NextStream, PluginContext, Reply, Stage
from junction.schemas.stream import StreamEvent

SERVER_TIMING = "server-timing"


def server_timing(call: Call) -> str:
    """``gateway;dur=…, upstream;dur=…`` (ms): the gateway's own share and the upstreams'."""
    total = call.elapsed_ms()
    upstream = upstream_ms(call)
    return f"gateway;dur={max(total - upstream, 0.0):.2f}, upstream;dur={upstream:.2f}"


class MetricsStage(Stage):
    def __init__(self, config: MetricsConfig, context: PluginContext) -> None:
        self.config = config
        self._ledger = context.usage if config.ledger else None
        self._pricing = context.pricing
        self._events = UsageEvents(context.pricing)
        if config.prometheus_flush_seconds <= 0:
            raise ConfigError("middleware.metrics.prometheus_flush_seconds: must be > 0")
        self.prometheus = GatewayMetrics(config.prometheus_flush_seconds) if config.prometheus else None
        self._timing = config.server_timing

    async def start(self) -> None:
        if self.prometheus is not None:
            await self.prometheus.start()

    async def close(self) -> None:
        if self.prometheus is not None:
            await self.prometheus.close()

    async def handle(self, call: Call, next: Next) -> Reply:
        try:
            reply = await next(call)
        except JunctionError as error:
            if self._timing:
                error.headers[SERVER_TIMING] = server_timing(call)
            raise
        finally:
            self._finished(call)
        if self._timing:
            call.response_headers[SERVER_TIMING] = server_timing(call)
        return reply

    async def stream(self, call: Call, next: NextStream) -> AsyncIterator[StreamEvent]:
        # The headers leave with the first event: the timing is the time to it.
        first = True
        try:
            async for event in next(call):
                if first:
                    first = False
                    if self._timing:
                        call.response_headers[SERVER_TIMING] = server_timing(call)
                yield event
        except JunctionError as error:
            if first and self._timing:
                error.headers[SERVER_TIMING] = server_timing(call)
            raise
        finally:
            self._finished(call)

    def _finished(self, call: Call) -> None:
        request = current_request()
        if request is not None:  # the access line names the deployment and org
            request.model = call.deployment or getattr(call.received, "model", None)
            request.org_id = call.org_id
        cost = None
        if self._ledger is not None:
            event = self._events.build(call)
            cost = event.cost_usd
            if not self._ledger.record(event) and self.prometheus is not None:
                self.prometheus.dropped.inc()
        elif self.prometheus is not None and self._pricing is not None and call.outcome is not None:
            deployment = call.deployment
            if deployment is not None:
                provider, _, model = deployment.partition("/")
                priced = self._pricing.cost(provider, model, call.outcome.usage)
                cost = priced[0] if priced is not None else None
        if self.prometheus is not None:
            self.prometheus.observe(call, cost)

    def breaker_state(self, deployment: str, state: int) -> None:
        """The seam for a circuit-breaker plugin (reached as ``context.components["metrics"]`` in
        its ``register_routes``): report a deployment's state, 0 closed, 1 half-open, 2 open."""
        if self.prometheus is not None:
            self.prometheus.breaker_state(deployment, state)
