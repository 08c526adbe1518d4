"""A thread belongs to the credential that started it: another key of the same org can neither
read nor continue it (404, as for a missing thread), while the org's admins and the master key
read every thread of the org. Real server, PostgreSQL and SQLite documents, Redis."""

from __future__ import annotations

import pytest

from tests.tenancy.conftest import Api, Tenant, new_tenant

pytestmark = pytest.mark.slow


@pytest.fixture
def tenant(master: Api) -> Tenant:
    tenant = new_tenant(master, "Owners")
    bridge = {"slug": "helper", "name": "Helper", "model": "openai/gpt-4o-mini", "prompt": "Help."}
    tenant.admin.ok("POST", "/api/v1/bridges", bridge, status=201)
    return tenant


def second_chat_key(master: Api, tenant: Tenant) -> Api:
    issued = master.ok("POST", "/api/v1/admin/keys", {"org_id": tenant.org_id, "name": "other"}, status=201)
    return master.as_key(issued["key"])


def test_another_key_of_the_org_cannot_read_or_continue_a_thread(master: Api, tenant: Tenant) -> None:
    thread_id = tenant.chat_key.ok("POST", "/api/v1/bridges/helper/chat", {"user": "my secret"})["thread_id"]
    other = second_chat_key(master, tenant)
    read = other.request("GET", f"/api/v1/threads/{thread_id}")
    assert read.status_code == 404, read.text
    assert read.json()["error"]["type"] and "my secret" not in read.text
    continued = other.request("POST", "/api/v1/bridges/helper/chat", {"user": "and?", "thread_id": thread_id})
    assert continued.status_code == 404, continued.text
    assert continued.json()["error"]["param"] == "thread_id"
    # the creator still reads and continues it; nothing was added by the refused call
    tenant.chat_key.ok("POST", "/api/v1/bridges/helper/chat", {"user": "more", "thread_id": thread_id})
    mine = tenant.chat_key.ok("GET", f"/api/v1/threads/{thread_id}")
    assert [m["content"] for m in mine["messages"] if m["role"] == "user"] == ["my secret", "more"]
    assert mine["owner"] == f"key:{tenant.chat_key_id}"


def test_the_orgs_admins_and_the_master_key_read_every_thread(master: Api, tenant: Tenant) -> None:
    thread_id = tenant.chat_key.ok("POST", "/api/v1/bridges/helper/chat", {"user": "hello"})["thread_id"]
    for reader in (tenant.admin, master):
        thread = reader.ok("GET", f"/api/v1/threads/{thread_id}")
        assert thread["message_count"] == 2 and thread["owner"] == f"key:{tenant.chat_key_id}"
    # a thread the admin started is the admin's: a chat key of the org cannot read it
    admins = tenant.admin.ok("POST", "/api/v1/bridges/helper/chat", {"user": "ops"})["thread_id"]
    assert tenant.chat_key.request("GET", f"/api/v1/threads/{admins}").status_code == 404
    # ... and one the master key started belongs to no key of the org
    masters = master.ok("POST", "/api/v1/bridges/helper/chat", {"user": "m"}, org_id=tenant.org_id)[
        "thread_id"
    ]
    assert tenant.chat_key.request("GET", f"/api/v1/threads/{masters}").status_code == 404
    assert tenant.admin.ok("GET", f"/api/v1/threads/{masters}")["owner"] == "master"
