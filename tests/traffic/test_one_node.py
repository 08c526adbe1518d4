"""One node on Redis: reservations settled by real usage (JSON and streams), refunds on failure,
org / bridge / model limits named in refusals, a stream that crosses its budget, the unpriced
policy, and the admin surface (limits set through the API, usage shown)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest

from junction.testing.server import JunctionProcess
from tests.fakes.openai_upstream import FakeOpenAI
from tests.tenancy.conftest import MASTER
from tests.traffic.conftest import (
    INPUT_PRICE,
    MODEL,
    ONE_NODE_REDIS_DB,
    OUTPUT_PRICE,
    Admin,
    chat,
    error_of,
    eventually,
    flushed,
    traffic_config,
)

BODY: dict[str, Any] = {"model": MODEL, "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}]}

pytestmark = pytest.mark.slow

LIMITED_MODEL = "openai/gpt-4o"


@pytest.fixture(scope="module")
def node(fake_openai_server: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store = flushed(ONE_NODE_REDIS_DB)
    directory: Path = tmp_path_factory.mktemp("traffic-one")
    config = traffic_config(fake_openai_server, f"sqlite+aiosqlite:///{directory}/documents.db",
                            f"redis://127.0.0.1:6379/{ONE_NODE_REDIS_DB}", extra=f"""
[middleware.rate-limit.models."{LIMITED_MODEL}"]
rpm = 2

