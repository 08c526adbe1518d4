"""What becomes of finished calls: usage-ledger rows queued on the writer and Prometheus samples,
a batch at a time. Run by the metrics stage in the worker that served the calls, or by the
usage relay (relay.py) for every worker of a node."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from junction.middleware.metrics.events import Finished, UsageEvents
from junction.middleware.metrics.prometheus import GatewayMetrics
from junction.pricing import PriceBook


class CallRecorder:
    """``ledger``: the usage ledger (``MetricsStore``), or ``None``; ``prometheus``: the samples,
    or ``None``. What the two share (status, deployment, price) is worked out once per call."""

    def __init__(self, ledger: Any | None, prometheus: GatewayMetrics | None, pricing: PriceBook | None) -> None:
        self.ledger = ledger
        self.prometheus = prometheus
        self._pricing = pricing
        self._events = UsageEvents(pricing)

    def add(self, calls: list[Finished]) -> None:
        """Rows for the ledger's buffer (the database is never awaited) and samples, now."""
        ledger, prometheus, events = self.ledger, self.prometheus, self._events
        if ledger is not None:
            build = events.build
            rows = [build(call) for call in calls]
            costs: list[float | None] = [row.cost_usd for row in rows]
            dropped = len(rows) - ledger.record_many(rows)
            if dropped and prometheus is not None:
                prometheus.dropped.inc(dropped)
        elif prometheus is not None and self._pricing is not None:
            costs = [events.cost(call) for call in calls]
        else:
            costs = [None] * len(calls)
        if prometheus is not None:
            prometheus.add(zip(calls, costs))


def priced(pricing: PriceBook | None) -> Callable[[str], bool]:
    """``priced(deployment)``: whether a ``provider/model`` has a price (keeps its own label)."""

    def check(deployment: str) -> bool:
        provider, _, model = deployment.partition("/")
        return pricing is not None and pricing.price(provider, model) is not None

    return check
