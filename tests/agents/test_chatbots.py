"""Embeddable chatbots through a real server: token minting and scope, an end user's own thread,
reset, JSON and SSE, per-end-user rate limit (Redis), CORS per chatbot, the widget script."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import pytest

from junction.domain.chatbots.tokens import ChatbotClaims, ChatbotTokens
from junction.security.crypto import Cipher, EncryptionKey
from tests.agents.conftest import Upstream
from tests.tenancy.conftest import ENCRYPTION_KEY, Tenant

pytestmark = pytest.mark.slow
MODEL = "openai/gpt-4o-mini"
SHOP = "https://shop.example"


def chatbot(tenant: Tenant, slug: str = "helper", **settings: Any) -> dict[str, Any]:
    body = {"slug": slug, "name": "Helper", "model": MODEL, "prompt": "You help {{plan}} customers.",
            "variables": [{"name": "plan", "required": True}], "type": "chatbot",
            "chatbot": {"allowed_origins": [SHOP], **settings}}
    return tenant.admin.ok("POST", "/api/v1/bridges", body, status=201)


def mint(tenant: Tenant, slug: str, user: str, **fields: Any) -> str:
    body = {"end_user_id": user, "variables": {"plan": "gold"}, **fields}
    return tenant.admin.ok("POST", f"/api/v1/chatbots/{slug}/token", body)["token"]


def say(http: httpx.Client, slug: str, token: str, text: str, **fields: Any) -> httpx.Response:
    return http.post(f"/api/v1/chatbots/{slug}/messages", json={"message": text, **fields},
                     headers={"authorization": f"Bearer {token}", **fields.pop("headers", {})})


def sent_messages(fake: Any) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in fake.last.json()["messages"]]


def test_an_end_user_talks_in_their_own_thread(tenant: Tenant, agents_http: httpx.Client, fake_openai: Any) -> None:
    chatbot(tenant)
    alice, bob = mint(tenant, "helper", "alice"), mint(tenant, "helper", "bob")
    model = Upstream("openai", fake_openai, MODEL)
    model.queue(text="Hi Alice.")
    first = say(agents_http, "helper", alice, "Hello, I am Alice")
    assert first.status_code == 200, first.text
    assert first.json()["message"] == {"role": "assistant", "content": "Hi Alice.", "tool_calls": None}
    assert sent_messages(fake_openai)[0] == ("system", "You help gold customers.")
    model.queue(text="Hi Bob.")
    say(agents_http, "helper", bob, "Hello")
    assert "Hello, I am Alice" not in json.dumps(sent_messages(fake_openai))  # Bob never sees Alice's thread
    model.queue(text="You said you are Alice.")
    again = say(agents_http, "helper", alice, "Who am I?")
    assert again.json()["thread_id"] == first.json()["thread_id"]
    assert ("user", "Hello, I am Alice") in sent_messages(fake_openai)

    reset = agents_http.post("/api/v1/chatbots/helper/reset", headers={"authorization": f"Bearer {alice}"})
    assert reset.status_code == 200 and reset.json()["thread_id"] != first.json()["thread_id"]
    model.queue(text="Fresh start.")
    fresh = say(agents_http, "helper", alice, "Hi again")
    assert fresh.json()["thread_id"] == reset.json()["thread_id"]
    assert sent_messages(fake_openai) == [("system", "You help gold customers."), ("user", "Hi again")]
    # The token is no API key: it reads no thread, calls no other route.
    assert agents_http.get(f"/api/v1/threads/{fresh.json()['thread_id']}",
                           headers={"authorization": f"Bearer {alice}"}).status_code == 401


def test_streamed_answers(tenant: Tenant, agents_http: httpx.Client, fake_openai: Any) -> None:
    chatbot(tenant)
    Upstream("openai", fake_openai, MODEL).queue(text="Streaming works fine.")
    response = say(agents_http, "helper", mint(tenant, "helper", "carol"), "Stream please", stream=True)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    chunks = [json.loads(line[6:]) for line in response.text.split("\n") if line.startswith("data: {")]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == \
        "Streaming works fine."
    assert response.headers["x-junction-thread-id"].startswith("th")


def test_a_token_opens_only_its_own_chatbot(tenant: Tenant, agents_http: httpx.Client, fake_openai: Any) -> None:
    chatbot(tenant, "helper")
    chatbot(tenant, "other")
    token = mint(tenant, "helper", "dave")
    refused = say(agents_http, "other", token, "hi")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "token_not_for_this_chatbot"
    assert say(agents_http, "helper", tenant.chat_key.key, "hi").status_code == 401  # an API key is no token
    assert say(agents_http, "helper", token[:-4] + "AAAA", "hi").status_code == 401  # altered
    assert agents_http.post("/api/v1/chatbots/helper/messages", json={"message": "hi"}).status_code == 401
    # Minting needs an admin key, and a chatbot bridge.
    assert tenant.chat_key.request("POST", "/api/v1/chatbots/helper/token", {"end_user_id": "x"}).status_code == 403
    tenant.admin.ok("POST", "/api/v1/bridges", {"slug": "plain", "name": "P", "model": MODEL}, status=201)
    assert tenant.admin.request("POST", "/api/v1/chatbots/plain/token", {"end_user_id": "x"}).status_code == 404
    assert not fake_openai.requests


def test_an_expired_token_is_a_401(tenant: Tenant, agents_http: httpx.Client) -> None:
    bot = chatbot(tenant)
    cipher = Cipher([EncryptionKey(id="test-1", material=base64.b64decode(ENCRYPTION_KEY))])
    expired = ChatbotTokens(cipher).mint(ChatbotClaims(org_id=tenant.org_id, bridge_id=bot["id"], end_user_id="eve",
                                                       variables={"plan": "gold"}, expires=int(time.time()) - 1))
    response = say(agents_http, "helper", expired, "hi")
    assert response.status_code == 401 and response.json()["error"]["code"] == "chatbot_token_expired"


def test_each_end_user_has_a_rate_limit(tenant: Tenant, agents_http: httpx.Client, fake_openai: Any) -> None:
    chatbot(tenant, rpm_per_end_user=2)
    frank, grace = mint(tenant, "helper", "frank"), mint(tenant, "helper", "grace")
    model = Upstream("openai", fake_openai, MODEL)
    for _ in range(3):
        model.queue(text="ok")
    assert [say(agents_http, "helper", frank, "hi").status_code for _ in range(2)] == [200, 200]
    limited = say(agents_http, "helper", frank, "hi")
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"]["code"] == "end_user_rate_limited"
    assert say(agents_http, "helper", grace, "hi").status_code == 200  # another end user is not limited


def test_cors_per_chatbot(tenant: Tenant, agents_http: httpx.Client, fake_openai: Any) -> None:
    chatbot(tenant, "corsbot")
    preflight = {"access-control-request-method": "POST", "access-control-request-headers": "authorization"}
    ok = agents_http.options("/api/v1/chatbots/corsbot/messages", headers={"origin": SHOP, **preflight})
    assert ok.status_code == 204 and ok.headers["access-control-allow-origin"] == SHOP
    assert "authorization" in ok.headers["access-control-allow-headers"]
    evil = agents_http.options("/api/v1/chatbots/corsbot/messages",
                               headers={"origin": "https://evil.example", **preflight})
    assert evil.status_code == 403 and "access-control-allow-origin" not in evil.headers
    token = mint(tenant, "corsbot", "heidi")
    refused = agents_http.post("/api/v1/chatbots/corsbot/messages", json={"message": "hi"},
                               headers={"authorization": f"Bearer {token}", "origin": "https://evil.example"})
    assert refused.status_code == 403
    Upstream("openai", fake_openai, MODEL).queue(text="hello")
    answered = agents_http.post("/api/v1/chatbots/corsbot/messages", json={"message": "hi"},
                                headers={"authorization": f"Bearer {token}", "origin": SHOP})
    assert answered.status_code == 200 and answered.headers["access-control-allow-origin"] == SHOP
    assert "x-junction-thread-id" in answered.headers["access-control-expose-headers"]


def test_bad_chatbot_settings_are_400s(tenant: Tenant) -> None:
    body = {"slug": "bad", "name": "B", "model": MODEL, "type": "chatbot",
            "chatbot": {"allowed_origins": ["https://shop.example/path"]}}
    response = tenant.admin.request("POST", "/api/v1/bridges", body)
    assert response.status_code == 400 and response.json()["error"]["param"] == "chatbot.allowed_origins[0]"


def test_the_widget_script_is_served(agents_http: httpx.Client) -> None:
    response = agents_http.get("/chatbot/helper/widget.js")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/javascript")
    assert "/api/v1/chatbots/" in response.text and len(response.content) < 16_000


def test_tokens_and_limits_hold_across_two_nodes(agents_server: Any, tenant: Tenant, agents_http: httpx.Client,
                                                 fake_openai: Any, tmp_path: Any) -> None:
    """A second ``junction serve`` on the same stores: it reads the first node's tokens, continues
    the same thread, and the end user's limit counts the requests of both nodes."""
    from junction.testing.server import JunctionProcess
    from tests.agents.conftest import MASTER

    chatbot(tenant, rpm_per_end_user=3)
    token = mint(tenant, "helper", "ivan")
    model = Upstream("openai", fake_openai, MODEL)
    for _ in range(3):
        model.queue(text="ok")
    config = (agents_server.directory / "junction.toml").read_text()
    with JunctionProcess(tmp_path, config, master_key=MASTER, env=agents_server.env) as other, \
            httpx.Client(base_url=other.url, timeout=30) as second:
        answers = [say(client, "helper", token, "hi") for client in (agents_http, second, agents_http, second)]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert len({answer.json()["thread_id"] for answer in answers[:3]}) == 1  # one thread, whichever node
