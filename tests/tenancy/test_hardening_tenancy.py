"""Issue #16 against the tenancy server (PostgreSQL and SQLite, Redis): bridge prompts and params,
credentials and keys cannot be used to exhaust a worker or slip past a check."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.tenancy.conftest import Api, Tenant, new_tenant

pytestmark = pytest.mark.slow


def peak_rss_kib(pid: int) -> int:
    """The process's peak resident set (VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.fixture
def tenant(master: Api) -> Tenant:
    return new_tenant(master, "Hardening")


def make_bridge(tenant: Tenant, slug: str, **fields) -> httpx.Response:
    body = {"slug": slug, "name": "b", "model": "openai/gpt-4o-mini", "prompt": "p", **fields}
    return tenant.admin.request("POST", "/api/v1/bridges", body)


def test_bridge_prompt_amplification_is_refused_before_rendering(tenant, tenancy_server, fake_openai: FakeOpenAI):
    created = make_bridge(tenant, "amplifier", prompt="{{a}}" * 2000, variables=[{"name": "a"}])
    assert created.status_code == 201, created.text
    (worker,) = tenancy_server.worker_pids()
    before = peak_rss_kib(worker)
    started = time.monotonic()
    response = tenant.chat_key.chat("bridge/amplifier", variables={"a": "x" * 100_000})
    elapsed = time.monotonic() - started
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert "limits.max_prompt_chars" in error["message"] and error["code"] == "prompt_too_large"
    assert fake_openai.requests == []
    # 2,000 × 100 KB would be a 200 MB prompt (and several copies of it): refused long before.
    assert peak_rss_kib(worker) - before < 50 * 1024
    assert elapsed < 5


def test_bridge_variable_too_large_is_refused(tenant, fake_openai: FakeOpenAI):
    assert make_bridge(tenant, "echo", prompt="say {{a}}", variables=[{"name": "a"}]).status_code == 201
    response = tenant.chat_key.chat("bridge/echo", variables={"a": "x" * 300_000})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "variables.a" and "limits.max_variable_chars" in error["message"]
    assert fake_openai.requests == []


@pytest.mark.parametrize(("params", "param"), [
    ({"temperature": 5}, "params.temperature"),
    ({"max_tokens": -1}, "params.max_tokens"),
    ({"max_tokens": "many"}, "params.max_tokens"),
    ({"top_p": -5}, "params.top_p"),
    ({"n": 0}, "params.n"),
])
def test_bridge_params_are_validated_when_saved(tenant, params, param):
    response = make_bridge(tenant, "badparams", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    good = make_bridge(tenant, "goodparams", params={"temperature": 0.5})
    assert good.status_code == 201
    patched = tenant.admin.request("PATCH", f"/api/v1/bridges/{good.json()['id']}", {"params": params})
    assert patched.status_code == 400 and patched.json()["error"]["param"] == param


def test_bridge_params_nested_deep_are_refused_on_save(tenant, tenancy_server):
    params = b'{"x":' * 960 + b"1" + b"}" * 960
    body = b'{"slug":"deep","name":"b","model":"openai/gpt-4o-mini","prompt":"p","params":' + params + b"}"
    response = tenant.admin.client.post("/api/v1/bridges", content=body, headers={
        "authorization": f"Bearer {tenant.admin.key}", "content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "json_too_deep"
    assert "RecursionError" not in tenancy_server.output()


def test_credential_api_key_size_is_limited(tenant):
    response = tenant.admin.request("PUT", f"/api/v1/admin/orgs/{tenant.org_id}/credentials/openai",
                                    {"api_key": "k" * 1_000_000})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "api_key" and "limits.max_credential_chars" in error["message"]
    ok = tenant.admin.request("PUT", f"/api/v1/admin/orgs/{tenant.org_id}/credentials/openai",
                              {"api_key": "sk-" + "k" * 200})
    assert ok.status_code == 200, ok.text


def test_a_key_can_mint_a_child_with_its_own_microsecond_expiry(master: Api, tenant: Tenant):
    expiry = "2031-06-01T12:00:00.123456Z"
    parent = master.ok("POST", "/api/v1/admin/keys", {"org_id": tenant.org_id, "name": "p",
                                                        "scopes": ["chat", "admin"], "expires_at": expiry},
                       status=201)
    child = master.as_key(parent["key"]).request("POST", "/api/v1/admin/keys",
                                                  {"name": "c", "expires_at": expiry})
    assert child.status_code == 201, child.text
    later = master.as_key(parent["key"]).request("POST", "/api/v1/admin/keys",
                                                 {"name": "c2", "expires_at": "2031-06-01T12:00:00.125Z"})
    assert later.status_code == 403 and later.json()["error"]["param"] == "expires_at"


def test_master_key_thread_lookup_does_not_scale_with_orgs(master: Api, tenant: Tenant):
    bridge = make_bridge(tenant, "talker", prompt="hi")
    assert bridge.status_code == 201
    reply = tenant.chat_key.ok("POST", "/api/v1/bridges/talker/chat", {"user": "hello"})
    thread_id = reply["thread_id"]
    for index in range(250):
        master.ok("POST", "/api/v1/admin/orgs", {"name": f"filler {index}"}, status=201)

    def median_ms(**headers: str) -> float:
        timings = []
        for _ in range(7):
            started = time.perf_counter()
            response = master.client.get(f"/api/v1/threads/{thread_id}",
                                         headers={"authorization": f"Bearer {master.key}", **headers})
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
        return statistics.median(timings)

    named = median_ms(**{"x-junction-org-id": tenant.org_id})
    unnamed = median_ms()
    assert unnamed < 3 * named + 15, (unnamed, named)


def test_an_orgs_own_credential_quoted_by_the_upstream_is_not_shown_to_its_chat_keys(
    tenant, tenancy_server, fake_openai: FakeOpenAI
):
    org_key = "org-secret-" + "z" * 30
    stored = tenant.admin.request("PUT", f"/api/v1/admin/orgs/{tenant.org_id}/credentials/openai",
                                  {"api_key": org_key})
    assert stored.status_code == 200, stored.text
    fake_openai.fail_next(401, {"error": {"message": f"Incorrect API key provided: {org_key}.",
                                          "code": "invalid_api_key"}})
    response = tenant.chat_key.chat("openai/gpt-4o-mini")
    assert response.status_code == 401
    assert fake_openai.last.headers["authorization"] == f"Bearer {org_key}"
    assert org_key not in response.text and "Incorrect API key provided: [redacted]" in response.text
    assert org_key not in tenancy_server.output()
