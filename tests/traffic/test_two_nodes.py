"""Two ``junction serve`` nodes sharing one Redis: 40 concurrent requests from many threads,
split across both, against request, token and budget limits — exactly what fits succeeds."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from junction.schemas.chat import ChatRequest
from junction.testing.server import JunctionProcess
from junction.traffic.estimate import estimate_prompt
from tests.fakes.openai_upstream import FakeOpenAI
from tests.tenancy.conftest import MASTER
from tests.traffic.conftest import (
    INPUT_PRICE,
    MODEL,
    OUTPUT_PRICE,
    TWO_NODES_REDIS_DB,
    Admin,
    chat,
    error_of,
    eventually,
    fire,
    flushed,
    traffic_config,
)

pytestmark = pytest.mark.slow

TEXT = "count the requests"
MAX_TOKENS = 40


def prompt_estimate(text: str = TEXT) -> int:
    request = msgspec.convert({"model": MODEL, "messages": [{"role": "user", "content": text}]}, ChatRequest)
    return estimate_prompt(request)


@pytest.fixture(scope="module")
def nodes(fake_openai_server: FakeOpenAI, traffic_postgres: str,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    store = flushed(TWO_NODES_REDIS_DB)
    config = traffic_config(fake_openai_server, traffic_postgres, f"redis://127.0.0.1:6379/{TWO_NODES_REDIS_DB}")
    first: Path = tmp_path_factory.mktemp("node-a")
    second: Path = tmp_path_factory.mktemp("node-b")
    with JunctionProcess(first, config, master_key=MASTER) as a, JunctionProcess(second, config, master_key=MASTER) as b:
        yield [a.url, b.url]
    store.flushdb()
    store.close()


def test_a_request_limit_admits_exactly_its_count_across_two_nodes(nodes: list[str], fake_openai: FakeOpenAI) -> None:
    admin = Admin(nodes[0])
    key_id, key = admin.key(admin.org("rpm"), rpm=20)

    responses = fire(40, nodes, lambda base: chat(base, key))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 20 + [429] * 20, [(r.status_code, r.headers.get("x-ratelimit-remaining-requests"), r.text[-80:]) for r in responses if r.status_code != 200 or "x-ratelimit-remaining-requests" not in r.headers][:5]
    refused = [response for response in responses if response.status_code == 429]
    for response in refused:
        error = error_of(response)
        assert error["code"] == "rate_limit_exceeded" and error["param"] == "key.rpm", error
        assert "key limit of 20 requests per minute" in error["message"]
        assert 1 <= int(response.headers["retry-after"]) <= 60
        assert response.headers["x-ratelimit-remaining-requests"] == "0"
    answered = [response for response in responses if response.status_code == 200]
    assert all(response.headers["x-ratelimit-limit-requests"] == "20" for response in answered)
    assert sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in answered) == list(range(20))
    assert len(fake_openai.requests) == 20
    assert admin.key_usage(key_id)["requests"] == {"limit": 20, "used": 20, "remaining": 0}


def test_a_token_limit_admits_exactly_what_fits_across_two_nodes(nodes: list[str], fake_openai: FakeOpenAI) -> None:
    reservation = prompt_estimate() + MAX_TOKENS
    for _ in range(40):  # real usage equal to the reservation: settling changes nothing
        fake_openai.script(prompt_tokens=prompt_estimate(), completion_tokens=MAX_TOKENS)
    admin = Admin(nodes[1])
    key_id, key = admin.key(admin.org("tpm"), tpm=20 * reservation + reservation // 2)

    responses = fire(40, nodes, lambda base: chat(base, key, text=TEXT, max_tokens=MAX_TOKENS))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 20 + [429] * 20
    for response in responses:
        if response.status_code == 429:
            error = error_of(response)
            assert error["code"] == "rate_limit_exceeded" and error["param"] == "key.tpm", error
            assert int(response.headers["retry-after"]) >= 1
    usage = admin.key_usage(key_id)["tokens"]
    assert usage["used"] == 20 * reservation <= usage["limit"]


def test_a_budget_admits_exactly_what_fits_across_two_nodes(nodes: list[str], fake_openai: FakeOpenAI) -> None:
    prompt = prompt_estimate()
    cost = prompt * INPUT_PRICE + MAX_TOKENS * OUTPUT_PRICE
    for _ in range(40):  # real usage equal to the reservation
        fake_openai.script(prompt_tokens=prompt, completion_tokens=MAX_TOKENS)
    admin = Admin(nodes[0])
    cap = round(20.5 * cost, 9)
    key_id, key = admin.key(admin.org("budget"), budget_usd=cap, budget_period="day")

    responses = fire(40, nodes, lambda base: chat(base, key, text=TEXT, max_tokens=MAX_TOKENS))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 20 + [429] * 20
    for response in responses:
        if response.status_code == 429:
            error = error_of(response)
            assert error["code"] == "budget_exceeded" and error["param"] == "key.budget_usd", error
    budget = admin.key_usage(key_id)["budget"]
    assert budget["period"] == "day" and budget["limit_usd"] == cap
    assert budget["reserved_usd"] == 0
    assert budget["spent_usd"] == pytest.approx(20 * cost, rel=1e-6)
    assert budget["spent_usd"] <= cap


def test_overspend_stays_within_what_in_flight_calls_add_beyond_their_reservations(
        nodes: list[str], fake_openai: FakeOpenAI) -> None:
    """No ``max_tokens``: each call reserves the default output reservation (1024 tokens) but
    really uses 1500: concurrent calls can overspend, by at most their excess each."""
    prompt = prompt_estimate()
    reserved = prompt * INPUT_PRICE + 1024 * OUTPUT_PRICE
    actual = prompt * INPUT_PRICE + 1500 * OUTPUT_PRICE
    for _ in range(40):
        fake_openai.script(prompt_tokens=prompt, completion_tokens=1500, delay=0.2)
    admin = Admin(nodes[1])
    cap = round(10.5 * reserved, 9)
    key_id, key = admin.key(admin.org("overspend"), budget_usd=cap, budget_period="month")

    responses = fire(40, nodes, lambda base: chat(base, key, text=TEXT))

    admitted = sum(response.status_code == 200 for response in responses)
    assert 1 <= admitted <= 10  # every admission fitted its reservation under the cap
    assert all(response.status_code in (200, 429) for response in responses)
    spent = admin.key_usage(key_id)["budget"]["spent_usd"]
    assert spent == pytest.approx(admitted * actual, rel=1e-6)
    bound = cap + admitted * (actual - reserved)  # the documented bound
    assert spent <= bound + 1e-9
    # How many were in flight together depends on the machine's load; when all ten were, the
    # spend is now past the cap and any further call is refused.
    if spent > cap:
        refused = chat(nodes[0], key, text=TEXT, max_tokens=1)
        assert refused.status_code == 429 and error_of(refused)["code"] == "budget_exceeded"
    assert math.isclose(admin.key_usage(key_id)["budget"]["remaining_usd"], max(cap - spent, 0), abs_tol=1e-9)


def test_an_org_limit_changed_through_the_admin_api_applies_on_both_nodes(nodes: list[str]) -> None:
    """Each worker keeps what a caller's limits make (windows, ledgers, packed script calls):
    a change to the org through either node empties it on every node, so the next requests
    there are checked against the new limits."""
    admin = Admin(nodes[0])
    org_id = admin.org("changing", rpm=1000, budget_usd=100.0, budget_period="day")
    _, key = admin.key(org_id)
    for base in nodes:  # both nodes now hold the plan made from rpm 1000
        answered = chat(base, key)
        assert answered.status_code == 200, answered.text
        assert answered.headers["x-ratelimit-limit-requests"] == "1000"

    admin.call("PATCH", f"/api/v1/admin/orgs/{org_id}", {"rpm": 2})  # two requests already made
    for base in nodes:
        refused = eventually(lambda base=base: (r := chat(base, key)).status_code == 429 and r, seconds=5)
        assert refused, f"{base} still admits past the new org limit"
        assert error_of(refused)["param"] == "org.rpm" and "org limit of 2 requests" in error_of(refused)["message"]

    Admin(nodes[1]).call("PATCH", f"/api/v1/admin/orgs/{org_id}", {"rpm": 500, "budget_usd": 1e-9})
    for base in nodes:  # the budget now refuses what the request limit admits
        refused = eventually(lambda base=base: (r := chat(base, key)).status_code == 429
                             and error_of(r)["code"] == "budget_exceeded" and r, seconds=5)
        assert refused, f"{base} does not apply the new org budget"
        assert error_of(refused)["param"] == "org.budget_usd"
