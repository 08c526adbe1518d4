"""Queued jobs on the embedded default (TaskIQ's in-memory broker inside ``junction serve``):
submit, poll, idempotency, cancel, org scoping, dead letters, webhooks signed two ways, TTL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from junction.testing.server import JunctionProcess
from tests.fakes.openai_upstream import FakeOpenAI
from tests.jobs.conftest import (
    STANDARD_WEBHOOKS_SECRET,
    WEBHOOK_SECRET,
    WebhookReceiver,
    chat_body,
    client,
    jobs_config,
    wait_for,
)


@pytest.fixture(scope="module")
def server(fake_openai_server: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JunctionProcess]:
    config = jobs_config(fake_openai_server, extra="result_ttl_seconds = 2\n")
    with JunctionProcess(tmp_path_factory.mktemp("jobs"), config) as process:
        yield process


def test_submit_then_poll_the_result(server: JunctionProcess, fake_openai: FakeOpenAI) -> None:
    fake_openai.script(text="queued hello", prompt_tokens=5, completion_tokens=2)
    with client(server.url) as http:
        submitted = http.post("/api/v1/jobs", json={"request": chat_body("hi there")})
        assert submitted.status_code == 202, submitted.text
        assert submitted.json()["status"] == "queued" and submitted.json()["id"].startswith("job_")
        job = wait_for(http, submitted.json()["id"])
    assert job["status"] == "succeeded" and job["attempts"] == 1 and job["error"] is None
    assert job["result"]["choices"][0]["message"]["content"] == "queued hello"
    assert job["result"]["usage"]["total_tokens"] == 7
    assert fake_openai.last.json()["messages"] == [{"role": "user", "content": "hi there"}]
    assert job["expires_at"] - job["finished_at"] == 2


def test_async_header_on_chat_completions_makes_a_job(server: JunctionProcess, fake_openai: FakeOpenAI) -> None:
    fake_openai.script(text="from async")
    with client(server.url) as http:
        response = http.post("/v1/chat/completions", json=chat_body(), headers={"x-junction-async": "true"})
        assert response.status_code == 202, response.text
        job = wait_for(http, response.json()["id"])
        assert job["result"]["choices"][0]["message"]["content"] == "from async"
        # Without the header the same route answers at once, as always.
        assert http.post("/v1/chat/completions", json=chat_body()).status_code == 200


def test_idempotency_key_same_body_same_job_other_body_409(server: JunctionProcess, fake_openai: FakeOpenAI) -> None:
    with client(server.url) as http:
        body = {"request": chat_body("once"), "idempotency_key": "order-42"}
        first = http.post("/api/v1/jobs", json=body)
        again = http.post("/api/v1/jobs", json=body)
        assert first.status_code == again.status_code == 202
        assert first.json()["id"] == again.json()["id"]
        header = http.post("/api/v1/jobs", json={"request": chat_body("once")},
                           headers={"idempotency-key": "order-42"})
        assert header.json()["id"] == first.json()["id"]  # the header is the same key
        clash = http.post("/api/v1/jobs", json={"request": chat_body("twice"), "idempotency_key": "order-42"})
        assert clash.status_code == 409
        assert clash.json()["error"]["code"] == "idempotency_key_reused"
        assert clash.json()["error"]["param"] == "idempotency_key"
        wait_for(http, first.json()["id"])
    assert [r.json()["messages"][0]["content"] for r in fake_openai.requests
            if r.path == "/v1/chat/completions"] == ["once"]  # run once, not three times


def test_bad_submissions_are_clear_400s(server: JunctionProcess) -> None:
    with client(server.url) as http:
        cases = [
            ({"request": {**chat_body(), "stream": True}}, "request.stream"),
            ({"request": {"model": "openai/gpt-4o"}}, "request.messages"),
            ({"webhook": {"url": "http://x"}}, "request"),
            ({"request": chat_body(), "webhook": {"url": "ftp://example.com/x"}}, "webhook.url"),
            ({"request": chat_body(), "surprise": 1}, None),  # the message names it
        ]
        for body, param in cases:
            response = http.post("/api/v1/jobs", json=body)
            assert response.status_code == 400, (body, response.text)
            error = response.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}
            assert error["param"] == param, (body, error)
            assert (param or "surprise") in error["message"]
        assert http.get("/api/v1/jobs/job_nope").status_code == 404
        assert http.get("/api/v1/jobs?status=sleeping").json()["error"]["param"] == "status"
        assert http.get("/api/v1/jobs?limit=0").status_code == 400
        assert http.post("/api/v1/jobs", json={"request": chat_body()},
                         headers={"authorization": "Bearer nope"}).status_code == 401


def test_cancel_a_running_job_keeps_it_cancelled(server: JunctionProcess, fake_openai: FakeOpenAI) -> None:
    fake_openai.script(text="too late", delay=1.0)
    with client(server.url) as http:
        job_id = http.post("/api/v1/jobs", json={"request": chat_body()}).json()["id"]
        wait_for(http, job_id, ("running",))
        cancelled = http.delete(f"/api/v1/jobs/{job_id}")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        time.sleep(1.3)  # the upstream answers; the outcome must not overwrite the cancel
        job = http.get(f"/api/v1/jobs/{job_id}").json()
        assert job["status"] == "cancelled" and job["result"] is None
        listed = http.get("/api/v1/jobs", params={"status": "cancelled"}).json()["data"]
        assert job_id in [item["id"] for item in listed]


def test_jobs_are_org_scoped(server: JunctionProcess, fake_openai: FakeOpenAI) -> None:
    with client(server.url) as admin:
        keys = []
        for name in ("acme", "globex"):
            org = admin.post("/api/v1/admin/orgs", json={"name": name}).json()
            keys.append(admin.post("/api/v1/admin/keys", json={"org_id": org["id"], "name": "k"}).json()["key"])
    with client(server.url, keys[0]) as acme, client(server.url, keys[1]) as globex:
        job_id = acme.post("/api/v1/jobs", json={"request": chat_body()}).json()["id"]
        wait_for(acme, job_id)
        assert globex.get(f"/api/v1/jobs/{job_id}").status_code == 404
        assert globex.delete(f"/api/v1/jobs/{job_id}").status_code == 404
        assert job_id not in [job["id"] for job in globex.get("/api/v1/jobs").json()["data"]]
        assert job_id in [job["id"] for job in acme.get("/api/v1/jobs").json()["data"]]


def test_a_job_that_keeps_failing_is_dead_lettered(server: JunctionProcess, fake_openai: FakeOpenAI) -> None:
    for _ in range(2):  # max_attempts = 2 (one deployment: the routing policy has nowhere else to go)
        fake_openai.fail_next(500, {"error": {"message": "boom", "type": "server_error"}})
    with client(server.url) as http:
        job_id = http.post("/api/v1/jobs", json={"request": chat_body()}).json()["id"]
        job = wait_for(http, job_id)
        assert job["status"] == "failed" and job["dead_letter"] is True and job["attempts"] == 2
        assert job["error"]["type"] == "upstream_error" and job["error"]["message"]
        dead = http.get("/api/v1/jobs", params={"dead_letter": "true"}).json()["data"]
        assert job_id in [item["id"] for item in dead]
        # A request the provider refuses is not retried: failed at once, not dead-lettered.
        fake_openai.fail_next(400, {"error": {"message": "bad model", "type": "invalid_request_error"}})
        refused = wait_for(http, http.post("/api/v1/jobs", json={"request": chat_body()}).json()["id"])
        assert (refused["status"], refused["dead_letter"], refused["attempts"]) == ("failed", False, 1)


def test_webhook_is_signed_both_ways_and_retried(server: JunctionProcess, fake_openai: FakeOpenAI,
                                                 receiver: WebhookReceiver) -> None:
    fake_openai.script(text="for the hook")
    receiver.fail_next(500, {"down": True})
    with client(server.url) as http:
        job_id = http.post("/api/v1/jobs", json={"request": chat_body(), "webhook": {"url": receiver.hook_url}}
                           ).json()["id"]
        job = wait_for(http, job_id, webhook="delivered")
    assert [attempt["status"] for attempt in job["webhook"]["attempts"]] == [500, 200]
    delivered = receiver.deliveries()[-1]
    headers = delivered.headers
    # Standard Webhooks, verified by its own library...
    payload = Webhook(STANDARD_WEBHOOKS_SECRET).verify(delivered.body, headers)
    assert payload["id"] == job_id and payload["status"] == "succeeded"
    assert payload["result"]["choices"][0]["message"]["content"] == "for the hook"
    assert headers["webhook-id"] == job_id
    # ...and Junction's own scheme (DESIGN §7).
    import hashlib
    import hmac

    expected = hmac.new(WEBHOOK_SECRET.encode(), headers["x-junction-timestamp"].encode() + b"." + delivered.body,
                        hashlib.sha256).hexdigest()
    assert headers["x-junction-signature"] == "sha256=" + expected
    assert abs(int(headers["x-junction-timestamp"]) - time.time()) < 30
    # A tampered body fails verification.
    with pytest.raises(WebhookVerificationError):
        Webhook(STANDARD_WEBHOOKS_SECRET).verify(delivered.body.replace(b"hook", b"hack"), headers)


def test_webhook_dead_letter_after_the_limit(server: JunctionProcess, fake_openai: FakeOpenAI,
                                             receiver: WebhookReceiver) -> None:
    for _ in range(3):
        receiver.fail_next(503, {"down": True})
    with client(server.url) as http:
        job_id = http.post("/api/v1/jobs", json={"request": chat_body(), "webhook": {"url": receiver.hook_url}}
                           ).json()["id"]
        job = wait_for(http, job_id, webhook="dead")
        assert job["status"] == "succeeded"
        assert [attempt["status"] for attempt in job["webhook"]["attempts"]] == [503, 503, 503]
        assert all(attempt["error"] == "HTTP 503" for attempt in job["webhook"]["attempts"])
        dead = http.get("/api/v1/jobs", params={"webhook_status": "dead"}).json()["data"]
        assert job_id in [item["id"] for item in dead]
    assert len(receiver.deliveries()) == 3


def test_org_webhook_secret_set_through_the_admin_api(server: JunctionProcess, fake_openai: FakeOpenAI,
                                                      receiver: WebhookReceiver) -> None:
    org_secret = "org-secret-abcdefghijklmnop"
    with client(server.url) as admin:
        org = admin.post("/api/v1/admin/orgs", json={"name": "hooks"}).json()
        key = admin.post("/api/v1/admin/keys", json={"org_id": org["id"], "name": "k"}).json()["key"]
        assert admin.put(f"/api/v1/admin/orgs/{org['id']}/webhook-secret", json={"secret": "short"}
                         ).status_code == 400
        assert admin.put(f"/api/v1/admin/orgs/{org['id']}/webhook-secret", json={"secret": org_secret}
                         ).status_code == 204
    with client(server.url, key) as http:
        job_id = http.post("/api/v1/jobs", json={"request": chat_body(), "webhook": {"url": receiver.hook_url}}
                           ).json()["id"]
        wait_for(http, job_id, webhook="delivered")
    import base64

    delivered = receiver.deliveries()[-1]
    Webhook("whsec_" + base64.b64encode(org_secret.encode()).decode()).verify(delivered.body, delivered.headers)
    with pytest.raises(WebhookVerificationError):  # not the server-wide one
        Webhook(STANDARD_WEBHOOKS_SECRET).verify(delivered.body, delivered.headers)


def test_results_expire_after_the_ttl(server: JunctionProcess, fake_openai: FakeOpenAI) -> None:
    with client(server.url) as http:
        job_id = http.post("/api/v1/jobs", json={"request": chat_body()}).json()["id"]
        wait_for(http, job_id)
        time.sleep(2.2)
        gone = http.get(f"/api/v1/jobs/{job_id}")
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "job_not_found"


def test_ssrf_guard_refuses_private_targets(fake_openai_server: FakeOpenAI, tmp_path: Path,
                                            receiver: WebhookReceiver) -> None:
    config = jobs_config(fake_openai_server, allow_private=False)
    with JunctionProcess(tmp_path, config) as guarded, client(guarded.url) as http:
        port = receiver.port
        for url in (f"http://localhost:{port}/hook",  # a name that resolves to 127.0.0.1
                    f"http://127.0.0.1:{port}/hook", "http://[::1]/hook", "http://169.254.169.254/latest",
                    "http://10.1.2.3/hook", "http://[::ffff:127.0.0.1]/hook", "http://100.100.100.200/x"):
            response = http.post("/api/v1/jobs", json={"request": chat_body(), "webhook": {"url": url}})
            assert response.status_code == 400, (url, response.text)
            assert response.json()["error"]["code"] == "webhook_refused", url
    assert receiver.deliveries() == []


def test_jobs_run_as_the_submitting_caller_through_the_pipeline(server: JunctionProcess,
                                                                fake_openai: FakeOpenAI) -> None:
    """The worker runs the job with the caller's principal: a key confined to one model gets the
    same refusal in a job as in a direct call (stages apply to jobs exactly as to direct calls)."""
    with client(server.url) as admin:
        org = admin.post("/api/v1/admin/orgs", json={"name": "confined"}).json()
        key = admin.post("/api/v1/admin/keys", json={"org_id": org["id"], "name": "k",
                                                     "models": ["openai/gpt-4o"]}).json()["key"]
    with client(server.url, key) as http:
        direct = http.post("/v1/chat/completions", json=chat_body(model="openai/gpt-4o-mini"))
        assert direct.status_code == 403
        job_id = http.post("/api/v1/jobs", json={"request": chat_body(model="openai/gpt-4o-mini")}).json()["id"]
        job = wait_for(http, job_id)
        assert job["status"] == "failed" and job["error"]["type"] == direct.json()["error"]["type"]
        assert job["error"]["status"] == 403 and job["dead_letter"] is False
        allowed = wait_for(http, http.post("/api/v1/jobs", json={"request": chat_body(model="openai/gpt-4o")}
                                           ).json()["id"])
        assert allowed["status"] == "succeeded"


def test_a_bridge_runs_as_a_job(server: JunctionProcess, fake_openai: FakeOpenAI) -> None:
    with client(server.url) as admin:
        org = admin.post("/api/v1/admin/orgs", json={"name": "bridged"}).json()
        key = admin.post("/api/v1/admin/keys", json={"org_id": org["id"], "name": "k"}).json()["key"]
        created = admin.post("/api/v1/bridges", json={
            "org_id": org["id"], "slug": "greeter", "name": "Greeter", "model": "openai/gpt-4o-mini",
            "prompt": "Greet {{name}}.", "variables": [{"name": "name", "required": True}]})
        assert created.status_code in (200, 201), created.text
    fake_openai.script(text="Hello Bo")
    with client(server.url, key) as http:
        body = {"model": "bridge/greeter", "messages": [{"role": "user", "content": "hi"}], "variables": {"name": "Bo"}}
        job = wait_for(http, http.post("/api/v1/jobs", json={"request": body}).json()["id"])
    assert job["status"] == "succeeded", job
    assert job["result"]["choices"][0]["message"]["content"] == "Hello Bo"
    assert fake_openai.last.json()["messages"][0] == {"role": "system", "content": "Greet Bo."}
