"""Console pages that read: the overview (today against yesterday, top spenders), the usage
explorer (chart and CSV of exactly what ``GET /api/v1/analytics/usage`` answers for the same
parameters), plugins with the resolved stage order, and jobs and batches.

Every figure comes from the usage ledger's rollups (``app/stores/metrics/queries.py``), never from
the raw events, so the pages stay fast however large the ledger grows.
"""

from __future__ import annotations

import asyncio
import csv
import io
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler

from junction.domain.access import org_for
from junction.domain.jobs.records import JOB_STATUSES, JobFilter
from junction.domain.jobs.service import reader_org
from junction.domain.usage.controllers import GROUPS, parse_query, query_parameters
from junction.errors import InvalidRequest
from junction.middleware.admin_ui.web import Session, Ui
from junction.stores.metrics.queries import UsagePoint, UsageQuery, UsageStats

#: What the explorer can chart, by name: how to read it from a bucket's stats.
METRICS = {
    "requests": lambda stats: stats.requests,
    "errors": lambda stats: stats.errors,
    "cost_usd": lambda stats: stats.cost_usd,
    "input_tokens": lambda stats: stats.input_tokens,
    "output_tokens": lambda stats: stats.output_tokens,
    "latency_p95_ms": lambda stats: stats.latency_ms.p95,
}
#: Explorer parameters of the page itself (the rest are the analytics API's).
PAGE_PARAMS = ("chart", "metric")
TOP = 5
JOBS_PER_PAGE = 50


def series_label(group: dict[str, str | None]) -> str:
    return ", ".join(f"{name}={value}" for name, value in group.items()) or "all"


class ChartSeries(msgspec.Struct):
    label: str
    data: list[float]


class ChartData(msgspec.Struct):
    """What ``usage.js`` draws (embedded in the page as JSON)."""

    kind: str
    metric: str
    #: Bucket starts, ISO 8601.
    labels: list[str]
    datasets: list[ChartSeries]


def chart_data(points: list[UsagePoint], metric: str, kind: str) -> ChartData:
    """One dataset per group, as the chart draws them: a bucket a group had no calls in is 0."""
    read = METRICS[metric]
    labels = sorted({point.bucket for point in points})
    index = {bucket: position for position, bucket in enumerate(labels)}
    datasets: dict[str, list[float]] = {}
    for point in points:
        data = datasets.setdefault(series_label(point.group), [0] * len(labels))
        data[index[point.bucket]] = read(point.stats) or 0
    return ChartData(kind=kind, metric=metric, labels=[bucket.isoformat() for bucket in labels],
                     datasets=[ChartSeries(label, data) for label, data in datasets.items()])


def change(today: float, yesterday: float) -> str:
    if not yesterday:
        return "—" if not today else "new"
    return f"{(today - yesterday) / yesterday:+.0%}"


