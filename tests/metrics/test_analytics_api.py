"""``/api/v1/analytics/usage`` and ``/summary`` over real HTTP: the seeded data set's totals,
series and groups, org scoping (the master key sees all or one org, an admin key its own org
only, another org's id is a 404, a chat key is a 403) and 400s naming the bad parameter."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from junction.settings import settings_from_mapping
from junction.stores.metrics.writer import UsageWriter
from junction.testing.server import JunctionProcess
from tests.metrics.seed import seeded

pytestmark = pytest.mark.slow
RANGE = {"start": "2026-01-05T00:00:00Z", "end": "2026-01-07T00:00:00Z"}


async def _seed(url: str, org_a: str, org_b: str) -> None:
    engine = create_async_engine(url)
    try:
        await UsageWriter(engine, settings_from_mapping({}).metrics).write(seeded(org_a, org_b))
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> Iterator[dict[str, object]]:
    directory = tmp_path_factory.mktemp("analytics")
    with JunctionProcess(directory, "") as server:
        master = httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {server.key}"}, timeout=20)
        org_a = master.post("/api/v1/admin/orgs", json={"name": "A"}).json()["id"]
        org_b = master.post("/api/v1/admin/orgs", json={"name": "B"}).json()["id"]
        keys = {scope: master.post("/api/v1/admin/keys", json={"org_id": org_a, "name": scope, "scopes": [scope]})
                .json()["key"] for scope in ("admin", "chat")}
        asyncio.run(_seed(f"sqlite+aiosqlite:///{directory / 'junction-metrics.db'}", org_a, org_b))

        def client(key: str) -> httpx.Client:
            return httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {key}"}, timeout=20)

        yield {"master": master, "admin": client(keys["admin"]), "chat": client(keys["chat"]),
               "anonymous": httpx.Client(base_url=server.url, timeout=20), "org_a": org_a, "org_b": org_b}


def test_master_sees_every_org_or_the_one_it_names(api):
    report = api["master"].get("/api/v1/analytics/usage", params={**RANGE, "group_by": "model"}).json()
    totals = report["totals"]
    assert (totals["requests"], totals["errors"], totals["input_tokens"], totals["output_tokens"]) == (6, 2, 1310, 170)
    assert totals["cost_usd"] == pytest.approx(0.002375) and totals["unpriced_requests"] == 3
    assert report["bucket"] == "hour" and report["group_by"] == ["model"]
    assert [(p["bucket"], p["group"]["model"], p["stats"]["requests"]) for p in report["series"]] == [
        ("2026-01-05T10:00:00Z", "claude-x", 1), ("2026-01-05T10:00:00Z", "gpt-4o", 3),
        ("2026-01-05T11:00:00Z", "claude-x", 1), ("2026-01-06T09:00:00Z", None, 1)]
    one = api["master"].get("/api/v1/analytics/usage", params={**RANGE, "org_id": api["org_b"]}).json()
    assert one["totals"]["requests"] == 2 and one["totals"]["cost_usd"] == pytest.approx(0.000125)


def test_an_admin_key_sees_its_own_org_only(api):
    report = api["admin"].get("/api/v1/analytics/usage", params={**RANGE, "bucket": "day"}).json()
    assert report["totals"]["requests"] == 4
    assert [(p["bucket"], p["stats"]["requests"]) for p in report["series"]] == [("2026-01-05T00:00:00Z", 4)]
    other = api["admin"].get("/api/v1/analytics/usage", params={**RANGE, "org_id": api["org_b"]})
    assert other.status_code == 404
    summary = api["admin"].get("/api/v1/analytics/summary", params={**RANGE, "group_by": "key,provider"}).json()
    assert [(g["group"]["provider"], g["stats"]["requests"], round(g["stats"]["cost_usd"], 6))
            for g in summary["groups"]] == [("openai", 2, 0.00225), ("anthropic", 2, 0.0)]
    assert summary["totals"]["error_rate"] == pytest.approx(0.25)


def test_callers_without_admin_are_refused(api):
    refused = api["chat"].get("/api/v1/analytics/usage")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_scope"
    assert api["anonymous"].get("/api/v1/analytics/summary").status_code == 401


def test_group_by_given_twice_groups_by_both(api):
    # It was read as a plain mapping: the last group_by won and the first was dropped silently.
    twice = api["master"].get("/api/v1/analytics/usage", params=[*RANGE.items(), ("group_by", "model"),
                                                                 ("group_by", "org")]).json()
    joined = api["master"].get("/api/v1/analytics/usage", params={**RANGE, "group_by": "model,org"}).json()
    assert twice["group_by"] == joined["group_by"] == ["model", "org_id"]
    assert twice["series"] == joined["series"] and twice["series"]


def test_another_parameter_given_twice_is_a_400(api):
    answer = api["master"].get("/api/v1/analytics/usage", params=[("start", "2026-01-05T00:00:00Z"),
                                                                  ("start", "2026-01-06T00:00:00Z")])
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "start" and "more than once" in answer.json()["error"]["message"]


@pytest.mark.parametrize("params, field", [
    ({"bucket": "week"}, "bucket"),
    ({"group_by": "model,user"}, "group_by"),
    ({"start": "yesterday"}, "start"),
    ({"start": "2026-01-07T00:00:00Z", "end": "2026-01-05T00:00:00Z"}, "start"),
    ({"bucket": "minute", "start": "2025-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "start"),
    ({"provider": ""}, "provider"),
    ({"colour": "red"}, "colour"),
])
def test_bad_parameters_are_400s_naming_the_field(api, params, field):
    answer = api["master"].get("/api/v1/analytics/usage", params=params)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["param"] == field and error["message"].startswith(f"{field}:")
