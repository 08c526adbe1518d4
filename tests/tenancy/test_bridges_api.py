"""Bridges (CRUD, versions, publish and rollback, templating, params, bridge-as-model, paused) and
threads (history, last N, Redis-served reads) through a real server."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import msgspec
import pytest
import redis

from junction.stores.documents.protocol import Thread
from tests.fakes.openai_upstream import FakeOpenAI
from tests.tenancy.conftest import Api, Tenant, new_tenant

pytestmark = pytest.mark.slow


def eventually(check: Callable[[], Any], within: float = 1.0) -> Any:
    """Poll ``check`` until it returns a truthy value; changes reach workers through the bus."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "not seen within the deadline"
        time.sleep(0.02)


def greeter(tenant: Tenant, slug: str = "greeter", **fields: Any) -> dict[str, Any]:
    body = {
        "slug": slug,
        "name": "Greeter",
        "model": "openai/gpt-4o-mini",
        "prompt": "Greet {{name}} in {{language}}.",
        "variables": [{"name": "name", "required": True}, {"name": "language", "default": "French"}],
        "params": {"temperature": 0.2, "max_tokens": 50},
        **fields,
    }
    return tenant.admin.ok("POST", "/api/v1/bridges", body, status=201)


def system_prompt(fake: FakeOpenAI) -> str:
    return fake.last.json()["messages"][0]["content"]


@pytest.fixture
def tenant(master: Api) -> Tenant:
    return new_tenant(master, "Bridges")


def test_bridge_crud(tenant: Tenant) -> None:
    bridge = greeter(tenant)
    assert bridge["org_id"] == tenant.org_id and bridge["status"] == "active"
    assert tenant.admin.ok("GET", f"/api/v1/bridges/{bridge['id']}")["slug"] == "greeter"
    assert tenant.admin.ok("GET", "/api/v1/bridges/greeter")["id"] == bridge["id"]
    assert [b["id"] for b in tenant.admin.ok("GET", "/api/v1/bridges")] == [bridge["id"]]
    patched = tenant.admin.ok("PATCH", f"/api/v1/bridges/{bridge['id']}", {"name": "Hello bot"})
    assert patched["name"] == "Hello bot" and patched["prompt"] == bridge["prompt"]
    tenant.admin.ok("DELETE", f"/api/v1/bridges/{bridge['id']}", status=204)
    assert tenant.admin.request("GET", f"/api/v1/bridges/{bridge['id']}").status_code == 404


def test_bridge_input_errors_name_the_field(tenant: Tenant) -> None:
    greeter(tenant)
    duplicate = tenant.admin.request(
        "POST", "/api/v1/bridges", {"slug": "greeter", "name": "x", "model": "openai/gpt-4o-mini"}
    )
    assert duplicate.status_code == 409
    for body, param in (
        ({"slug": "b1", "name": "x", "model": "nosuch/model"}, "model"),
        ({"slug": "b2", "name": "x", "model": "bridge/greeter"}, "model"),
        ({"slug": "b3", "name": "x", "model": "openai/gpt-4o", "fallback_model": "zz"}, "fallback_model"),
        ({"slug": "Not A Slug", "name": "x", "model": "openai/gpt-4o"}, "slug"),
        ({"slug": "b4", "name": "x", "model": "openai/gpt-4o", "status": "sleeping"}, "status"),
    ):
        response = tenant.admin.request("POST", "/api/v1/bridges", body)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == param


def test_chat_fills_the_prompt_and_keeps_a_thread(
    tenant: Tenant, fake_openai: FakeOpenAI, tenancy_redis: redis.Redis
) -> None:
    greeter(tenant)
    first = tenant.chat_key.ok(
        "POST", "/api/v1/bridges/greeter/chat", {"user": "hello", "variables": {"name": "Ann"}}
    )
    assert first["message"] == {"role": "assistant", "content": "echo: hello", "tool_calls": None}
    assert first["model"] == "openai/gpt-4o-mini" and first["bridge_version"] is None
    assert first["usage"]["total_tokens"] == 18
    sent = fake_openai.last.json()
    assert sent["messages"][0] == {"role": "system", "content": "Greet Ann in French."}
    assert sent["temperature"] == 0.2 and sent["max_tokens"] == 50 and "variables" not in sent
    thread_id = first["thread_id"]
    for turn in range(2, 5):
        reply = tenant.chat_key.ok(
            "POST",
            "/api/v1/bridges/greeter/chat",
            {"user": f"turn {turn}", "variables": {"name": "Ann"}, "thread_id": thread_id},
        )
        assert reply["thread_id"] == thread_id
    # history_messages = 4: the system prompt, the last four messages, then the new one
    assert [m["content"] for m in fake_openai.last.json()["messages"]] == [
        "Greet Ann in French.",
        "turn 2",
        "echo: turn 2",
        "turn 3",
        "echo: turn 3",
        "turn 4",
    ]
    thread = tenant.chat_key.ok("GET", f"/api/v1/threads/{thread_id}")
    assert thread["bridge_id"] and thread["message_count"] == 8
    assert [m["content"] for m in thread["messages"]][:2] == ["hello", "echo: hello"]
    # reads are served from Redis: the thread is there, complete
    cached = tenancy_redis.get(f"junction:thread:{tenant.org_id}:{thread_id}")
    assert cached is not None and msgspec.msgpack.decode(cached, type=Thread).message_count == 8


