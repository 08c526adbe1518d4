"""Orgs, API keys and per-org provider credentials through the admin API of a real server
(PostgreSQL documents, Redis change bus)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from junction.testing.server import JunctionProcess
from tests.fakes.openai_upstream import FakeOpenAI
from tests.tenancy.conftest import Api, new_tenant

pytestmark = pytest.mark.slow


def test_org_lifecycle_with_the_master_key(master: Api) -> None:
    org = master.ok("POST", "/api/v1/admin/orgs", {"name": "Acme"}, status=201)
    assert org["name"] == "Acme" and org["id"]
    assert org["id"] in [o["id"] for o in master.ok("GET", "/api/v1/admin/orgs")]
    renamed = master.ok("PATCH", f"/api/v1/admin/orgs/{org['id']}", {"name": "Acme Corp"})
    assert renamed["name"] == "Acme Corp"
    assert master.ok("GET", f"/api/v1/admin/orgs/{org['id']}")["name"] == "Acme Corp"
    master.ok("DELETE", f"/api/v1/admin/orgs/{org['id']}", status=204)
    assert master.request("GET", f"/api/v1/admin/orgs/{org['id']}").status_code == 404


def test_bad_admin_input_is_a_400_naming_the_field(master: Api) -> None:
    for body, field in (({}, "name"), ({"name": 5}, "name"), ({"name": "x", "colour": "red"}, "colour")):
        response = master.request("POST", "/api/v1/admin/orgs", body)
        assert response.status_code == 400, response.text
        assert field in response.json()["error"]["message"]
    org = master.ok("POST", "/api/v1/admin/orgs", {"name": "Input"}, status=201)
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    for body, param in (
        ({"org_id": org["id"], "name": "k", "expires_at": past}, "expires_at"),
        ({"org_id": org["id"], "name": "k", "scopes": "chat"}, "scopes"),
        ({"org_id": org["id"], "name": "k", "budget_period": "week"}, "budget_period"),
        ({"name": "k"}, "org_id"),
    ):
        response = master.request("POST", "/api/v1/admin/keys", body)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == param


def test_key_is_shown_once_and_works_for_chat(master: Api, fake_openai: FakeOpenAI) -> None:
    tenant = new_tenant(master, "Keys")
    listed = master.ok("GET", "/api/v1/admin/keys", org_id=tenant.org_id)
    assert {k["id"] for k in listed} == {tenant.admin_key_id, tenant.chat_key_id}
    for view in listed:
        assert "key" not in view and "secret_hash" not in view
    chat_view = next(k for k in listed if k["id"] == tenant.chat_key_id)
    assert tenant.chat_key.key.startswith(f"sk-jn-{chat_view['prefix']}-")
    assert tenant.chat_key.key not in str(master.ok("GET", f"/api/v1/admin/keys/{tenant.chat_key_id}"))
    reply = tenant.chat_key.chat("openai/gpt-4o-mini", "from a key")
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == "echo: from a key"
    # a chat-only key is no admin
    denied = tenant.chat_key.request("GET", "/api/v1/admin/keys")
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "insufficient_scope"


def test_key_model_allow_list_and_scopes(master: Api) -> None:
    tenant = new_tenant(master, "Limited")
    issued = tenant.admin.ok(
        "POST", "/api/v1/admin/keys", {"name": "mini only", "models": ["openai/gpt-4o-mini"]}, status=201
    )
    limited = master.as_key(issued["key"])
    assert limited.chat("openai/gpt-4o-mini").status_code == 200
    refused = limited.chat("openai/gpt-4o")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "model_not_allowed"


def test_revoked_key_stops_working_at_once(master: Api) -> None:
    tenant = new_tenant(master, "Revoke")
    assert tenant.chat_key.chat("openai/gpt-4o-mini").status_code == 200
    revoked = tenant.admin.ok("DELETE", f"/api/v1/admin/keys/{tenant.chat_key_id}")
    assert revoked["revoked_at"] is not None
    deadline = time.monotonic() + 1.0
    while tenant.chat_key.chat("openai/gpt-4o-mini").status_code != 401:
        assert time.monotonic() < deadline, "revocation took longer than a second"
        time.sleep(0.02)
    response = tenant.chat_key.chat("openai/gpt-4o-mini")
    assert response.json()["error"]["code"] == "revoked_api_key"


def test_expired_key_is_refused(master: Api) -> None:
    tenant = new_tenant(master, "Expiry")
    soon = (datetime.now(UTC) + timedelta(seconds=1.5)).isoformat()
    issued = tenant.admin.ok("POST", "/api/v1/admin/keys", {"name": "brief", "expires_at": soon}, status=201)
    brief = master.as_key(issued["key"])
    assert brief.chat("openai/gpt-4o-mini").status_code == 200
    time.sleep(1.6)
    response = brief.chat("openai/gpt-4o-mini")
    assert response.status_code == 401 and response.json()["error"]["code"] == "expired_api_key"


def test_made_up_junction_keys_are_refused(master: Api) -> None:
    fake = master.as_key("sk-jn-0123456789ab-" + "A" * 43)
    response = fake.chat("openai/gpt-4o-mini")
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"


def test_org_admin_manages_its_own_keys_only(master: Api) -> None:
    tenant = new_tenant(master, "Self-service")
    issued = tenant.admin.ok("POST", "/api/v1/admin/keys", {"name": "ci"}, status=201)
    assert issued["org_id"] == tenant.org_id
    assert [o["id"] for o in tenant.admin.ok("GET", "/api/v1/admin/orgs")] == [tenant.org_id]
    refused = tenant.admin.request("POST", "/api/v1/admin/orgs", {"name": "mine now"})
    assert refused.status_code == 403
    refused = tenant.admin.request("DELETE", f"/api/v1/admin/orgs/{tenant.org_id}")
    assert refused.status_code == 403


def test_org_credential_is_used_then_falls_back(
    master: Api, fake_openai: FakeOpenAI, tenancy_server: JunctionProcess
) -> None:
    tenant = new_tenant(master, "BYOK")
    org_key = "sk-org-own-key-123"
    stored = tenant.admin.ok(
        "PUT", f"/api/v1/admin/orgs/{tenant.org_id}/credentials/openai", {"api_key": org_key}
    )
    assert stored["provider"] == "openai" and "api_key" not in stored
    fake_openai.api_key = org_key  # the upstream now accepts only the org's key
    try:
        deadline = time.monotonic() + 1.0
        while True:
            response = tenant.chat_key.chat("openai/gpt-4o-mini")
            if response.status_code == 200:
                break
            assert time.monotonic() < deadline, response.text
            time.sleep(0.02)
        assert fake_openai.last.headers["authorization"] == f"Bearer {org_key}"
        # other orgs keep the server-wide key (which the upstream now refuses)
        other = new_tenant(master, "No BYOK")
        assert other.chat_key.chat("openai/gpt-4o-mini").status_code != 200
        assert fake_openai.last.headers["authorization"] == "Bearer sk-upstream-test"
    finally:
        fake_openai.api_key = "sk-upstream-test"
    listed = tenant.admin.ok("GET", f"/api/v1/admin/orgs/{tenant.org_id}/credentials")
    assert [c["provider"] for c in listed] == ["openai"] and "api_key" not in listed[0]
    tenant.admin.ok("DELETE", f"/api/v1/admin/orgs/{tenant.org_id}/credentials/openai", status=204)
    deadline = time.monotonic() + 1.0
    while tenant.chat_key.chat("openai/gpt-4o-mini").status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert fake_openai.last.headers["authorization"] == "Bearer sk-upstream-test"
    assert org_key not in tenancy_server.output()  # never logged


def test_credential_input_rules(master: Api) -> None:
    tenant = new_tenant(master, "Cred rules")
    path = f"/api/v1/admin/orgs/{tenant.org_id}/credentials"
    response = tenant.admin.request(
        "PUT", f"{path}/openai", {"api_key": "k", "base_url": "http://10.0.0.1/v1"}
    )
    assert response.status_code == 403 and response.json()["error"]["param"] == "base_url"
    response = tenant.admin.request("PUT", f"{path}/nosuchprovider", {"api_key": "k"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "provider"
    response = master.request("PUT", f"{path}/openai", {"api_key": "k", "base_url": "ftp://x"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "base_url"
    response = tenant.admin.request("PUT", f"{path}/openai", {"base_url": None})
    assert response.status_code == 400 and "api_key" in response.json()["error"]["message"]
