"""``GET /api/v1/analytics/usage`` (totals and a time series) and ``/api/v1/analytics/summary``
(totals and one entry per group), read from the usage ledger's rollups.

Query parameters: ``start`` / ``end`` (ISO 8601, or Unix seconds; default: the last 24 hours;
aligned outwards to whole buckets), ``bucket`` (``minute`` | ``hour`` | ``day``, default
``hour``), ``group_by`` (comma-separated ``org``, ``key``, ``bridge``, ``provider``, ``model``),
and filters ``org_id``, ``key_id``, ``bridge_id``, ``provider``, ``model``. Admins only: the master
key sees every org (or the one ``org_id`` names), an ``admin``-scoped key its own org (another
org's id is a 404). A bad parameter is a 400 naming it.
"""

from __future__ import annotations

import math
from collections.abc import Container, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from litestar import Request, get
from litestar.handlers import HTTPRouteHandler

from junction.domain.access import could_be_id, org_for
from junction.domain.http import caller
from junction.errors import InvalidRequest
from junction.pipeline import Gateway
from junction.stores.metrics.queries import BUCKET_SECONDS, UsageGroup, UsagePoint, UsageQuery, UsageStats
from junction.stores.metrics.store import MetricsStore

GROUPS = {"org": "org_id", "key": "key_id", "bridge": "bridge_id", "provider": "provider", "model": "model"}
FILTERS = ("org_id", "key_id", "bridge_id", "provider", "model")
#: The most buckets one series may span (e.g. a week of minutes), so one request stays cheap.
MAX_BUCKETS = 20_000
DEFAULT_RANGE = timedelta(days=1)


class UsageReport(msgspec.Struct):
    start: datetime
    end: datetime
    bucket: str
    group_by: list[str]
    totals: UsageStats
    series: list[UsagePoint]


class UsageSummary(msgspec.Struct):
    start: datetime
    end: datetime
    group_by: list[str]
    totals: UsageStats
    groups: list[UsageGroup]


def _bad(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"{param}: {message}", param=param, code="invalid_value")


def query_parameters(request: Request[Any, Any, Any], skip: Container[str] = ()) -> dict[str, str]:
    """The query's parameters, one value each: ``group_by`` given more than once is the list of all
    of them (as ``group_by=a,b``); any other given twice is a 400, not one of them chosen silently."""
    params: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if key in skip:
            continue
        if key in params:
            if key != "group_by":
                raise _bad(key, "given more than once")
            value = f"{params[key]},{value}"
        params[key] = value
    return params


def _time(params: Mapping[str, str], name: str) -> datetime | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = datetime.fromtimestamp(float(raw), UTC) if raw.replace(".", "", 1).isdigit() \
            else datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise _bad(name, f"{raw!r} is not an ISO 8601 time or Unix seconds") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_query(params: Mapping[str, str], orgs: tuple[str, ...] | None, *, now: datetime | None = None,
                default_bucket: str = "hour") -> UsageQuery:
    unknown = sorted(set(params) - {"start", "end", "bucket", "group_by", *FILTERS})
    if unknown:
        raise _bad(unknown[0], "unknown parameter")
    bucket = params.get("bucket") or default_bucket
    if bucket not in BUCKET_SECONDS:
        raise _bad("bucket", f"{bucket!r} is not one of minute, hour, day")
    group_by: list[str] = []
    for name in filter(None, (part.strip() for part in (params.get("group_by") or "").split(","))):
        if name not in GROUPS:
            raise _bad("group_by", f"{name!r} is not one of {', '.join(GROUPS)}")
        if GROUPS[name] not in group_by:
            group_by.append(GROUPS[name])
    filters: dict[str, str] = {}
    for name in FILTERS:
        value = params.get(name)
        if value is not None and name != "org_id":
            if not value or not could_be_id(value):
                raise _bad(name, "not a valid value")
            filters[name] = value
    end = _time(params, "end") or (now or datetime.now(UTC))
    start = _time(params, "start") or end - DEFAULT_RANGE
    if start >= end:
        raise _bad("start", "must be before end")
    width = BUCKET_SECONDS[bucket]
    aligned_start = math.floor(start.timestamp() / width) * width
    aligned_end = math.ceil(end.timestamp() / width) * width
    if (aligned_end - aligned_start) / width > MAX_BUCKETS:
        raise _bad("start", f"the range spans more than {MAX_BUCKETS} {bucket}s; narrow it or use a wider bucket")
    return UsageQuery(start=datetime.fromtimestamp(aligned_start, UTC), end=datetime.fromtimestamp(aligned_end, UTC),
                      bucket=bucket, group_by=tuple(group_by), filters=filters, orgs=orgs)  # type: ignore[arg-type]


def usage_routes(gateway: Gateway, metrics: MetricsStore) -> list[HTTPRouteHandler]:
    async def scoped(request: Request[Any, Any, Any], default_bucket: str) -> UsageQuery:
        principal = await caller(gateway, request, "admin")
        params = query_parameters(request)
        org = org_for(principal, params.get("org_id") or None, what="org")
        return parse_query(params, None if org is None else (org,), default_bucket=default_bucket)

    @get("/api/v1/analytics/usage", summary="Usage totals and time series: requests, tokens, cost, latency")
    async def usage(request: Request[Any, Any, Any]) -> UsageReport:
        query = await scoped(request, "hour")
        totals, series = await (await metrics.ready_queries()).series(query)
        return UsageReport(start=query.start, end=query.end, bucket=query.bucket,
                           group_by=list(query.group_by), totals=totals, series=series)

    @get("/api/v1/analytics/summary", summary="Usage totals and one entry per group, costliest first")
    async def summary(request: Request[Any, Any, Any]) -> UsageSummary:
        query = await scoped(request, "hour")
        totals, groups = await (await metrics.ready_queries()).groups(query)
        return UsageSummary(start=query.start, end=query.end, group_by=list(query.group_by),
                            totals=totals, groups=groups)

    return [usage, summary]
