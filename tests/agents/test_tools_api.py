"""``/api/v1/tools``: CRUD through a real server, header secrets never returned, org-scoped."""

from __future__ import annotations

import pytest

from tests.agents.conftest import MASTER, TOOL_SECRET, register_tool
from tests.agents.tool_server import ToolServer
from tests.tenancy.conftest import Api, Tenant, new_tenant

pytestmark = pytest.mark.slow


def test_tool_crud_never_returns_secrets(tenant: Tenant, tool_server: ToolServer) -> None:
    tool = register_tool(tenant, tool_server, "lookup")
    assert tool["headers"] == {"authorization": {"stored": True}, "x-env-secret": {"env": "JUNCTION_SECRET_TOOLS"}}
    assert tool["org_id"] == tenant.org_id and tool["method"] == "POST" and tool["timeout_seconds"] == 10.0
    for response in (tenant.admin.request("GET", f"/api/v1/tools/{tool['id']}"),
                     tenant.admin.request("GET", "/api/v1/tools")):
        assert response.status_code == 200 and TOOL_SECRET not in response.text and "tool-secret" not in response.text
    patched = tenant.admin.ok("PATCH", f"/api/v1/tools/{tool['id']}", {"timeout_seconds": 3, "method": "GET"})
    assert patched["timeout_seconds"] == 3 and patched["headers"]["authorization"] == {"stored": True}
    assert tenant.admin.request("POST", "/api/v1/tools", {"name": "lookup", "url": tool["url"]}).status_code == 409
    tenant.admin.ok("DELETE", f"/api/v1/tools/{tool['id']}", status=204)
    assert tenant.admin.request("GET", f"/api/v1/tools/{tool['id']}").status_code == 404


def test_tools_are_confined_to_their_org(tenant: Tenant, tool_server: ToolServer, agents_http) -> None:
    tool = register_tool(tenant, tool_server, "private")
    other = new_tenant(Api(agents_http, MASTER), "Other")
    for method in ("GET", "DELETE"):
        assert other.admin.request(method, f"/api/v1/tools/{tool['id']}").status_code == 404
    assert other.admin.request("PATCH", f"/api/v1/tools/{tool['id']}", {"timeout_seconds": 1}).status_code == 404
    assert other.admin.ok("GET", "/api/v1/tools") == []
    assert tenant.chat_key.request("GET", "/api/v1/tools").status_code == 403  # admin scope needed
    # Another org's tool id on a bridge: no such tool, when saved or (added later) when called.
    body = {"slug": "thief", "name": "T", "model": "openai/gpt-4o-mini", "server_tools": [tool["id"]]}
    refused = other.admin.request("POST", "/api/v1/bridges", body)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "server_tools[0]"
    own = register_tool(other, tool_server, "own")
    other.admin.ok("POST", "/api/v1/bridges", {**body, "server_tools": [own["id"]]}, status=201)
    other.admin.ok("DELETE", f"/api/v1/tools/{own['id']}", status=204)
    refused = other.chat_key.request("POST", "/api/v1/bridges/thief/chat", {"user": "hi"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "tool_not_found"


@pytest.mark.parametrize(("body", "param"), [
    ({"name": "bad name", "url": "https://example.com/"}, "name"),
    ({"name": "x", "url": "file:///etc/passwd"}, "url"),
    ({"name": "x", "url": "https://example.com/", "headers": {"a": {"env": "JUNCTION_MASTER_KEY"}}}, "headers.a"),
    ({"name": "x", "url": "https://example.com/", "bound": ["nope"]}, "bound"),
    ({"name": "x", "url": "https://example.com/", "timeout_seconds": 0}, "timeout_seconds"),
])
def test_bad_tools_are_400s_naming_the_field(tenant: Tenant, body: dict, param: str) -> None:
    response = tenant.admin.request("POST", "/api/v1/tools", body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
