"""Prometheus metrics of the gateway, named after the OpenTelemetry GenAI semantic conventions
where they define one (dots become underscores, units a suffix, as OpenTelemetry's own Prometheus
exporter does): ``gen_ai_server_request_duration_seconds``,
``gen_ai_server_time_to_first_token_seconds``, ``gen_ai_client_token_usage`` with the attributes
``gen_ai_operation_name``, ``gen_ai_provider_name``, ``gen_ai_request_model``,
``gen_ai_token_type`` and ``error_type``; the rest are ``junction_*``.

Labels stay bounded: provider, model (of a deployment that was tried, never the client's raw
text), operation, endpoint, status class, refusal reason. Never a key, org or user id: those
questions are answered by the usage ledger in SQL.

Across Granian workers: ``junction serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh
directory before any worker starts, so each worker's samples go to files there and ``/metrics``
(answered by any worker) sums them (prometheus_client's multiprocess mode). Without it (an app
built in-process, e.g. by tests), the process's own registry is served.

A call's samples are added to plain in-process sums (a list index and an add each); every
``flush_seconds`` (and before this worker answers ``/metrics``, and at shutdown) the sums are
written to prometheus_client's values in one go: in multiprocess mode each value write is a
locked write to a memory-mapped file, ten of them per call would cost more than the rest of the
plugin. So another worker's calls reach ``/metrics`` within ``flush_seconds``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from bisect import bisect_left
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector

from junction.middleware.metrics.events import deployment_of
from junction.plugins import Attempt, Call

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
                    163.84, 327.68)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
_OPERATIONS = {"chat.completions": "chat", "messages": "chat", "bridges.chat": "chat", "embeddings": "embeddings"}
#: Refusals by admission stages, by their ``error.code`` (the traffic-control contract).
REFUSAL_CODES = frozenset({"rate_limit_exceeded", "budget_exceeded"})
_GENAI = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model")

log = logging.getLogger("junction.metrics")


class _Histogram:
    """A labelled histogram child's observations since the last flush."""

    __slots__ = ("bounds", "child", "counts", "total")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.bounds = child._upper_bounds[:-1]  # the last is +Inf: bisect lands past the others
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # Prometheus buckets: value <= bound
        self.total += value

    def flush(self) -> None:
        counts = self.counts
        if not any(counts):
            return
        # prometheus_client keeps a histogram child as per-bucket (non-cumulative) values and a
        # sum; ``observe`` adds 1 to one of them and the value to the sum, as this does in bulk.
        child = self.child
        child._sum.inc(self.total)
        for bucket, count in zip(child._buckets, counts):
            if count:
                bucket.inc(count)
        self.counts = [0] * len(counts)
        self.total = 0.0


class _Counter:
    """A labelled counter child's increments since the last flush."""

    __slots__ = ("child", "total")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.total = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.total += amount

    def flush(self) -> None:
        if self.total:
            self.child.inc(self.total)
            self.total = 0.0


@dataclass(slots=True)
class _Series:
    """The children of one label combination of a call."""

    duration: _Histogram
    requests: _Counter
    ttft: _Histogram
    input_tokens: _Histogram
    output_tokens: _Histogram
    cost: _Counter
    cache_hits: _Counter

    def flush(self) -> None:
        for part in (self.duration, self.requests, self.ttft, self.input_tokens, self.output_tokens,
                     self.cost, self.cache_hits):
            part.flush()


