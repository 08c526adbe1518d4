"""Org A can never read, list, use or modify org B's keys, credentials, bridges or threads: every
route is tried with org A's admin key against org B's ids, and answers 404 (not 403, so org B's
ids cannot even be confirmed to exist)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.tenancy.conftest import Api, Tenant, new_tenant

pytestmark = pytest.mark.slow


@dataclass
class World:
    a: Tenant
    b: Tenant
    b_bridge: dict[str, Any]
    b_thread: str
    a_bridge: dict[str, Any]


@pytest.fixture(scope="module")
def world(http) -> World:
    master = Api(http, "sk-test-master")
    a, b = new_tenant(master, "Org A"), new_tenant(master, "Org B")
    body = {
        "slug": "shared-slug",
        "name": "B bot",
        "model": "openai/gpt-4o-mini",
        "prompt": "B secret prompt",
    }
    b_bridge = b.admin.ok("POST", "/api/v1/bridges", body, status=201)
    b.admin.ok("POST", f"/api/v1/bridges/{b_bridge['id']}/versions", status=201)
    b_thread = b.chat_key.ok("POST", f"/api/v1/bridges/{b_bridge['id']}/chat", {"user": "b private"})[
        "thread_id"
    ]
    a_bridge = a.admin.ok(
        "POST", "/api/v1/bridges", {**body, "slug": "a-bot", "prompt": "A prompt"}, status=201
    )
    b.admin.ok("PUT", f"/api/v1/admin/orgs/{b.org_id}/credentials/openai", {"api_key": "sk-b-secret"})
    return World(a, b, b_bridge, b_thread, a_bridge)


def routes_against_b(w: World) -> list[tuple[str, str, Any]]:
    b_org, b_key, b_bridge = w.b.org_id, w.b.chat_key_id, w.b_bridge["id"]
    return [
        ("GET", f"/api/v1/admin/orgs/{b_org}", None),
        ("PATCH", f"/api/v1/admin/orgs/{b_org}", {"name": "taken over"}),
        ("DELETE", f"/api/v1/admin/orgs/{b_org}", None),
        ("GET", f"/api/v1/admin/keys?org_id={b_org}", None),
        ("POST", "/api/v1/admin/keys", {"org_id": b_org, "name": "backdoor", "scopes": ["admin"]}),
        ("GET", f"/api/v1/admin/keys/{b_key}", None),
        ("DELETE", f"/api/v1/admin/keys/{b_key}", None),
        ("GET", f"/api/v1/admin/orgs/{b_org}/credentials", None),
        ("PUT", f"/api/v1/admin/orgs/{b_org}/credentials/openai", {"api_key": "sk-mine"}),
        ("DELETE", f"/api/v1/admin/orgs/{b_org}/credentials/openai", None),
        (
            "POST",
            "/api/v1/bridges",
            {"org_id": b_org, "slug": "x", "name": "x", "model": "openai/gpt-4o-mini"},
        ),
        ("GET", f"/api/v1/bridges?org_id={b_org}", None),
        ("GET", f"/api/v1/bridges/{b_bridge}", None),
        ("PATCH", f"/api/v1/bridges/{b_bridge}", {"prompt": "pwned"}),
        ("DELETE", f"/api/v1/bridges/{b_bridge}", None),
        ("POST", f"/api/v1/bridges/{b_bridge}/versions", None),
        ("GET", f"/api/v1/bridges/{b_bridge}/versions", None),
        ("GET", f"/api/v1/bridges/{b_bridge}/versions/1", None),
        ("POST", f"/api/v1/bridges/{b_bridge}/versions/1/publish", None),
        ("POST", f"/api/v1/bridges/{b_bridge}/chat", {"user": "hi"}),
        ("POST", f"/api/v1/bridges/{b_bridge}/chat?org_id={b_org}", {"user": "hi"}),
        ("GET", f"/api/v1/threads/{w.b_thread}", None),
        ("GET", f"/api/v1/threads/{w.b_thread}?org_id={b_org}", None),
        ("POST", f"/api/v1/bridges/{w.a_bridge['id']}/chat", {"user": "hi", "thread_id": w.b_thread}),
        (
            "POST",
            "/v1/chat/completions",
            {"model": f"bridge/{b_bridge}", "messages": [{"role": "user", "content": "x"}]},
        ),
    ]


def test_every_route_answers_404_for_another_orgs_ids(world: World) -> None:
    failures = []
    for method, path, body in routes_against_b(world):
        for api in (world.a.admin, world.a.chat_key):
            response = api.client.request(
                method, path, json=body, headers={"authorization": f"Bearer {api.key}"}
            )
            allowed = {404} if api is world.a.admin else {403, 404}  # chat keys lack the admin scope
            if response.status_code not in allowed:
                failures.append(
                    f"{method} {path} as {'admin' if api is world.a.admin else 'chat'}: "
                    f"{response.status_code} {response.text[:200]}"
                )
    assert not failures, "\n".join(failures)


def test_org_b_is_untouched_afterwards(world: World, master: Api) -> None:
    assert master.ok("GET", f"/api/v1/admin/orgs/{world.b.org_id}")["name"] == "Org B"
    assert master.ok("GET", f"/api/v1/admin/keys/{world.b.chat_key_id}")["revoked_at"] is None
    bridge = master.ok("GET", f"/api/v1/bridges/{world.b_bridge['id']}")
    assert bridge["prompt"] == "B secret prompt" and bridge["published_version"] is None
    assert [c["provider"] for c in master.ok("GET", f"/api/v1/admin/orgs/{world.b.org_id}/credentials")] == [
        "openai"
    ]
    assert master.ok("GET", f"/api/v1/threads/{world.b_thread}")["message_count"] == 2
    assert {k["name"] for k in master.ok("GET", "/api/v1/admin/keys", org_id=world.b.org_id)} == {
        "admin",
        "app",
    }


def test_listings_show_only_the_callers_org(world: World) -> None:
    assert [o["id"] for o in world.a.admin.ok("GET", "/api/v1/admin/orgs")] == [world.a.org_id]
    assert {k["org_id"] for k in world.a.admin.ok("GET", "/api/v1/admin/keys")} == {world.a.org_id}
    assert [b["id"] for b in world.a.admin.ok("GET", "/api/v1/bridges")] == [world.a_bridge["id"]]


def test_same_slug_resolves_to_the_callers_own_bridge(world: World, fake_openai: FakeOpenAI) -> None:
    """Org A names a slug org B uses: it reaches its own bridge or nothing, never B's."""
    response = world.a.chat_key.chat("bridge/shared-slug")
    assert response.status_code == 404
    world.a.admin.ok(
        "POST",
        "/api/v1/bridges",
        {"slug": "shared-slug", "name": "A's", "model": "openai/gpt-4o-mini", "prompt": "A's own prompt"},
        status=201,
    )
    reply = world.a.chat_key.chat("bridge/shared-slug")
    assert reply.status_code == 200
    assert fake_openai.last.json()["messages"][0]["content"] == "A's own prompt"


def test_org_b_credential_is_never_used_for_org_a(world: World, fake_openai: FakeOpenAI) -> None:
    assert world.a.chat_key.chat("openai/gpt-4o-mini").status_code == 200
    assert fake_openai.last.headers["authorization"] == "Bearer sk-upstream-test"
