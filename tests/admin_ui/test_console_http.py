"""The console's safety rules over plain HTTP (no browser needed): sign-in and sessions, CSRF,
security headers, org confinement, and sessions shared by nodes on one Redis."""

from __future__ import annotations

import hashlib

import httpx
import pytest
import redis

from junction.testing.server import JunctionProcess
from tests.admin_ui.conftest import console_config, csrf_of, new_key, new_org, signed_in
from tests.fakes.openai_upstream import FakeOpenAI

pytestmark = pytest.mark.slow

PAGES = ["/ui", "/ui/orgs", "/ui/keys", "/ui/bridges", "/ui/usage", "/ui/plugins", "/ui/jobs"]


def test_sign_in_exchanges_the_key_for_a_strict_httponly_session_kept_in_redis(
        server: JunctionProcess, console_redis: redis.Redis) -> None:
    with httpx.Client(base_url=server.url, timeout=20) as anonymous:
        assert anonymous.get("/ui/keys").headers["location"] == "/ui/login"
        page = anonymous.get("/ui/login")
        refused = anonymous.post("/ui/login", data={"key": "sk-wrong-key", "csrf_token": csrf_of(page.text)})
        assert refused.status_code == 401 and "not valid" in refused.text
        assert "sk-wrong-key" not in refused.text

    with signed_in(server, server.key) as client:
        cookie = next(header for header in client.cookies.jar if header.name == "junction_ui")
        assert cookie.has_nonstandard_attr("HttpOnly") and cookie.path == "/ui" and not cookie.secure
        raw = console_redis.get(f"junction:ui:session:{hashlib.sha256(cookie.value.encode()).hexdigest()}")
        assert raw is not None and cookie.value.encode() not in raw and server.key.encode() not in raw
        assert 0 < console_redis.ttl(f"junction:ui:session:{hashlib.sha256(cookie.value.encode()).hexdigest()}") <= 8 * 3600
        overview = client.get("/ui")
        assert overview.status_code == 200 and "master key" in overview.text and server.key not in overview.text
        signed_out = client.post("/ui/logout", data={"csrf_token": csrf_of(overview.text)})
        assert signed_out.status_code == 303
        assert console_redis.get(f"junction:ui:session:{hashlib.sha256(cookie.value.encode()).hexdigest()}") is None
        client.cookies.set("junction_ui", cookie.value, path="/ui")  # the old cookie opens nothing now
        assert client.get("/ui").headers["location"] == "/ui/login"


def test_set_cookie_is_samesite_strict(server: JunctionProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=20) as client:
        page = client.get("/ui/login")
        answer = client.post("/ui/login", data={"key": server.key, "csrf_token": csrf_of(page.text)})
        session_cookie = next(value for value in answer.headers.get_list("set-cookie") if value.startswith("junction_ui="))
        assert "HttpOnly" in session_cookie and "SameSite=strict" in session_cookie and "Path=/ui" in session_cookie


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
        server: JunctionProcess, admin: httpx.Client) -> None:
    with signed_in(server, server.key) as client:
        before = len(admin.get("/api/v1/admin/orgs").json())
        for data in ({"name": "csrf-less"}, {"name": "csrf-wrong", "csrf_token": "not-the-token"}):
            refused = client.post("/ui/orgs", data=data)
            assert refused.status_code == 403 and "CSRF" in refused.text
            assert refused.headers["content-security-policy"].startswith("default-src 'none'")
        assert len(admin.get("/api/v1/admin/orgs").json()) == before
        org = new_org(admin, "csrf-target")
        key_id = admin.post("/api/v1/admin/keys", json={"org_id": org["id"], "name": "k"}).json()["id"]
        assert client.post(f"/ui/keys/{key_id}/revoke").status_code == 403
        assert admin.get(f"/api/v1/admin/keys/{key_id}").json()["revoked_at"] is None
    with httpx.Client(base_url=server.url, timeout=20) as anonymous:  # the sign-in form has one too
        assert anonymous.post("/ui/login", data={"key": server.key}).status_code == 403


def test_every_page_sends_a_strict_content_security_policy(server: JunctionProcess) -> None:
    with signed_in(server, server.key) as client:
        for path in [*PAGES, "/ui/login"]:
            answer = client.get(path, follow_redirects=True)
            assert answer.status_code == 200, (path, answer.text[:300])
            policy = answer.headers["content-security-policy"]
            assert "script-src 'self'" in policy and "default-src 'none'" in policy and "unsafe" not in policy
            assert answer.headers["x-frame-options"] == "DENY" and answer.headers["cache-control"] == "no-store"
            assert "<script>" not in answer.text and " style=" not in answer.text and "http://" not in answer.text.replace(server.url, "")