def test_required_variable_missing_is_a_400_naming_it(tenant: Tenant) -> None:
    greeter(tenant)
    response = tenant.chat_key.request("POST", "/api/v1/bridges/greeter/chat", {"user": "hi"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "variables.name" and "name" in error["message"]
    response = tenant.chat_key.chat("bridge/greeter")
    assert response.status_code == 400 and response.json()["error"]["param"] == "variables.name"


def test_bridge_as_model_merges_params_under_request_fields(tenant: Tenant, fake_openai: FakeOpenAI) -> None:
    greeter(tenant)
    response = tenant.chat_key.chat(
        "bridge/greeter", "yo", variables={"name": "Bo", "language": "Dutch"}, temperature=0.9
    )
    assert response.status_code == 200, response.text
    sent = fake_openai.last.json()
    assert sent["model"] == "gpt-4o-mini"
    assert sent["messages"] == [
        {"role": "system", "content": "Greet Bo in Dutch."},
        {"role": "user", "content": "yo"},
    ]
    assert sent["temperature"] == 0.9 and sent["max_tokens"] == 50 and "variables" not in sent


def test_versions_publish_and_rollback(tenant: Tenant, fake_openai: FakeOpenAI) -> None:
    bridge = greeter(tenant, prompt="v1 prompt", variables=[])
    path = f"/api/v1/bridges/{bridge['id']}"
    assert tenant.admin.ok("POST", f"{path}/versions", status=201)["version"] == 1
    tenant.admin.ok("POST", f"{path}/versions/1/publish")
    tenant.admin.ok("PATCH", path, {"prompt": "v2 prompt"})  # edits the draft only
    tenant.admin.ok("POST", f"{path}/versions", status=201)

    def answered_by(prompt: str, version: int) -> bool:
        reply = tenant.chat_key.ok("POST", f"{path}/chat", {"user": "x"})
        return system_prompt(fake_openai) == prompt and reply["bridge_version"] == version

    eventually(lambda: answered_by("v1 prompt", 1))
    tenant.admin.ok("POST", f"{path}/versions/2/publish")
    eventually(lambda: answered_by("v2 prompt", 2))
    tenant.admin.ok("POST", f"{path}/versions/1/publish")  # roll back
    eventually(lambda: answered_by("v1 prompt", 1))
    versions = tenant.admin.ok("GET", f"{path}/versions")
    assert [v["version"] for v in versions] == [1, 2]
    missing = tenant.admin.request("POST", f"{path}/versions/9/publish")
    assert missing.status_code in (400, 404)


def test_paused_bridge_is_403(tenant: Tenant) -> None:
    bridge = greeter(tenant, prompt="p", variables=[])
    tenant.admin.ok("PATCH", f"/api/v1/bridges/{bridge['id']}", {"status": "paused"})

    def paused() -> bool:
        response = tenant.chat_key.request("POST", "/api/v1/bridges/greeter/chat", {"user": "x"})
        return response.status_code == 403 and response.json()["error"]["code"] == "bridge_paused"

    eventually(paused)
    assert tenant.chat_key.chat("bridge/greeter").status_code == 403
    tenant.admin.ok("PATCH", f"/api/v1/bridges/{bridge['id']}", {"status": "active"})
    eventually(lambda: tenant.chat_key.chat("bridge/greeter").status_code == 200)


def test_fallback_model_answers_when_the_primary_fails(tenant: Tenant, fake_openai: FakeOpenAI) -> None:
    greeter(tenant, prompt="p", variables=[], model="openai/gpt-4o", fallback_model="openai/gpt-4o-mini")
    fake_openai.fail_next(500, {"error": {"message": "boom", "type": "server_error"}})
    response = tenant.chat_key.request("POST", "/api/v1/bridges/greeter/chat", {"user": "x"})
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "openai/gpt-4o-mini"
    assert response.headers["x-junction-fallback"] == "true"


def test_streamed_bridge_chat_records_the_thread(tenant: Tenant, http: httpx.Client) -> None:
    greeter(tenant, prompt="p", variables=[])
    with http.stream(
        "POST",
        "/api/v1/bridges/greeter/chat",
        json={"user": "stream me", "stream": True},
        headers={"authorization": f"Bearer {tenant.chat_key.key}"},
    ) as response:
        assert response.status_code == 200
        thread_id = response.headers["x-junction-thread-id"]
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    text = "".join(
        json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for line in lines[:-1]
        if json.loads(line[6:])["choices"]
    )
    assert text == "echo: stream me"
    thread = eventually(
        lambda: (t := tenant.chat_key.ok("GET", f"/api/v1/threads/{thread_id}"))["message_count"] == 2 and t
    )
    assert [m["content"] for m in thread["messages"]] == ["stream me", "echo: stream me"]


def test_thread_of_another_bridge_is_not_found(tenant: Tenant) -> None:
    greeter(tenant, prompt="p", variables=[])
    greeter(tenant, slug="other", prompt="q", variables=[])
    first = tenant.chat_key.ok("POST", "/api/v1/bridges/greeter/chat", {"user": "x"})
    response = tenant.chat_key.request(
        "POST", "/api/v1/bridges/other/chat", {"user": "y", "thread_id": first["thread_id"]}
    )
    assert response.status_code == 404
    response = tenant.chat_key.request(
        "POST", "/api/v1/bridges/greeter/chat", {"user": "y", "thread_id": "th_nope"}
    )
    assert response.status_code == 404


def test_bridge_tools_and_response_format_reach_the_upstream(tenant: Tenant, fake_openai: FakeOpenAI) -> None:
    tool = {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
    }
    greeter(tenant, prompt="p", variables=[], tools=[tool], response_format={"type": "json_object"})
    fake_openai.script(tool_calls=[{"id": "call_1", "name": "lookup", "arguments": "{}"}])
    first = tenant.chat_key.ok("POST", "/api/v1/bridges/greeter/chat", {"user": "look it up"})
    sent = fake_openai.last.json()
    assert sent["tools"] == [tool] and sent["response_format"] == {"type": "json_object"}
    assert first["message"]["tool_calls"][0]["function"]["name"] == "lookup"
    # the next turn sends the history without the unanswered tool call (providers refuse it)
    tenant.chat_key.ok(
        "POST", "/api/v1/bridges/greeter/chat", {"user": "next", "thread_id": first["thread_id"]}
    )
    assert [m["role"] for m in fake_openai.last.json()["messages"]] == ["system", "user", "user"]
    thread = tenant.chat_key.ok("GET", f"/api/v1/threads/{first['thread_id']}")
    assert thread["messages"][1]["tool_calls"][0]["id"] == "call_1"  # the thread itself keeps it


def test_master_key_names_the_org_of_a_bridge(master: Api, fake_openai: FakeOpenAI) -> None:
    one, two = new_tenant(master, "Slug one"), new_tenant(master, "Slug two")
    greeter(one, slug="same", prompt="prompt of one", variables=[])
    greeter(two, slug="same", prompt="prompt of two", variables=[])
    ambiguous = master.chat("bridge/same")
    assert ambiguous.status_code == 400 and ambiguous.json()["error"]["param"] == "org_id"
    response = master.client.post(
        "/v1/chat/completions",
        json={"model": "bridge/same", "messages": [{"role": "user", "content": "x"}]},
        headers={"authorization": f"Bearer {master.key}", "x-junction-org-id": two.org_id},
    )
    assert response.status_code == 200, response.text
    assert system_prompt(fake_openai) == "prompt of two"
    reply = master.ok("POST", "/api/v1/bridges/same/chat", {"user": "x"}, org_id=one.org_id)
    assert system_prompt(fake_openai) == "prompt of one" and reply["thread_id"]


def test_bridge_through_the_anthropic_ingress(
    tenant: Tenant, http: httpx.Client, fake_openai: FakeOpenAI
) -> None:
    greeter(tenant, prompt="Be brief.", variables=[])
    response = http.post(
        "/v1/messages",
        headers={"x-api-key": tenant.chat_key.key, "anthropic-version": "2023-06-01"},
        json={"model": "bridge/greeter", "max_tokens": 64, "messages": [{"role": "user", "content": "hey"}]},
    )
    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"] == "echo: hey"
    assert system_prompt(fake_openai) == "Be brief."


def test_a_keys_model_allow_list_applies_to_the_bridges_model(tenant: Tenant) -> None:
    greeter(tenant, slug="mini", prompt="p", variables=[])
    greeter(tenant, slug="big", prompt="p", variables=[], model="openai/gpt-4o")
    issued = tenant.admin.ok(
        "POST", "/api/v1/admin/keys", {"name": "mini only", "models": ["openai/gpt-4o-mini"]}, status=201
    )
    limited = tenant.admin.as_key(issued["key"])
    assert limited.chat("bridge/mini").status_code == 200
    refused = limited.chat("bridge/big")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "model_not_allowed"
