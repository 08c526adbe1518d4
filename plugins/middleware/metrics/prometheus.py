"""Prometheus metrics of the gateway, named after the OpenTelemetry GenAI semantic conventions
where they define one (dots become underscores, units a suffix, as OpenTelemetry's own Prometheus
exporter does): ``gen_ai_server_request_duration_seconds``,
``gen_ai_server_time_to_first_token_seconds``, ``gen_ai_client_token_usage`` with the attributes
``gen_ai_operation_name``, ``gen_ai_provider_name``, ``gen_ai_request_model``,
``gen_ai_token_type`` and ``error_type``; the rest are ``junction_*``.

Labels stay bounded: provider, model (of a deployment that was tried), operation, endpoint, status
class, refusal reason. A deployment's model can be the client's own text (a model a provider
passes through unpriced), so past :data:`UNKNOWN_MODELS` of those a worker labels the rest
``other``; a priced model always keeps its name. Never a key, org or user id: those questions are
answered by the usage ledger in SQL.

Across Granian workers: ``junction serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh
directory before any worker starts, so each worker's samples go to files there and ``/metrics``
(answered by any worker) sums them (prometheus_client's multiprocess mode). Without it (an app
built in-process, e.g. by tests), the process's own registry is served.

The metrics stage hands finished calls over in batches (:meth:`GatewayMetrics.add`, at each of
its drains); they are added to plain in-process sums, histograms counted per bucket once per
batch. Every ``flush_seconds`` (and before this worker answers ``/metrics``, and at shutdown) the
sums are written to prometheus_client's values in one go: in multiprocess mode each value write
is a locked write to a memory-mapped file, ten of them per call would cost more than the rest of
the plugin. So another worker's calls reach ``/metrics`` within ``flush_seconds`` (plus the
stage's drain interval).
"""

from __future__ import annotations

import asyncio
import logging
import os
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector

from junction.middleware.metrics.events import Finished
from junction.tasks import stop

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
                    163.84, 327.68)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
_OPERATIONS = {"chat.completions": "chat", "messages": "chat", "bridges.chat": "chat", "embeddings": "embeddings"}
#: Refusals by admission stages, by their ``error.code`` (the traffic-control contract).
REFUSAL_CODES = frozenset({"rate_limit_exceeded", "budget_exceeded"})
_GENAI = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model")
#: Models without a price a worker labels by name; the next ones are labelled ``other`` (random
#: model names from one caller made 88 series each, without bound).
UNKNOWN_MODELS = 100
OTHER_MODEL = "other"

log = logging.getLogger("junction.metrics")


class _Histogram:
    """A labelled histogram child's observations since the last flush: a drain appends its
    values (:meth:`add`), then :meth:`fold` counts them per bucket at once (sorted, one bisect per
    bound rather than one per value)."""

    __slots__ = ("add", "bounds", "child", "counts", "total", "values")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.bounds = child._upper_bounds[:-1]  # the last is +Inf: whatever lies past the others
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0
        self.values: list[float] = []
        self.add = self.values.append

    def fold(self) -> None:
        values = self.values
        if not values:
            return
        values.sort()
        counts = self.counts
        below = 0
        for index, bound in enumerate(self.bounds):
            upto = bisect_right(values, bound)  # Prometheus buckets: value <= bound
            counts[index] += upto - below
            below = upto
        counts[-1] += len(values) - below
        self.total += sum(values)
        values.clear()

    def flush(self) -> None:
        self.fold()
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

    def fold(self) -> None:
        # Every call adds one duration: the requests are counted here, per batch.
        self.requests.total += len(self.duration.values)
        for part in (self.duration, self.ttft, self.input_tokens, self.output_tokens):
            part.fold()

    def flush(self) -> None:
        self.fold()
        for part in (self.duration, self.requests, self.ttft, self.input_tokens, self.output_tokens,
                     self.cost, self.cache_hits):
            part.flush()


class GatewayMetrics:
    """The gateway's metrics, in a registry of their own (no process-global state)."""

    def __init__(self, flush_seconds: float = 1.0, priced: Callable[[str], bool] | None = None) -> None:
        """``priced(deployment)``: whether a ``provider/model`` has a price (keeps its own label)."""
        self.flush_seconds = flush_seconds
        self._priced = priced or (lambda deployment: False)
        #: Deployment → the one its samples carry (itself, or ``provider/other``); bounded.
        self._labels: dict[str, str] = {}
        self._unknown = 0
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
            await stop(self._flusher)
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

    def add(self, calls: Iterable[tuple[Finished, float | None]]) -> None:
        """Add finished calls (with their cost, when known) to the samples; the histograms count
        them per bucket here, once per drain."""
        series_of = self._series
        attempts_of = self._attempts
        for call, cost in calls:
            (_, latency, outcome, deployment, attempts, _, _, _, _, _, _, endpoint, _, _, first_byte_ms,
             cache_hit, stream) = call
            if outcome is None:
                status, error_type, usage, code = 500, "server_error", None, None
            else:
                status, usage, code = outcome.status, outcome.usage, outcome.error_code
                error_type = "" if status < 400 else outcome.error_class or ""
            if deployment is not None:
                deployment = self._labels.get(deployment) or self._label(deployment)
            key = (endpoint, deployment, status // 100, error_type)
            series = series_of.get(key)
            if series is None:
                series = series_of[key] = self._new_series(*key)
            series.duration.add(latency / 1000)  # and a request: _Series.fold counts them
            if stream and first_byte_ms is not None:
                series.ttft.add(first_byte_ms / 1000)
            if usage is not None:
                series.input_tokens.add(usage.prompt_tokens)
                series.output_tokens.add(usage.completion_tokens)
            if cost:
                series.cost.total += cost
            if cache_hit:
                series.cache_hits.total += 1
            if code in REFUSAL_CODES:
                self.refusals.labels(code).inc()
            for attempt in attempts:
                spent = attempt.latency_ms if attempt.latency_ms is not None else attempt.ttfb_ms
                if spent is None:
                    continue
                outcome_label = "ok" if attempt.status == 200 else (
                    attempt.error_code if attempt.error_code == "circuit_open" else attempt.error_class or "error")
                tried = self._labels.get(attempt.deployment) or self._label(attempt.deployment)
                child = attempts_of.get((tried, outcome_label))
                if child is None:
                    provider, _, model = tried.partition("/")
                    child = attempts_of[(tried, outcome_label)] = _Histogram(
                        self.upstream.labels(provider, model, outcome_label))
                child.add(spent / 1000)
        for series in series_of.values():
            series.fold()
        for child in attempts_of.values():
            child.fold()

    def _label(self, deployment: str) -> str:
        """The deployment its samples carry: itself when priced or among the first
        :data:`UNKNOWN_MODELS` unpriced ones, else ``provider/other``."""
        priced = self._priced(deployment)
        if priced or self._unknown < UNKNOWN_MODELS:
            if not priced:
                self._unknown += 1
            self._labels[deployment] = deployment
            return deployment
        return f"{deployment.partition('/')[0]}/{OTHER_MODEL}"  # not kept: the map stays bounded

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
