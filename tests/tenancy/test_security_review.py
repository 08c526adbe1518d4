"""Defects found by the security review of the tenancy code, each pinned by a test against a real
server (PostgreSQL and SQLite documents, Redis change bus):

* an org admin key could issue keys with scopes or models it does not hold itself;
* input that no record can hold (NUL characters, overlong names, out-of-range numbers) reached
  the database and came back as a 500 instead of a 4xx naming the field (and a variable declared
  twice was silently accepted);
* a bridge's fallback model was used even for a key whose allow-list excludes it;
* reprs of objects carrying a decrypted credential, a caller's key or a new key showed it.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.tenancy.conftest import Api, Tenant, new_tenant

pytestmark = pytest.mark.slow


@pytest.fixture
def tenant(master: Api) -> Tenant:
    return new_tenant(master, "Review")


def issue(api: Api, body: dict[str, Any]) -> Any:
    return api.request("POST", "/api/v1/admin/keys", body)


# --- privilege escalation through key issuing --------------------------------------------------


def test_an_org_admin_cannot_issue_a_key_beyond_its_own_scopes(master: Api, tenant: Tenant) -> None:
    admin_only = master.ok(
        "POST",
        "/api/v1/admin/keys",
        {"org_id": tenant.org_id, "name": "ops", "scopes": ["admin"]},
        status=201,
    )
    ops = tenant.admin.as_key(admin_only["key"])
    for body in (
        {"name": "x"},
        {"name": "x", "scopes": ["chat"]},
        {"name": "x", "scopes": ["admin", "chat"]},
    ):
        response = issue(ops, body)
        assert response.status_code == 403, response.text
        assert response.json()["error"]["param"] == "scopes"
    assert issue(ops, {"name": "x", "scopes": ["admin"]}).status_code == 201
    # the org's full admin (chat + admin) still issues both
    assert issue(tenant.admin, {"name": "x", "scopes": ["chat", "admin"]}).status_code == 201


def test_an_org_admin_cannot_issue_a_key_beyond_its_own_models(master: Api, tenant: Tenant) -> None:
    limited = master.ok(
        "POST",
        "/api/v1/admin/keys",
        {
            "org_id": tenant.org_id,
            "name": "lim",
            "scopes": ["chat", "admin"],
            "models": ["openai/gpt-4o-mini"],
        },
        status=201,
    )
    lim = tenant.admin.as_key(limited["key"])
    for models in (None, ["openai/gpt-4o"], ["openai/gpt-4o-mini", "openai/gpt-4o"]):
        response = issue(lim, {"name": "x", "models": models})
        assert response.status_code == 403, response.text
        assert response.json()["error"]["param"] == "models"
    narrower = issue(lim, {"name": "x", "models": ["openai/gpt-4o-mini"]})
    assert narrower.status_code == 201 and narrower.json()["models"] == ["openai/gpt-4o-mini"]
    # the master key is not confined
    assert issue(master, {"org_id": tenant.org_id, "name": "any"}).status_code == 201


# --- bad input is a 4xx, never a 500 ----------------------------------------------------------


def assert_client_error(response: Any, param: str | None = None) -> None:
    assert 400 <= response.status_code < 500, f"{response.status_code} {response.text[:300]}"
    error = response.json()["error"]
    assert error["message"] and error["type"]
    if param is not None:
        assert error["param"] == param, error


def test_nul_characters_and_overlong_values_in_bodies_are_400s(master: Api, tenant: Tenant) -> None:
    org = tenant.org_id
    bridge = tenant.admin.ok(
        "POST", "/api/v1/bridges", {"slug": "nul", "name": "n", "model": "openai/gpt-4o-mini"}, status=201
    )
    path = f"/api/v1/bridges/{bridge['id']}"
    cases: list[tuple[str, str, dict[str, Any], str]] = [
        ("POST", "/api/v1/admin/orgs", {"name": "a\x00b"}, "name"),
        ("PATCH", f"/api/v1/admin/orgs/{org}", {"name": "a\x00b"}, "name"),
        ("POST", "/api/v1/admin/keys", {"org_id": org, "name": "a\x00b"}, "name"),
        ("POST", "/api/v1/admin/keys", {"org_id": org, "name": "k" * 201}, "name"),
        ("POST", "/api/v1/admin/keys", {"org_id": org, "name": "k", "models": ["a\x00"]}, "models[0]"),
        ("POST", "/api/v1/admin/keys", {"org_id": org, "name": "k", "rpm": 2**31}, "rpm"),
        ("POST", "/api/v1/admin/keys", {"org_id": org, "name": "k", "tpm": 2**70}, "tpm"),
        ("PUT", f"/api/v1/admin/orgs/{org}/credentials/openai", {"api_key": "sk-\x00"}, "api_key"),
        ("PUT", f"/api/v1/admin/orgs/{org}/credentials/openai", {"api_key": "sk-x\r\nX-Evil: 1"}, "api_key"),
        ("POST", "/api/v1/bridges", {"slug": "b", "name": "n" * 201, "model": "openai/gpt-4o-mini"}, "name"),
        ("POST", "/api/v1/bridges", {"slug": "b", "name": "a\x00", "model": "openai/gpt-4o-mini"}, "name"),
        (
            "POST",
            "/api/v1/bridges",
            {"slug": "b", "name": "n", "model": "openai/" + "m" * 300},
            "model",
        ),
        (
            "POST",
            "/api/v1/bridges",
            {"slug": "b", "name": "n", "model": "openai/gpt-4o-mini", "prompt": "hi \x00"},
            "prompt",
        ),
        (
            "POST",
            "/api/v1/bridges",
            {"slug": "b", "name": "n", "model": "openai/gpt-4o-mini", "params": {"stop": ["\x00"]}},
            "params.stop[0]",
        ),
        (
            "POST",
            "/api/v1/bridges",
            {"slug": "b", "name": "n", "model": "openai/gpt-4o-mini", "variables": [{"name": "v\x00"}]},
            "variables[0].name",
        ),
        (
            "POST",
            "/api/v1/bridges",
            {
                "slug": "b",
                "name": "n",
                "model": "openai/gpt-4o-mini",
                "variables": [{"name": "v", "required": True}, {"name": "v", "default": "d"}],
            },
            "variables[1].name",
        ),
        ("PATCH", path, {"variables": [{"name": "v"}, {"name": "w"}, {"name": "v"}]}, "variables[2].name"),
        ("PATCH", path, {"name": "x" * 201}, "name"),
        ("PATCH", path, {"prompt": "\x00"}, "prompt"),
        ("PATCH", path, {"fallback_model": "openai/" + "m" * 300}, "fallback_model"),
        ("POST", f"{path}/chat", {"user": "a\x00b"}, "user"),
        ("POST", f"{path}/chat", {"user": "hi", "thread_id": "th_\x00"}, "thread_id"),
    ]
    failures = []
    for method, route, body, param in cases:
        api = master if route.startswith("/api/v1/admin/orgs") and method == "POST" else tenant.admin
        response = api.request(method, route, body)
        try:
            assert_client_error(response, param)
        except AssertionError as error:
            failures.append(f"{method} {route} {str(body)[:60]}: {error}")
    assert not failures, "\n".join(failures)


def test_impossible_ids_in_paths_queries_and_headers_are_404s(master: Api, tenant: Tenant) -> None:
    bridge = tenant.admin.ok(
        "POST", "/api/v1/bridges", {"slug": "ids", "name": "n", "model": "openai/gpt-4o-mini"}, status=201
    )
    org, nul, long = tenant.org_id, "%00", "x" * 5000
    paths = [
        ("GET", f"/api/v1/admin/orgs/{nul}"),
        ("PATCH", f"/api/v1/admin/orgs/{nul}"),
        ("DELETE", f"/api/v1/admin/orgs/{nul}"),
        ("GET", f"/api/v1/admin/keys/{nul}"),
        ("DELETE", f"/api/v1/admin/keys/{nul}"),
        ("PUT", f"/api/v1/admin/orgs/{org}/credentials/{nul}"),
        ("DELETE", f"/api/v1/admin/orgs/{org}/credentials/{nul}"),
        ("GET", f"/api/v1/bridges/{nul}"),
        ("PATCH", f"/api/v1/bridges/{nul}"),
        ("DELETE", f"/api/v1/bridges/{nul}"),
        ("GET", f"/api/v1/bridges/{long}"),
        ("GET", f"/api/v1/threads/{nul}"),
        ("GET", f"/api/v1/threads/{long}"),
        ("GET", f"/api/v1/bridges/{bridge['id']}/versions/99999999999"),
        ("POST", f"/api/v1/bridges/{bridge['id']}/versions/99999999999/publish"),
        ("GET", "/api/v1/admin/keys?org_id=%00"),
        ("GET", "/api/v1/bridges?org_id=%00"),
        ("GET", "/api/v1/threads/th_x?org_id=%00"),
    ]
    failures = []
    for method, path in paths:
        response = master.client.request(
            method,
            path,
            json={} if method == "PATCH" else None,
            headers={"authorization": f"Bearer {master.key}"},
        )
        if response.status_code != 404 or "error" not in response.json():
            failures.append(f"{method} {path[:80]}: {response.status_code} {response.text[:200]}")
    for path in ("/api/v1/admin/keys", "/api/v1/bridges", "/api/v1/threads/th_x"):
        response = master.client.get(
            path, headers={"authorization": f"Bearer {master.key}", "x-junction-org-id": long}
        )
        if response.status_code != 404:
            failures.append(f"GET {path} (org header): {response.status_code} {response.text[:200]}")
    for org_id in ("a\x00", long):
        for route, body in (
            ("/api/v1/admin/keys", {"org_id": org_id, "name": "k"}),
            ("/api/v1/bridges", {"org_id": org_id, "slug": "s", "name": "n", "model": "openai/gpt-4o-mini"}),
        ):
            response = master.request("POST", route, body)
            if response.status_code not in (400, 404) or response.json()["error"]["param"] != "org_id":
                failures.append(f"POST {route} {org_id[:8]!r}: {response.status_code} {response.text[:200]}")
    for model in ("bridge/\x00", "bridge/" + long):
        response = master.chat(model)
        # A name longer than limits.max_model_chars (256) is refused as such (#16) before any lookup.
        if response.status_code != (400 if len(model) > 256 else 404):
            failures.append(f"chat {model[:20]!r}: {response.status_code} {response.text[:200]}")
    assert not failures, "\n".join(failures)


# --- a key's model allow-list covers the bridge's fallback ------------------------------------


def test_a_bridges_fallback_model_is_not_used_for_a_key_not_allowed_it(
    tenant: Tenant, fake_openai: FakeOpenAI
) -> None:
    tenant.admin.ok(
        "POST",
        "/api/v1/bridges",
        {"slug": "fb", "name": "fb", "model": "openai/gpt-4o-mini", "fallback_model": "openai/gpt-4o"},
        status=201,
    )
    issued = tenant.admin.ok(
        "POST", "/api/v1/admin/keys", {"name": "mini only", "models": ["openai/gpt-4o-mini"]}, status=201
    )
    limited = tenant.admin.as_key(issued["key"])
    fake_openai.fail_next(500, {"error": {"message": "boom", "type": "server_error"}})
    response = limited.request("POST", "/api/v1/bridges/fb/chat", {"user": "x"})
    assert response.status_code == 502, response.text
    assert [r.json()["model"] for r in fake_openai.requests] == ["gpt-4o-mini"]
    # a key allowed both still gets the fallback
    fake_openai.reset()
    fake_openai.fail_next(500, {"error": {"message": "boom", "type": "server_error"}})
    response = tenant.chat_key.request("POST", "/api/v1/bridges/fb/chat", {"user": "x"})
    assert response.status_code == 200 and response.headers["x-junction-fallback"] == "true"


# --- secrets stay out of reprs (tracebacks, debug logs, error trackers) ------------------------


def test_reprs_of_objects_carrying_secrets_hide_them(tenant: Tenant, master: Api) -> None:
    from junction.domain.keys.schemas import IssuedKeyView
    from junction.plugins import Call, Principal, UpstreamTarget
    from junction.schemas.chat import ChatRequest, Message

    target = UpstreamTarget(model="gpt-4o-mini", api_key="sk-org-decrypted-secret", base_url="https://x")
    assert "sk-org-decrypted-secret" not in repr(target) and "gpt-4o-mini" in repr(target)
    caller = Principal(id="key:k", kind="key", scopes=frozenset({"chat"}))
    request = ChatRequest(model="openai/gpt-4o-mini", messages=[Message(role="user", content="hi")])
    call = Call(request_id="r", endpoint="chat", principal=caller, request=request,
                headers={"authorization": "Bearer sk-caller-secret"})
    assert "sk-caller-secret" not in repr(call)
    issued = master.ok("POST", "/api/v1/admin/keys", {"org_id": tenant.org_id, "name": "r"}, status=201)
    view = msgspec.convert(issued, IssuedKeyView)
    assert issued["key"] not in repr(view) and issued["id"] in repr(view)
