"""What a job runs: a bridge turn (from its own route with ``x-junction-async: true``, or
``request.bridge`` in ``POST /api/v1/jobs``), and with the submitting request's routing and cache
headers (embedded queue, response cache on)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from junction.testing.server import JunctionProcess
from tests.fakes.openai_upstream import FakeOpenAI
from tests.jobs.conftest import chat_body, client, jobs_config, wait_for


@pytest.fixture(scope="module")
def server(fake_openai_server: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JunctionProcess]:
    config = jobs_config(fake_openai_server) + "\n[middleware.response-cache]\nenabled = true\n"
    with JunctionProcess(tmp_path_factory.mktemp("job-requests"), config) as process:
        yield process


def upstream_calls(fake: FakeOpenAI) -> int:
    return sum(1 for request in fake.requests if request.path.endswith("/chat/completions"))


def test_cache_headers_of_the_submission_apply_to_the_job(server: JunctionProcess, fake_openai: FakeOpenAI) -> None:
    body = chat_body("cache me, or not")
    with client(server.url) as http:
        # ttl 0: answered, but not stored. Were the header lost, the next job would be a hit.
        first = http.post("/api/v1/jobs", json={"request": body}, headers={"x-junction-cache-ttl": "0"})
        assert wait_for(http, first.json()["id"])["status"] == "succeeded"
        second = http.post("/v1/chat/completions", json=body, headers={"x-junction-async": "true"})
        assert wait_for(http, second.json()["id"])["status"] == "succeeded"
        assert upstream_calls(fake_openai) == 2
        # The second one was stored: a third is answered from the cache, and one sent with
        # cache-control: no-cache goes upstream again.
        third = http.post("/api/v1/jobs", json={"request": body})
        assert wait_for(http, third.json()["id"])["status"] == "succeeded"
        assert upstream_calls(fake_openai) == 2
        fourth = http.post("/api/v1/jobs", json={"request": body}, headers={"cache-control": "no-cache"})
        assert wait_for(http, fourth.json()["id"])["status"] == "succeeded"
        assert upstream_calls(fake_openai) == 3
        # A header a job could not run with is refused at submit, naming it.
        refused = http.post("/api/v1/jobs", json={"request": body}, headers={"x-junction-cache-ttl": "x" * 2000})
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "x-junction-cache-ttl"


def make_bridge(server: JunctionProcess, name: str) -> tuple[str, str]:
    """An org with a key and a greeter bridge; returns (org id, key)."""
    with client(server.url) as admin:
        org = admin.post("/api/v1/admin/orgs", json={"name": name}).json()
        key = admin.post("/api/v1/admin/keys", json={"org_id": org["id"], "name": "k"}).json()["key"]
        created = admin.post("/api/v1/bridges", json={
            "org_id": org["id"], "slug": "greeter", "name": "Greeter", "model": "openai/gpt-4o-mini",
            "prompt": "Greet {{name}}.", "variables": [{"name": "name", "required": True}]})
        assert created.status_code in (200, 201), created.text
    return org["id"], key


def test_a_bridge_turn_runs_as_a_job(server: JunctionProcess, fake_openai: FakeOpenAI) -> None:
    _, key = make_bridge(server, "bridge-jobs")
    fake_openai.script(text="Hello Bo")
    with client(server.url, key) as http:
        submitted = http.post("/api/v1/bridges/greeter/chat", json={"user": "hi", "variables": {"name": "Bo"}},
                              headers={"x-junction-async": "true"})
        assert submitted.status_code == 202, submitted.text
        job = wait_for(http, submitted.json()["id"])
        assert job["status"] == "succeeded", job
        first = job["result"]
        assert first["message"] == {"role": "assistant", "content": "Hello Bo", "tool_calls": None}
        assert first["thread_id"].startswith("th_") and first["model"] == "openai/gpt-4o-mini"
        assert fake_openai.last.json()["messages"] == [{"role": "system", "content": "Greet Bo."},
                                                       {"role": "user", "content": "hi"}]

        # The next turn through POST /api/v1/jobs, in the same thread: the history goes upstream.
        fake_openai.script(text="Again, hello")
        turn = {"bridge": "greeter", "user": "again", "variables": {"name": "Bo"}, "thread_id": first["thread_id"]}
        job = wait_for(http, http.post("/api/v1/jobs", json={"request": turn}).json()["id"])
        assert job["status"] == "succeeded" and job["result"]["thread_id"] == first["thread_id"], job
        assert [m["content"] for m in fake_openai.last.json()["messages"]] == ["Greet Bo.", "hi", "Hello Bo", "again"]
        thread = http.get(f"/api/v1/threads/{first['thread_id']}")
        assert thread.status_code == 200 and "Again, hello" in thread.text  # both turns kept

        # Refused at submit, not failed later: an unknown bridge, a stream, an unknown field.
        missing = http.post("/api/v1/bridges/nobody/chat", json={"user": "hi"}, headers={"x-junction-async": "true"})
        assert missing.status_code == 404, missing.text
        streamed = http.post("/api/v1/jobs", json={"request": {**turn, "stream": True}})
        assert streamed.status_code == 400 and streamed.json()["error"]["param"] == "request.stream"
        odd = http.post("/api/v1/jobs", json={"request": {"bridge": "greeter", "user": "x", "colour": "red"}})
        assert odd.status_code == 400 and "colour" in odd.json()["error"]["message"]
    # Another org's key does not see this org's bridge.
    _, other = make_bridge(server, "bridge-jobs-other")
    with client(server.url, other) as http:
        foreign = http.post("/api/v1/jobs", json={"request": {"bridge": first["thread_id"], "user": "x"}})
        assert foreign.status_code == 404
