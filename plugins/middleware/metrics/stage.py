"""The ``metrics`` observe stage: it sees every call whole (refusals included) and, once the call
has ended, keeps it as a small tuple (:data:`~junction.middleware.metrics.events.Finished`):
that, and ``Server-Timing`` on inference answers (errors included), is all a call pays. Both
are hooks its ``enter`` registers on the call (:meth:`Call.when_answered`, :meth:`Call.when_ended`),
not a layer around it.

Every :data:`DRAIN_SECONDS` a background task drains the kept calls, a slice at a time with the
event loop's other work in between. Where ``junction serve`` runs the node's usage relay
(relay.py; ``relay``: by default where a core is left idle) a slice goes to it, which makes the
rows and samples for every worker; otherwise (no relay, or it is out or behind) the worker records
them itself (record.py): each becomes a usage-ledger row queued on the writer (the database is
never awaited) and is added to the Prometheus samples, whose histograms are counted per batch.
``/metrics`` drains first (and has the relay write its samples), so the answering worker's own
calls show at once; shutdown drains everything before the writer's final flush (or the relay
connection's close). The kept calls are bounded: past :data:`MAX_KEPT`
(the drain cannot keep up: the loop is starved) a call drains them on the spot.
"""

from __future__ import annotations

import asyncio
import logging
import os

from junction.errors import ConfigError, JunctionError
from junction.middleware.metrics.config import MetricsConfig
from junction.middleware.metrics.events import Finished, finished, upstream_ms
from junction.middleware.metrics.prometheus import GatewayMetrics
from junction.middleware.metrics.record import CallRecorder, priced
from junction.middleware.metrics.relay import RELAY_ENV, RelayClient
from junction.plugins import Call, PluginContext, Stage
from junction.tasks import stop

SERVER_TIMING = "server-timing"
_SERVER_TIMING = "gateway;dur=%.2f, upstream;dur=%.2f"
#: How often kept calls become ledger rows and samples.
DRAIN_SECONDS = 0.1
#: Calls drained between two yields to the event loop (a fraction of a millisecond of work).
SLICE = 128
#: Calls kept at most; past it they are drained at once, by the call that found the list full.
MAX_KEPT = 16_384

log = logging.getLogger("junction.metrics")


def _timed(call: Call, error: JunctionError | None) -> None:
    """``Server-Timing`` on the answer, or on the error the call failed with before it:
    ``gateway;dur=…, upstream;dur=…`` (ms), the gateway's own share and the upstreams'. A
    stream's headers leave with its first event: its timing is the time to that event. (Per
    response: ``%`` formatting costs half an f-string with ``max``.)"""
    upstream = upstream_ms(call.attempts)
    gateway = call.elapsed_ms() - upstream
    (call.response_headers if error is None else error.headers)[SERVER_TIMING] = _SERVER_TIMING % (
        gateway if gateway > 0.0 else 0.0, upstream)


class MetricsStage(Stage):
    def __init__(self, config: MetricsConfig, context: PluginContext) -> None:
        self.config = config
        if config.prometheus_flush_seconds <= 0:
            raise ConfigError("middleware.metrics.prometheus_flush_seconds: must be > 0")
        self.prometheus = (GatewayMetrics(config.prometheus_flush_seconds, priced(context.pricing))
                           if config.prometheus else None)
        ledger = context.usage if config.ledger else None
        self._recorder = CallRecorder(ledger, self.prometheus, context.pricing)
        self._timing = config.server_timing
        self._keeps = ledger is not None or self.prometheus is not None
        relay = os.environ.get(RELAY_ENV) if config.relay and self._keeps else None
        #: The node's usage relay (``junction serve``), or ``None``: this worker records its calls.
        self.relay = RelayClient(relay) if relay else None
        self._kept: list[Finished] = []
        self._on_end = self._finished  # bound once, not per call
        self._drainer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._keeps:
            self._drainer = asyncio.create_task(self._drain_every(), name="junction-metrics-drain")
        if self.prometheus is not None:
            await self.prometheus.start()
        if self.relay is not None:
            await self.relay.connect()

    async def close(self) -> None:
        if self._drainer is not None:
            await stop(self._drainer)
            self._drainer = None
        self.drain()
        if self.relay is not None:
            await self.relay.close()
        if self.prometheus is not None:
            await self.prometheus.close()

    async def enter(self, call: Call) -> None:
        # Hooks, not a handle/stream layer around the call: a layer cost every call ~4% of the
        # plain path's CPU here (bench/metrics_overhead.py, every part off: +4.1% CPU as a layer,
        # -0.4% as hooks).
        if self._timing:
            call.when_answered(_timed)
        if self._keeps:
            call.when_ended(self._on_end)

    def _finished(self, call: Call) -> None:
        kept = self._kept
        kept.append(finished(call))
        if len(kept) >= MAX_KEPT:
            self.drain()

    def drain(self) -> None:
        """Every kept call into the ledger's buffer and the Prometheus samples, now."""
        kept, self._kept = self._kept, []
        if kept:
            self._add(kept)

    async def _drain_every(self) -> None:
        while True:
            await asyncio.sleep(DRAIN_SECONDS)
            first = True
            while self._kept:
                if not first:
                    await asyncio.sleep(0)  # the requests waiting meanwhile go first
                first = False
                # From the list itself, not a copy: a close that cancels this meanwhile drains the rest.
                kept = self._kept
                batch = kept[:SLICE]
                del kept[:SLICE]
                try:
                    self._add(batch)
                except Exception:  # a bug in one batch: say so, go on with the next ones
                    log.exception("recording %d finished call(s) in the metrics failed", len(batch))

    def _add(self, calls: list[Finished]) -> None:
        relay = self.relay
        if relay is None or not relay.send(calls):
            self._recorder.add(calls)

    def exposition(self) -> bytes:
        """``/metrics``: this worker's calls so far included (recorded here; see :meth:`current`)."""
        assert self.prometheus is not None
        self.drain()
        return self.prometheus.exposition()

    async def current(self) -> bytes:
        """``/metrics``: this worker's calls so far included, wherever they are recorded."""
        if self.relay is not None:
            self.drain()
            await self.relay.flush()
        return self.exposition()

    def breaker_state(self, deployment: str, state: int) -> None:
        """The seam for a circuit-breaker plugin (reached as ``context.components["metrics"]`` in
        its ``register_routes``): report a deployment's state, 0 closed, 1 half-open, 2 open."""
        if self.prometheus is not None:
            self.prometheus.breaker_state(deployment, state)
