"""Connected bridges: a bridge asks another bridge of its org as a tool; cycles and nesting
deeper than ``max_bridge_depth`` are clear 400s; the callee's usage counts for both."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.agents.conftest import Upstream, agent_bridge
from tests.tenancy.conftest import Tenant

pytestmark = pytest.mark.slow
MODEL = "openai/gpt-4o-mini"


def bridge(tenant: Tenant, slug: str, **fields: Any) -> dict[str, Any]:
    body = {"slug": slug, "name": slug.title(), "model": MODEL, "prompt": f"You are {slug}.", **fields}
    return tenant.admin.ok("POST", "/api/v1/bridges", body, status=201)


def bridge_usage(tenant: Tenant, within: float = 15.0) -> dict[str | None, int]:
    """Prompt tokens per bridge in the usage ledger, once it has rows for both bridges."""
    deadline = time.monotonic() + within
    while True:
        summary = tenant.admin.ok("GET", "/api/v1/analytics/summary", group_by="bridge", bucket="minute")
        found = {g["group"]["bridge_id"]: g["stats"]["input_tokens"] for g in summary["groups"]}
        if len(found) >= 2 or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def test_a_bridge_asks_another_and_both_carry_the_usage(tenant: Tenant, fake_openai: Any) -> None:
    expert = bridge(tenant, "expert")
    front = bridge(tenant, "front", connected_bridges=["expert"])
    model = Upstream("openai", fake_openai, MODEL)
    model.queue(calls=[("bridge_expert", {"message": "What is 2+2?"})], prompt_tokens=10)  # front, round 1
    model.queue(text="4", prompt_tokens=100)                                              # expert
    model.queue(text="The expert says 4.", prompt_tokens=1000)                           # front, round 2
    reply = tenant.chat_key.request("POST", "/api/v1/bridges/front/chat", {"user": "2+2?"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["message"]["content"] == "The expert says 4."
    assert body["usage"]["prompt_tokens"] == 1110  # the expert's call counts in the caller's usage
    calls = [r.json() for r in fake_openai.requests if r.method == "POST"]
    assert [m["content"] for m in calls[1]["messages"]] == ["You are expert.", "What is 2+2?"]
    assert "bridge_expert" in [t["function"]["name"] for t in calls[0]["tools"]]
    assert any(m["role"] == "tool" and m["content"] == "4" for m in calls[2]["messages"])
    usage = bridge_usage(tenant)
    assert usage.get(expert["id"]) == 100 and usage.get(front["id"]) == 1110


def test_a_cycle_is_a_clear_error(tenant: Tenant, fake_openai: Any) -> None:
    bridge(tenant, "alpha")
    bridge(tenant, "beta", connected_bridges=["alpha"])
    tenant.admin.ok("PATCH", "/api/v1/bridges/alpha", {"connected_bridges": ["beta"]})
    reply = tenant.chat_key.request("POST", "/api/v1/bridges/alpha/chat", {"user": "hi"})
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["code"] == "bridge_cycle" and "alpha → beta → alpha" in error["message"]
    assert not fake_openai.requests  # refused before any model call


def test_nesting_deeper_than_the_limit_is_refused(tenant: Tenant, fake_openai: Any) -> None:
    bridge(tenant, "d4")
    bridge(tenant, "d3", connected_bridges=["d4"])
    bridge(tenant, "d2", connected_bridges=["d3"])
    bridge(tenant, "d1", connected_bridges=["d2"])
    bridge(tenant, "d0", connected_bridges=["d1"])
    reply = tenant.chat_key.request("POST", "/api/v1/bridges/d0/chat", {"user": "hi"})
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["code"] == "bridge_depth_exceeded" and "d0 → d1 → d2 → d3 → d4" in error["message"]
    model = Upstream("openai", fake_openai, MODEL)
    model.queue(text="fine")
    assert tenant.chat_key.request("POST", "/api/v1/bridges/d1/chat", {"user": "hi"}).status_code == 200


def test_an_unknown_connected_bridge_is_named(tenant: Tenant) -> None:
    refused = tenant.admin.request("POST", "/api/v1/bridges", {"slug": "lonely", "name": "L", "model": MODEL,
                                                               "connected_bridges": ["nobody"]})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "connected_bridges[0]"
    temp = bridge(tenant, "temp")
    agent_bridge(tenant, MODEL, [], slug="lonely", connected_bridges=["temp"])
    tenant.admin.ok("DELETE", f"/api/v1/bridges/{temp['id']}", status=204)  # deleted after: the call says so
    reply = tenant.chat_key.request("POST", "/api/v1/bridges/lonely/chat", {"user": "hi"})
    assert reply.status_code == 400 and "'temp' does not exist" in reply.json()["error"]["message"]