[pricing.models."openai/gpt-unpriced-free"]
input = 0.0
output = 0.0
""")
    with JunctionProcess(directory, config, master_key=MASTER) as server:
        yield server.url
    store.flushdb()
    store.close()


@pytest.fixture
def admin(node: str) -> Admin:
    return Admin(node)


def tokens_used(admin: Admin, key_id: str) -> int:
    return admin.key_usage(key_id)["tokens"]["used"]


def test_tokens_reserved_before_the_call_are_settled_to_the_real_usage(
        node: str, admin: Admin, fake_openai: FakeOpenAI) -> None:
    key_id, key = admin.key(admin.org(), tpm=100_000)
    fake_openai.script(prompt_tokens=30, completion_tokens=12)

    answered = chat(node, key, max_tokens=5000)

    assert answered.status_code == 200, answered.text
    remaining = int(answered.headers["x-ratelimit-remaining-tokens"])
    assert answered.headers["x-ratelimit-limit-tokens"] == "100000"
    assert 100_000 - remaining > 5000  # the reservation: the output cap plus the prompt estimate
    assert answered.headers["x-ratelimit-reset-tokens"].endswith("s")
    assert eventually(lambda: tokens_used(admin, key_id) == 42)

    # A stream (OpenAI SDK): settled when it ends, with the usage the upstream reported.
    fake_openai.script(text="a streamed answer", prompt_tokens=25, completion_tokens=100)
    client = openai.OpenAI(base_url=f"{node}/v1", api_key=key)
    chunks = list(client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                                                 stream=True, max_tokens=3000))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "a streamed answer"
    assert eventually(lambda: tokens_used(admin, key_id) == 42 + 125)


def test_a_failed_call_refunds_its_tokens_and_its_budget(node: str, admin: Admin, fake_openai: FakeOpenAI) -> None:
    key_id, key = admin.key(admin.org(), tpm=100_000, budget_usd=1.0, budget_period="day")
    fake_openai.fail_next(500, {"error": {"message": "boom", "type": "server_error"}})

    failed = chat(node, key, max_tokens=2000)

    assert failed.status_code == 502, failed.text
    usage = eventually(lambda: (u := admin.key_usage(key_id))["tokens"]["used"] == 0
                       and u["budget"]["reserved_usd"] == 0 and u)
    # Tokens and budget are refunded; the request still counts (the log of the key's last minute
    # holds every admitted call, failed or not, whether or not the key has an rpm).
    assert usage and usage["budget"]["spent_usd"] == 0 and usage["requests"]["used"] == 1

    fake_openai.script(prompt_tokens=1000, completion_tokens=500)
    assert chat(node, key, max_tokens=2000).status_code == 200
    cost = 1000 * INPUT_PRICE + 500 * OUTPUT_PRICE
    usage = eventually(lambda: (u := admin.key_usage(key_id))["budget"]["reserved_usd"] == 0 and u)
    assert usage and usage["budget"]["spent_usd"] == pytest.approx(cost, rel=1e-6)
    assert usage["tokens"]["used"] == 1500


def test_refusals_name_the_org_bridge_or_model_limit_they_hit(node: str, admin: Admin) -> None:
    org_id = admin.org(rpm=1)
    _, key = admin.key(org_id)
    assert chat(node, key).status_code == 200
    refused = chat(node, key)
    assert refused.status_code == 429
    assert error_of(refused)["param"] == "org.rpm" and "org limit of 1 requests" in error_of(refused)["message"]
    assert admin.call("GET", f"/api/v1/admin/orgs/{org_id}")["usage"]["requests"] == {
        "limit": 1, "used": 1, "remaining": 0}

    other = admin.org()
    bridge = admin.call("POST", "/api/v1/bridges", {"org_id": other, "slug": "capped", "name": "Capped",
                                                     "model": MODEL, "tpm": 50}, status=201)
    assert bridge["tpm"] == 50
    _, bridge_key = admin.key(other)
    refused = chat(node, bridge_key, model="bridge/capped", max_tokens=100)
    assert refused.status_code == 429 and error_of(refused)["param"] == "bridge.tpm", refused.text
    answered = chat(node, bridge_key, model="bridge/capped", max_tokens=10)
    assert answered.status_code == 200 and answered.headers["x-ratelimit-limit-tokens"] == "50"
    shown = admin.call("GET", f"/api/v1/bridges/{bridge['id']}")["usage"]["tokens"]
    assert shown["limit"] == 50 and shown["used"] > 0

    _, model_key = admin.key(admin.org())
    statuses = [chat(node, model_key, model=LIMITED_MODEL) for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert error_of(statuses[2])["param"] == "model.rpm"


def test_a_stream_that_crosses_its_budget_finishes_and_the_next_call_is_refused(
        node: str, admin: Admin, fake_openai: FakeOpenAI) -> None:
    """Decided: finished, not cut (README); the overspend is what it used beyond its reservation."""
    cap = 0.001
    key_id, key = admin.key(admin.org(), budget_usd=cap, budget_period="month")
    fake_openai.script(text="long " * 50, prompt_tokens=100, completion_tokens=5000)  # $0.003015

    with httpx.stream("POST", f"{node}/v1/chat/completions", timeout=20, headers={"authorization": f"Bearer {key}"},
                      json={"model": MODEL, "stream": True, "max_tokens": 1000,
                            "messages": [{"role": "user", "content": "write a lot"}]}) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]" and not any('"error"' in line for line in lines)
    text = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                   for line in lines[:-1] if json.loads(line[6:])["choices"])
    assert text == "long " * 50

    spent = eventually(lambda: admin.key_usage(key_id)["budget"]["spent_usd"])
    assert spent == pytest.approx(100 * INPUT_PRICE + 5000 * OUTPUT_PRICE, rel=1e-6) and spent > cap
    refused = chat(node, key, max_tokens=1)
    assert refused.status_code == 429 and error_of(refused)["code"] == "budget_exceeded"
    assert 1 <= int(refused.headers["retry-after"]) <= 31 * 86400
    assert admin.key_usage(key_id)["budget"]["remaining_usd"] == 0


def test_a_model_without_a_price_is_refused_where_a_budget_applies(node: str, admin: Admin) -> None:
    _, budgeted = admin.key(admin.org(), budget_usd=5.0, budget_period="day")
    refused = chat(node, budgeted, model="openai/gpt-4o-mystery")
    assert refused.status_code == 403
    assert error_of(refused)["code"] == "model_unpriced" and error_of(refused)["param"] == "model"
    assert "openai/gpt-4o-mystery" in error_of(refused)["message"]
    # A price from [pricing.models] is a price, even at $0; without a budget nothing is refused.
    assert chat(node, budgeted, model="openai/gpt-unpriced-free").status_code == 200
    _, unbudgeted = admin.key(admin.org())
    assert chat(node, unbudgeted, model="openai/gpt-4o-mystery").status_code == 200


def test_limits_are_validated_and_patchable_through_the_admin_api(admin: Admin) -> None:
    org_id = admin.org()
    for body, param in (({"rpm": -1}, "rpm"), ({"budget_usd": -0.5}, "budget_usd"), ({"tpm": 2**31}, "tpm")):
        bad = httpx.patch(f"{admin.base}/api/v1/admin/orgs/{org_id}", json=body, timeout=10,
                          headers={"authorization": f"Bearer {MASTER}"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == param, bad.text
    bad = httpx.post(f"{admin.base}/api/v1/admin/orgs", json={"name": "x", "budget_period": "week"}, timeout=10,
                     headers={"authorization": f"Bearer {MASTER}"})
    assert bad.status_code == 400 and "budget_period" in bad.text
    patched = admin.call("PATCH", f"/api/v1/admin/orgs/{org_id}", {"tpm": 900, "budget_usd": 2.5,
                                                                    "budget_period": "month"})
    assert (patched["tpm"], patched["budget_usd"], patched["budget_period"]) == (900, 2.5, "month")
    shown = admin.call("GET", f"/api/v1/admin/orgs/{org_id}")["usage"]
    assert shown["tokens"] == {"limit": 900, "used": 0, "remaining": 900}
    assert shown["budget"]["limit_usd"] == 2.5 and shown["budget"]["period"] == "month"
    assert shown["budget"]["spent_usd"] == 0 and shown["budget"]["resets_at"].endswith("T00:00:00Z")


def test_the_anthropic_ingress_gets_the_same_headers_and_refusals(node: str, admin: Admin) -> None:
    _, key = admin.key(admin.org(), rpm=1, tpm=100_000)
    body = {"model": MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    answered = httpx.post(f"{node}/v1/messages", json=body, headers=headers, timeout=20)
    assert answered.status_code == 200, answered.text
    assert answered.headers["x-ratelimit-remaining-requests"] == "0"
    refused = httpx.post(f"{node}/v1/messages", json=body, headers=headers, timeout=20)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert refused.json()["type"] == "error" and refused.json()["error"]["type"] == "rate_limit_error"
    # ... and under Anthropic's names too, the reset as an RFC 3339 time, on answers and refusals.
    for response in (answered, refused):
        assert response.headers["anthropic-ratelimit-requests-limit"] == "1"
        assert response.headers["anthropic-ratelimit-requests-remaining"] == "0"
        reset = datetime.fromisoformat(response.headers["anthropic-ratelimit-requests-reset"].replace("Z", "+00:00"))
        assert timedelta(0) < reset - datetime.now(UTC) <= timedelta(seconds=61)
        assert response.headers["anthropic-ratelimit-tokens-limit"] == "100000"
    openai_path = chat(node, key)
    assert "anthropic-ratelimit-requests-limit" not in openai_path.headers


def assert_sdks_do_not_retry(node: str, key: str) -> None:
    """The official SDKs as shipped (two retries on a 429 unless told otherwise) send one request
    each for a refusal that says not to retry."""
    sent: list[Any] = []
    hooks = {"request": [sent.append]}
    with openai.OpenAI(base_url=f"{node}/v1", api_key=key, max_retries=2,
                       http_client=httpx2.Client(event_hooks=hooks)) as openai_client, \
            anthropic.Anthropic(base_url=node, api_key=key, max_retries=2,
                                http_client=httpx2.Client(event_hooks=hooks)) as anthropic_client:
        with pytest.raises(openai.RateLimitError):
            openai_client.chat.completions.create(**BODY)
        with pytest.raises(anthropic.RateLimitError):
            anthropic_client.messages.create(**BODY)
    assert len(sent) == 2  # one request each: no retry in vain


def test_a_budget_refusal_says_whether_a_retry_can_help(node: str, admin: Admin, fake_openai: FakeOpenAI) -> None:
    """Held by a call in flight, the room comes back when it ends: Retry-After 1, and the SDKs'
    own retries may get through. Spent, only the next period helps: x-should-retry false (which
    the SDKs obey), Retry-After until the reset. More than the whole budget: never."""
    key_id, key = admin.key(admin.org(), budget_usd=0.001, budget_period="day")  # ~$0.0006 a call reserves
    fake_openai.script(delay=2.0, prompt_tokens=10, completion_tokens=5)
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(chat, node, key, max_tokens=1000)
        assert eventually(lambda: admin.key_usage(key_id)["budget"]["reserved_usd"] > 0)
        held = chat(node, key, max_tokens=1000)
        assert held.status_code == 429 and error_of(held)["code"] == "budget_exceeded"
        assert held.headers["retry-after"] == "1" and "x-should-retry" not in held.headers
        assert "held by calls in flight" in error_of(held)["message"]
        assert slow.result().status_code == 200
    assert eventually(lambda: admin.key_usage(key_id)["budget"]["reserved_usd"] == 0)
    fake_openai.script(prompt_tokens=100, completion_tokens=5000)  # $0.003015: past the budget
    assert chat(node, key, max_tokens=1000).status_code == 200
    assert eventually(lambda: admin.key_usage(key_id)["budget"]["remaining_usd"] == 0)

    spent = chat(node, key, max_tokens=1000)
    assert spent.status_code == 429 and spent.headers["x-should-retry"] == "false"
    assert 1 <= int(spent.headers["retry-after"]) <= 86400
    assert "held by" not in error_of(spent)["message"] and "spent leaves less" in error_of(spent)["message"]
    assert_sdks_do_not_retry(node, key)

    _, small = admin.key(admin.org(), budget_usd=0.0001)  # a call with max_tokens 1000 may cost $0.0006
    never = chat(node, small, max_tokens=1000)
    assert never.status_code == 429 and never.headers["x-should-retry"] == "false"
    assert "retry-after" not in never.headers and "lower max_tokens" in error_of(never)["message"]
    assert chat(node, small, max_tokens=10).status_code == 200


def test_a_request_that_can_never_fit_its_limit_is_not_retried(node: str, admin: Admin) -> None:
    """More tokens than the whole per-minute limit, or a limit of 0 requests: x-should-retry
    false, no Retry-After (the SDKs would wait a minute and fail again)."""
    _, key = admin.key(admin.org(), tpm=200)
    too_big = chat(node, key, max_tokens=1000)
    assert too_big.status_code == 429 and error_of(too_big)["param"] == "key.tpm"
    assert too_big.headers["x-should-retry"] == "false" and "retry-after" not in too_big.headers
    assert "needs" in error_of(too_big)["message"] and "lower max_tokens" in error_of(too_big)["message"]
    assert_sdks_do_not_retry(node, key)
    assert chat(node, key, max_tokens=50).status_code == 200

    _, blocked = admin.key(admin.org(), rpm=0)
    refused = chat(node, blocked)
    assert refused.status_code == 429 and error_of(refused)["param"] == "key.rpm"
    assert refused.headers["x-should-retry"] == "false" and "retry-after" not in refused.headers