def test_an_org_admin_reaches_only_its_own_org(server: JunctionProcess, admin: httpx.Client) -> None:
    mine, theirs = new_org(admin, "ui-mine"), new_org(admin, "ui-theirs")
    their_key = admin.post("/api/v1/admin/keys", json={"org_id": theirs["id"], "name": "theirs"}).json()
    their_bridge = admin.post("/api/v1/bridges", json={"org_id": theirs["id"], "slug": "their-bridge", "name": "t",
                                                       "model": "openai/gpt-4o-mini"}).json()
    with signed_in(server, new_key(admin, mine["id"], ["admin", "chat"])) as client:
        orgs = client.get("/ui/orgs").text
        assert mine["id"] in orgs and theirs["id"] not in orgs
        assert their_key["prefix"] not in client.get("/ui/keys").text
        for path in (f"/ui/orgs/{theirs['id']}", f"/ui/keys?org_id={theirs['id']}", f"/ui/keys/{their_key['id']}",
                     f"/ui/bridges/{their_bridge['id']}", f"/ui/usage?org_id={theirs['id']}",
                     f"/ui/bridges/{their_bridge['id']}/threads"):
            answer = client.get(path)
            assert answer.status_code == 404, (path, answer.status_code)
        token = csrf_of(client.get("/ui/keys").text)
        assert client.post(f"/ui/keys/{their_key['id']}/revoke", data={"csrf_token": token}).status_code == 404
        assert client.post(f"/ui/orgs/{theirs['id']}", data={"csrf_token": token, "name": "taken"}).status_code == 404
        assert client.post("/ui/orgs", data={"csrf_token": token, "name": "new"}).status_code == 403
    assert admin.get(f"/api/v1/admin/keys/{their_key['id']}").json()["revoked_at"] is None
    assert admin.get(f"/api/v1/admin/orgs/{theirs['id']}").json()["name"] == "ui-theirs"


def test_revoking_an_admin_key_ends_its_console_sessions(server: JunctionProcess, admin: httpx.Client) -> None:
    org = new_org(admin, "ui-revoked")
    issued = admin.post("/api/v1/admin/keys", json={"org_id": org["id"], "name": "a", "scopes": ["admin"]}).json()
    with signed_in(server, issued["key"]) as client:
        assert client.get("/ui/keys").status_code == 200
        assert admin.delete(f"/api/v1/admin/keys/{issued['id']}").status_code == 200
        assert client.get("/ui/keys").headers["location"] == "/ui/login"


def test_a_chat_only_key_cannot_sign_in(server: JunctionProcess, admin: httpx.Client) -> None:
    key = new_key(admin, new_org(admin, "ui-chat-only")["id"], ["chat"])
    with httpx.Client(base_url=server.url, timeout=20) as client:
        page = client.get("/ui/login")
        answer = client.post("/ui/login", data={"key": key, "csrf_token": csrf_of(page.text)})
        assert answer.status_code == 403 and "junction_ui=" not in answer.headers.get("set-cookie", "")


def test_a_session_opened_on_one_node_works_on_another_sharing_redis(
        server: JunctionProcess, fake_openai_server: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> None:
    with JunctionProcess(tmp_path_factory.mktemp("console-node-2"), console_config(fake_openai_server)) as second:
        with signed_in(server, server.key) as client:
            token = client.cookies["junction_ui"]
        with httpx.Client(base_url=second.url, timeout=20, cookies={"junction_ui": token}) as other:
            answer = other.get("/ui/plugins")
            assert answer.status_code == 200 and "admin-ui" in answer.text


def test_the_console_can_be_switched_off(fake_openai_server: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> None:
    config = console_config(fake_openai_server, extra="\n[middleware.admin-ui]\nenabled = false\n")
    with JunctionProcess(tmp_path_factory.mktemp("console-off"), config) as off:
        assert httpx.get(f"{off.url}/ui/login", timeout=20).status_code == 404


def test_threads_and_jobs_pages_show_what_the_apis_recorded(server: JunctionProcess, admin: httpx.Client) -> None:
    org = new_org(admin, "ui-threads")
    bridge = admin.post("/api/v1/bridges", json={"org_id": org["id"], "slug": "ui-threads", "name": "t",
                                                 "model": "openai/gpt-4o-mini"}).json()
    key = new_key(admin, org["id"], ["chat"])
    headers = {"authorization": f"Bearer {key}"}
    turn = httpx.post(f"{server.url}/api/v1/bridges/{bridge['id']}/chat", json={"user": "first question"},
                      headers=headers, timeout=20)
    assert turn.status_code == 200, turn.text
    job = httpx.post(f"{server.url}/api/v1/jobs", headers=headers, timeout=20, json={
        "request": {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "later"}]}})
    assert job.status_code == 202, job.text
    with signed_in(server, server.key) as client:
        threads = client.get(f"/ui/bridges/{bridge['id']}/threads").text
        assert turn.json()["thread_id"] in threads
        thread = client.get(f"/ui/bridges/{bridge['id']}/threads/{turn.json()['thread_id']}").text
        assert "first question" in thread and "echo: first question" in thread
        assert job.json()["id"] in client.get("/ui/jobs").text
        batch = httpx.post(f"{server.url}/api/v1/batches", headers=headers, timeout=20, json={"requests": [
            {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": str(n)}]} for n in range(3)]})
        assert batch.status_code == 202, batch.text
        page = client.get(f"/ui/batches/{batch.json()['id']}").text
        assert "<dt>total</dt><dd>3</dd>" in page
    with signed_in(server, new_key(admin, new_org(admin, "ui-other")["id"], ["admin"])) as other:
        assert job.json()["id"] not in other.get("/ui/jobs").text
        assert other.get(f"/ui/bridges/{bridge['id']}/threads/{turn.json()['thread_id']}").status_code == 404


def test_a_long_key_listing_is_paged(server: JunctionProcess, admin: httpx.Client) -> None:
    org = new_org(admin, "ui-many-keys")
    for number in range(101):
        assert admin.post("/api/v1/admin/keys", json={"org_id": org["id"], "name": f"k{number}"}).status_code == 201
    with signed_in(server, server.key) as client:
        first = client.get("/ui/keys", params={"org_id": org["id"]}).text
        assert "Page 1 of 2" in first and first.count('href="/ui/keys/key_') == 100
        second = client.get("/ui/keys", params={"org_id": org["id"], "page": "2"}).text
        assert "Page 2 of 2" in second and second.count('href="/ui/keys/key_') == 1
        assert "k0<" in second  # oldest last