class GatewayMetrics:
    """The gateway's metrics, in a registry of their own (no process-global state)."""

    def __init__(self, flush_seconds: float = 1.0) -> None:
        self.flush_seconds = flush_seconds
        self._flusher: asyncio.Task[None] | None = None
        self.registry = registry = CollectorRegistry(auto_describe=True)
        # prometheus_client picks its value store when first imported: multiprocess files only
        # if the variable was set by then (``junction serve`` sets it before anything imports).
        multiprocess = values.ValueClass is not values.MutexValue
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) if multiprocess else None
        self.duration = Histogram(
            "gen_ai_server_request_duration_seconds", "Time to answer a GenAI call, as the client saw it",
            [*_GENAI, "error_type"], buckets=DURATION_BUCKETS, registry=registry)
        self.ttft = Histogram(
            "gen_ai_server_time_to_first_token_seconds", "Time to the first streamed event",
            list(_GENAI), buckets=TTFT_BUCKETS, registry=registry)
        self.tokens = Histogram(
            "gen_ai_client_token_usage", "Tokens per call, by gen_ai_token_type (input, output)",
            [*_GENAI, "gen_ai_token_type"], buckets=TOKEN_BUCKETS, registry=registry)
        self.upstream = Histogram(
            "junction_upstream_request_duration_seconds", "One upstream attempt, to its answer or failure",
            ["gen_ai_provider_name", "gen_ai_request_model", "outcome"], buckets=DURATION_BUCKETS,
            registry=registry)
        self.requests = Counter("junction_requests", "Inference calls by endpoint and status class",
                                ["endpoint", "status_class"], registry=registry)
        self.cost = Counter("junction_cost_usd", "Cost of calls whose price is known, USD",
                            ["gen_ai_provider_name", "gen_ai_request_model"], registry=registry)
        self.cache_hits = Counter("junction_cache_hits", "Calls answered from the response cache",
                                  ["endpoint"], registry=registry)
        self.refusals = Counter("junction_refusals", "Calls refused by rate limits or budgets",
                                ["reason"], registry=registry)
        self.dropped = Counter("junction_usage_events_dropped",
                               "Usage events dropped because the writer's buffer was full", registry=registry)
        # A seam for the circuit breaker: 0 closed, 1 half-open, 2 open (see breaker_state).
        self.breaker = Gauge("junction_circuit_breaker_state", "Circuit breaker state per deployment "
                             "(0 closed, 1 half-open, 2 open)", ["deployment"], registry=registry,
                             multiprocess_mode="max")
        self.dropped.inc(0)
        # Labelled children by label values: ``labels()`` costs more than the sample itself.
        # Bounded like the labels (deployments tried × endpoints × status classes × error types).
        self._series: dict[tuple[str, str | None, int, str], _Series] = {}
        self._attempts: dict[tuple[str, str], _Histogram] = {}

    async def start(self) -> None:
        self._flusher = asyncio.create_task(self._flush_every(), name="junction-prometheus-flush")

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            try:
                await self._flusher
            except asyncio.CancelledError:
                pass  # the cancel just made
            self._flusher = None
        self.flush()

    async def _flush_every(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            try:
                self.flush()
            except Exception:  # a full disk: say so, keep the samples, try again next time
                log.exception("writing Prometheus samples failed")

    def flush(self) -> None:
        """Write the samples gathered since the last flush to prometheus_client's values."""
        for series in self._series.values():
            series.flush()
        for attempt in self._attempts.values():
            attempt.flush()

    def observe(self, call: Call, cost: float | None) -> None:
        outcome = call.outcome
        status = outcome.status if outcome is not None else 500
        error_type = "" if status < 400 else (outcome.error_class if outcome is not None else "server_error") or ""
        key = (call.endpoint, deployment_of(call), status // 100, error_type)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = self._new_series(*key)
        latency = (outcome.latency_ms if outcome is not None else call.elapsed_ms()) / 1000
        series.duration.observe(latency)
        series.requests.inc()
        if call.stream and call.first_byte_ms is not None:
            series.ttft.observe(call.first_byte_ms / 1000)
        usage = outcome.usage if outcome is not None else None
        if usage is not None:
            series.input_tokens.observe(usage.prompt_tokens)
            series.output_tokens.observe(usage.completion_tokens)
        if cost:
            series.cost.inc(cost)
        if call.cache_hit:
            series.cache_hits.inc()
        if outcome is not None and outcome.error_code in REFUSAL_CODES:
            self.refusals.labels(outcome.error_code).inc()
        for attempt in call.attempts:
            self._attempt(attempt)

    def _new_series(self, endpoint: str, deployment: str | None, status_class: int, error_type: str) -> _Series:
        provider, _, model = (deployment or "/").partition("/")
        operation = _OPERATIONS.get(endpoint, endpoint)
        return _Series(
            duration=_Histogram(self.duration.labels(operation, provider, model, error_type)),
            requests=_Counter(self.requests.labels(endpoint, f"{status_class}xx")),
            ttft=_Histogram(self.ttft.labels(operation, provider, model)),
            input_tokens=_Histogram(self.tokens.labels(operation, provider, model, "input")),
            output_tokens=_Histogram(self.tokens.labels(operation, provider, model, "output")),
            cost=_Counter(self.cost.labels(provider, model)),
            cache_hits=_Counter(self.cache_hits.labels(endpoint)))

    def _attempt(self, attempt: Attempt) -> None:
        spent = attempt.latency_ms if attempt.latency_ms is not None else attempt.ttfb_ms
        if spent is None:
            return
        outcome = "ok" if attempt.ok else (attempt.error_code if attempt.error_code == "circuit_open"
                                           else attempt.error_class or "error")
        key = (attempt.deployment, outcome)
        child = self._attempts.get(key)
        if child is None:
            provider, _, model = attempt.deployment.partition("/")
            child = self._attempts[key] = _Histogram(self.upstream.labels(provider, model, outcome))
        child.observe(spent / 1000)

    def breaker_state(self, deployment: str, state: int) -> None:
        """For a circuit-breaker plugin: report a deployment's state (0 closed, 1 half-open, 2 open)."""
        self.breaker.labels(deployment).set(state)

    def exposition(self) -> bytes:
        """The text format of every worker's samples (multiprocess) or this process's."""
        self.flush()
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)
        return generate_latest(registry)