def insight_routes(ui: Ui) -> list[HTTPRouteHandler]:
    metrics = ui.runtime.metrics

    def scope_of(session: Session, params: dict[str, str]) -> tuple[str, ...] | None:
        org = org_for(session.principal, params.get("org_id") or None, what="org")
        return None if org is None else (org,)

    @get("/", summary="Console: overview", include_in_schema=False)
    async def overview(request: Request[Any, Any, Any]) -> Response[str]:
        session = await ui.session(request)
        orgs = scope_of(session, {})
        now = datetime.now(UTC)
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        until = datetime.fromtimestamp(math.ceil(now.timestamp() / 3600) * 3600, UTC)
        queries = await metrics.ready_queries()

        async def top(start: datetime, end: datetime, group: str) -> tuple[UsageStats, list[Any]]:
            query = UsageQuery(start=start, end=end, bucket="hour", group_by=(group,) if group else (), orgs=orgs)
            totals, groups = await queries.groups(query)
            return totals, groups[:TOP]

        # Four small reads of the hourly rollup, side by side.
        (today, models), (_, keys), (_, bridges), (yesterday, _) = await asyncio.gather(
            top(midnight, until, "model"), top(midnight, until, "key_id"), top(midnight, until, "bridge_id"),
            top(midnight - timedelta(days=1), until - timedelta(days=1), ""))
        rows = [
            ("Requests", f"{today.requests:,}", f"{yesterday.requests:,}", change(today.requests, yesterday.requests)),
            ("Cost (USD)", f"{today.cost_usd:.4f}", f"{yesterday.cost_usd:.4f}",
             change(today.cost_usd, yesterday.cost_usd)),
            ("Errors", f"{today.errors:,}", f"{yesterday.errors:,}", change(today.errors, yesterday.errors)),
            ("Latency p95 (ms)", _ms(today.latency_ms.p95), _ms(yesterday.latency_ms.p95),
             change(today.latency_ms.p95 or 0, yesterday.latency_ms.p95 or 0)),
        ]
        return ui.page("overview.html", request, session, rows=rows, models=models, keys=keys, bridges=bridges,
                       since=midnight)

    async def explore(session: Session, request: Request[Any, Any, Any]) -> tuple[UsageQuery, list[UsagePoint], Any]:
        params = {key: value for key, value in query_parameters(request, PAGE_PARAMS).items() if value != ""}
        query = parse_query(params, scope_of(session, params))
        totals, series = await (await metrics.ready_queries()).series(query)
        return query, series, totals

    @get("/usage", summary="Console: usage explorer", include_in_schema=False)
    async def usage(request: Request[Any, Any, Any]) -> Response[str]:
        session = await ui.session(request)
        metric = request.query_params.get("metric") or "requests"
        chart = request.query_params.get("chart") or "line"
        if metric not in METRICS:
            raise InvalidRequest(f"metric: one of {', '.join(METRICS)}", param="metric", code="invalid_value")
        if chart not in ("line", "bar"):
            raise InvalidRequest("chart: line or bar", param="chart", code="invalid_value")
        query, series, totals = await explore(session, request)
        return ui.page("usage.html", request, session, query=query, totals=totals, metric=metric, chart=chart,
                       metrics=list(METRICS), groups=GROUPS, params=request.query_params,
                       data=msgspec.to_builtins(chart_data(series, metric, chart)),
                       csv_query=request.url.query or "")

    @get("/usage.csv", summary="Console: usage as CSV", include_in_schema=False)
    async def usage_csv(request: Request[Any, Any, Any]) -> Response[str]:
        session = await ui.session(request)
        query, series, _ = await explore(session, request)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["bucket", *query.group_by, "requests", "errors", "input_tokens", "output_tokens",
                         "cost_usd", "latency_p50_ms", "latency_p95_ms"])
        for point in series:
            stats = point.stats
            writer.writerow([point.bucket.isoformat(), *(point.group.get(name) or "" for name in query.group_by),
                             stats.requests, stats.errors, stats.input_tokens, stats.output_tokens,
                             f"{stats.cost_usd:.6f}", stats.latency_ms.p50 or "", stats.latency_ms.p95 or ""])
        return Response(out.getvalue(), media_type="text/csv",
                        headers={"content-disposition": 'attachment; filename="junction-usage.csv"'})

    @get("/plugins", summary="Console: plugins and the stage order", include_in_schema=False)
    async def plugins(request: Request[Any, Any, Any]) -> Response[str]:
        session = await ui.session(request)
        loaded = ui.gateway.plugins
        return ui.page("plugins.html", request, session, infos=loaded.infos, order=loaded.stage_order)

    @get("/jobs", summary="Console: jobs", include_in_schema=False)
    async def jobs(request: Request[Any, Any, Any]) -> Response[str]:
        session = await ui.session(request)
        status = request.query_params.get("status") or None
        if status is not None and status not in JOB_STATUSES:
            raise InvalidRequest(f"status: one of {', '.join(JOB_STATUSES)}", param="status", code="invalid_value")
        found = await ui.runtime.jobs.service.list(session.principal, JobFilter(
            status=status, batch_id=request.query_params.get("batch_id") or None,
            before=request.query_params.get("before") or None, limit=JOBS_PER_PAGE))
        return ui.page("jobs.html", request, session, jobs=found, status=status, statuses=JOB_STATUSES,
                       batch_id=request.query_params.get("batch_id") or "",
                       more=found[-1].id if len(found) == JOBS_PER_PAGE else None)

    @get("/batches/{batch_id:str}", summary="Console: one batch", include_in_schema=False)
    async def batch(request: Request[Any, Any, Any], batch_id: str) -> Response[str]:
        session = await ui.session(request)
        service = ui.runtime.jobs.batches
        # Either kind (``/api/v1/batches`` or OpenAI's ``/v1/batches``), read as that API reads it.
        found = await service.store.get_batch(reader_org(session.principal), batch_id)
        return ui.page("batch.html", request, session, batch=found, counts=await service.counts(found))

    return [overview, usage, usage_csv, plugins, jobs, batch]


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"
