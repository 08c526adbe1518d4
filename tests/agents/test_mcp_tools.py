"""MCP servers as tools: a real MCP server (the official SDK, streamable HTTP) on loopback; its
tools join the loop, its errors reach the model, its token is a secret reference."""

from __future__ import annotations

from typing import Any

import pytest

from tests.agents.conftest import Upstream
from tests.agents.mcp_server import TOKEN, McpTestServer
from tests.tenancy.conftest import Tenant

pytestmark = pytest.mark.slow
MODEL = "openai/gpt-4o-mini"


def mcp_bridge(tenant: Tenant, server: McpTestServer, slug: str = "support", **fields: Any) -> dict[str, Any]:
    body = {"slug": slug, "name": "Support", "model": MODEL, "prompt": "Help.",
            "mcp_servers": [{"url": server.url, "headers": {"authorization": {"env": "JUNCTION_SECRET_MCP"}}}],
            **fields}
    return tenant.admin.ok("POST", "/api/v1/bridges", body, status=201)


def test_mcp_tools_join_the_loop(tenant: Tenant, mcp_server: McpTestServer, fake_openai: Any) -> None:
    bridge = mcp_bridge(tenant, mcp_server)
    assert bridge["mcp_servers"][0]["headers"] == {"authorization": {"env": "JUNCTION_SECRET_MCP"}}
    model = Upstream("openai", fake_openai, MODEL)
    model.queue(calls=[("order_status", {"order_id": "A-17"}), ("explode", {})])
    model.queue(text="Your order A-17 shipped on Monday.")
    reply = tenant.chat_key.request("POST", "/api/v1/bridges/support/chat", {"user": "Where is A-17?"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["message"]["content"] == "Your order A-17 shipped on Monday."
    first, second = [r.json() for r in fake_openai.requests if r.method == "POST"]
    offered = {t["function"]["name"]: t["function"] for t in first["tools"]}
    assert offered["order_status"]["parameters"]["required"] == ["order_id"]
    assert offered["order_status"]["description"] == "The shipping status of an order"
    results = [m["content"] for m in second["messages"] if m["role"] == "tool"]
    assert results[0] == "order A-17 shipped on Monday"
    assert "the warehouse is on fire" in results[1]
    assert ("order_status", {"order_id": "A-17"}) in mcp_server.calls
    assert set(mcp_server.authorizations) == {f"Bearer {TOKEN}"}

    # The tool list is cached per server: a second call lists nothing again.
    listed = len(mcp_server.authorizations)
    model.queue(text="Hello.")
    assert tenant.chat_key.request("POST", "/api/v1/bridges/support/chat", {"user": "hi"}).status_code == 200
    assert len(mcp_server.authorizations) == listed


def test_mcp_headers_must_be_secret_references(tenant: Tenant, mcp_server: McpTestServer) -> None:
    body = {"slug": "leaky", "name": "L", "model": MODEL,
            "mcp_servers": [{"url": mcp_server.url, "headers": {"authorization": "Bearer plain"}}]}
    assert tenant.admin.request("POST", "/api/v1/bridges", body).status_code == 400
    body["mcp_servers"][0]["headers"] = {"authorization": {"env": "JUNCTION_MASTER_KEY"}}
    refused = tenant.admin.request("POST", "/api/v1/bridges", body)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "mcp_servers[0].headers.authorization"


def test_an_unreachable_mcp_server_is_a_clear_error(tenant: Tenant, fake_openai: Any) -> None:
    body = {"slug": "gone", "name": "G", "model": MODEL, "mcp_servers": [{"url": "http://127.0.0.1:9/mcp"}]}
    tenant.admin.ok("POST", "/api/v1/bridges", body, status=201)
    reply = tenant.chat_key.request("POST", "/api/v1/bridges/gone/chat", {"user": "hi"})
    assert reply.status_code == 502, reply.text
    assert reply.json()["error"]["code"] == "mcp_unavailable" and not fake_openai.requests
