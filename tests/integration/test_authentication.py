"""Master-key authentication, serving without auth only when asked, and the generated master key."""

from __future__ import annotations

import os
import stat

import httpx
import openai
import pytest

from junction.testing.server import JunctionProcess
from tests.conftest import openai_provider_table

CHAT = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def test_missing_key_is_401(gateway, fake_openai):
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=CHAT)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"
    assert fake_openai.requests == []


def test_wrong_key_is_an_sdk_authentication_error(gateway, fake_openai):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(**CHAT)
    assert caught.value.code == "invalid_api_key"
    assert fake_openai.requests == []


def test_unauthenticated_body_is_not_parsed(gateway):
    # Authentication comes first: garbage from an unknown caller is a 401, not a 400.
    response = httpx.post(f"{gateway.url}/v1/chat/completions", content=b"{garbage")
    assert response.status_code == 401


def test_x_api_key_header_is_accepted(gateway, fake_openai):
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=CHAT, headers={"x-api-key": gateway.key})
    assert response.status_code == 200
    assert fake_openai.last.headers["authorization"] == "Bearer sk-upstream-test"


def test_models_requires_auth(gateway):
    assert httpx.get(f"{gateway.url}/v1/models").status_code == 401


def test_health_needs_no_auth(gateway):
    assert httpx.get(f"{gateway.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{gateway.url}/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_auth_disabled_serves_anyone(tmp_path, fake_openai):
    config = openai_provider_table(fake_openai) + "[auth]\ndisabled = true\n"
    with JunctionProcess(tmp_path, config) as server:
        response = httpx.post(f"{server.url}/v1/chat/completions", json=CHAT)
    assert response.status_code == 200


def test_first_start_generates_a_private_master_key(tmp_path, fake_openai):
    env = {key: value for key, value in os.environ.items() if key != "JUNCTION_MASTER_KEY"}
    server = JunctionProcess(tmp_path, openai_provider_table(fake_openai) + '[server]\ndata_dir = "data"\n')
    server.env = env
    with server:
        key_file = tmp_path / "data" / "junction-master-key"
        key = key_file.read_text().strip()
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert key.startswith("sk-junction-") and len(key) > 40
        assert str(key_file.resolve()) in server.output()
        assert key not in server.output()  # where it is, never what it is
        ok = httpx.post(f"{server.url}/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {key}"})
        assert ok.status_code == 200
    # A restart reuses the same key.
    with server:
        assert (tmp_path / "data" / "junction-master-key").read_text().strip() == key


def test_openapi_schema_is_served(gateway):
    schema = httpx.get(f"{gateway.url}/schema/openapi.json").json()
    assert "/v1/chat/completions" in schema["paths"] and "/v1/models" in schema["paths"]


def test_readiness_pings_the_open_stores_and_reports_a_dead_one(tmp_path, fake_openai):
    config = openai_provider_table(fake_openai) + '[stores]\nmetrics = "postgresql+asyncpg://127.0.0.1:1/nothing"\n'
    with JunctionProcess(tmp_path, config) as server:
        response = httpx.get(f"{server.url}/readyz")
    assert response.status_code == 503
    checks = {check["store"]: check for check in response.json()["checks"]}
    assert checks["documents"]["ok"] and checks["cache"]["ok"]
    assert not checks["metrics"]["ok"] and "127.0.0.1:1 unreachable" in checks["metrics"]["detail"]
    assert response.json()["status"] == "unavailable"
