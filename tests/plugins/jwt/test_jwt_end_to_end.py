"""A real ``junction serve`` with ``[middleware.jwt]`` on: OpenAI SDK calls with a JWT."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import openai
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from junction.testing.server import JunctionProcess
from tests.conftest import openai_provider_table
from tests.fakes.jwks_server import FakeJwks
from tests.fakes.openai_upstream import FakeOpenAI

pytestmark = pytest.mark.slow

ISSUER = "https://idp.example.test/"


@pytest.fixture(scope="module")
def signing_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "e2e-1"})


@pytest.fixture(scope="module")
def jwks(signing_key: RSAKey) -> Iterator[FakeJwks]:
    server = FakeJwks().start()
    server.publish(signing_key.as_dict(private=False))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def jwt_gateway(
    fake_openai_server: FakeOpenAI, jwks: FakeJwks, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[JunctionProcess]:
    directory: Path = tmp_path_factory.mktemp("jwt-gateway")
    config = (
        openai_provider_table(fake_openai_server)
        + f"""
[middleware.jwt]
enabled = true
jwks_url = "{jwks.jwks_url}"
issuer = "{ISSUER}"
audience = "junction"
org_claim = "org.id"
"""
    )
    with JunctionProcess(directory, config) as server:
        yield server


def soon() -> str:
    """Before the tokens below expire (they live 120 s)."""
    return (datetime.now(UTC) + timedelta(seconds=60)).isoformat()


def token(key: RSAKey, **overrides: object) -> str:
    now = int(time.time())
    claims = {
        "sub": "alice",
        "org": {"id": "org-a"},
        "iss": ISSUER,
        "aud": "junction",
        "exp": now + 120,
        "scope": "chat",
    }
    claims.update(overrides)
    return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key, algorithms=["RS256"])


def test_chat_completion_with_a_jwt(
    jwt_gateway: JunctionProcess, fake_openai: FakeOpenAI, signing_key: RSAKey
) -> None:
    with openai.OpenAI(base_url=f"{jwt_gateway.url}/v1", api_key=token(signing_key), max_retries=0) as client:
        reply = client.chat.completions.create(
            model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert reply.choices[0].message.content == "echo: hi"
    # the gateway authenticated the caller itself: the upstream saw the server-wide key, not the JWT
    assert fake_openai.last.headers["authorization"] == "Bearer sk-upstream-test"


def test_expired_jwt_gets_401_naming_the_problem(jwt_gateway: JunctionProcess, signing_key: RSAKey) -> None:
    expired = token(signing_key, exp=int(time.time()) - 3600)
    with openai.OpenAI(base_url=f"{jwt_gateway.url}/v1", api_key=expired, max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError) as caught:
            client.chat.completions.create(
                model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
            )
    assert "expired" in caught.value.message


def test_jwt_without_chat_scope_is_forbidden(jwt_gateway: JunctionProcess, signing_key: RSAKey) -> None:
    response = httpx.post(
        f"{jwt_gateway.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {token(signing_key, scope='read')}"},
        json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]},
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"


def test_wrong_audience_and_forged_signature_get_401(
    jwt_gateway: JunctionProcess, signing_key: RSAKey
) -> None:
    forger = RSAKey.generate_key(2048, parameters={"kid": "e2e-1"})
    for bad, expected in ((token(signing_key, aud="other"), "audience"), (token(forger), "signature")):
        response = httpx.get(f"{jwt_gateway.url}/v1/models", headers={"authorization": f"Bearer {bad}"})
        assert response.status_code == 401
        assert expected in response.json()["error"]["message"]


def test_master_key_still_works_beside_jwt(jwt_gateway: JunctionProcess) -> None:
    response = httpx.get(
        f"{jwt_gateway.url}/v1/models", headers={"authorization": f"Bearer {jwt_gateway.key}"}
    )
    assert response.status_code == 200


def test_jwt_admin_is_confined_to_the_org_its_claim_names(
    jwt_gateway: JunctionProcess, signing_key: RSAKey
) -> None:
    master = {"authorization": f"Bearer {jwt_gateway.key}"}
    mine = httpx.post(f"{jwt_gateway.url}/api/v1/admin/orgs", json={"name": "JWT org"}, headers=master).json()
    other = httpx.post(f"{jwt_gateway.url}/api/v1/admin/orgs", json={"name": "Other"}, headers=master).json()
    admin = {"authorization": f"Bearer {token(signing_key, org={'id': mine['id']}, scope='chat admin')}"}
    listed = httpx.get(f"{jwt_gateway.url}/api/v1/admin/orgs", headers=admin)
    assert listed.status_code == 200 and [o["id"] for o in listed.json()] == [mine["id"]]
    assert httpx.get(f"{jwt_gateway.url}/api/v1/admin/orgs/{other['id']}", headers=admin).status_code == 404
    body = {"name": "from jwt", "expires_at": soon()}
    issued = httpx.post(f"{jwt_gateway.url}/api/v1/admin/keys", json=body, headers=admin)
    assert issued.status_code == 201 and issued.json()["org_id"] == mine["id"]


def test_jwt_admin_issues_keys_with_at_most_its_own_scopes(
    jwt_gateway: JunctionProcess, signing_key: RSAKey
) -> None:
    master = {"authorization": f"Bearer {jwt_gateway.key}"}
    org = httpx.post(f"{jwt_gateway.url}/api/v1/admin/orgs", json={"name": "JWT scopes"}, headers=master).json()
    admin_only = {"authorization": f"Bearer {token(signing_key, org={'id': org['id']}, scope='admin')}"}
    url = f"{jwt_gateway.url}/api/v1/admin/keys"
    refused = httpx.post(url, json={"name": "app", "scopes": ["chat"]}, headers=admin_only)
    assert refused.status_code == 403 and refused.json()["error"]["param"] == "scopes"
    ops = {"name": "ops", "scopes": ["admin"], "expires_at": soon()}
    assert httpx.post(url, json=ops, headers=admin_only).status_code == 201


def test_jwt_admin_issues_keys_expiring_no_later_than_its_token(
    jwt_gateway: JunctionProcess, signing_key: RSAKey
) -> None:
    master = {"authorization": f"Bearer {jwt_gateway.key}"}
    orgs = f"{jwt_gateway.url}/api/v1/admin/orgs"
    org = httpx.post(orgs, json={"name": "JWT expiry"}, headers=master).json()
    admin = {"authorization": f"Bearer {token(signing_key, org={'id': org['id']}, scope='chat admin')}"}
    url = f"{jwt_gateway.url}/api/v1/admin/keys"
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    for body in ({"name": "forever"}, {"name": "later", "expires_at": later}):
        refused = httpx.post(url, json=body, headers=admin)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["param"] == "expires_at"
    assert httpx.post(url, json={"name": "ok", "expires_at": soon()}, headers=admin).status_code == 201


def test_a_jwt_users_threads_are_its_own(jwt_gateway: JunctionProcess, signing_key: RSAKey) -> None:
    master = {"authorization": f"Bearer {jwt_gateway.key}"}
    orgs = f"{jwt_gateway.url}/api/v1/admin/orgs"
    org = httpx.post(orgs, json={"name": "JWT threads"}, headers=master).json()["id"]
    bridge = {"org_id": org, "slug": "helper", "name": "Helper", "model": "openai/gpt-4o-mini"}
    assert httpx.post(f"{jwt_gateway.url}/api/v1/bridges", json=bridge, headers=master).status_code == 201

    def as_user(sub: str) -> dict[str, str]:
        return {"authorization": f"Bearer {token(signing_key, sub=sub, org={'id': org})}"}

    chat = f"{jwt_gateway.url}/api/v1/bridges/helper/chat"
    started = httpx.post(chat, json={"user": "alice's"}, headers=as_user("alice"))
    assert started.status_code == 200, started.text
    thread = f"{jwt_gateway.url}/api/v1/threads/{started.json()['thread_id']}"
    assert httpx.get(thread, headers=as_user("bob")).status_code == 404
    mine = httpx.get(thread, headers=as_user("alice"))  # a fresh token of the same user
    assert mine.status_code == 200 and mine.json()["owner"] == "jwt:alice"


def test_a_long_jwt_subject_still_owns_its_threads(jwt_gateway: JunctionProcess, signing_key: RSAKey) -> None:
    master = {"authorization": f"Bearer {jwt_gateway.key}"}
    orgs = f"{jwt_gateway.url}/api/v1/admin/orgs"
    org = httpx.post(orgs, json={"name": "Long"}, headers=master).json()["id"]
    bridge = {"org_id": org, "slug": "helper", "name": "Helper", "model": "openai/gpt-4o-mini"}
    assert httpx.post(f"{jwt_gateway.url}/api/v1/bridges", json=bridge, headers=master).status_code == 201
    long_sub = "u" * 500  # longer than a stored owner: recorded as a digest

    def as_user(sub: str) -> dict[str, str]:
        return {"authorization": f"Bearer {token(signing_key, sub=sub, org={'id': org})}"}

    chat = f"{jwt_gateway.url}/api/v1/bridges/helper/chat"
    started = httpx.post(chat, json={"user": "x"}, headers=as_user(long_sub))
    assert started.status_code == 200, started.text
    thread = f"{jwt_gateway.url}/api/v1/threads/{started.json()['thread_id']}"
    mine = httpx.get(thread, headers=as_user(long_sub))
    assert mine.status_code == 200 and mine.json()["owner"].startswith("sha256:")
    assert httpx.get(thread, headers=as_user("u" * 499)).status_code == 404


def test_an_attackers_long_kid_is_not_echoed_back(jwt_gateway: JunctionProcess, signing_key: RSAKey) -> None:
    kid = "k" * 5000
    now = int(time.time())
    forged = jwt.encode({"alg": "RS256", "kid": kid}, {"sub": "x", "iss": ISSUER, "aud": "junction", "exp": now + 60},
                        signing_key, algorithms=["RS256"])
    response = httpx.post(f"{jwt_gateway.url}/v1/chat/completions", headers={"authorization": f"Bearer {forged}"},
                          json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 401
    message = response.json()["error"]["message"]
    assert "kid" in message and len(message) < 400 and "k" * 100 not in message
