"""Batches: ``/api/v1/batches`` with per-item results and progress, and the OpenAI Files and Batch
APIs end to end with the official openai SDK, over models of two providers in one batch."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from standardwebhooks import Webhook

from junction.testing.server import JunctionProcess
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.fixtures import fake_fixtures
from tests.fakes.openai_upstream import FakeOpenAI
from tests.jobs.conftest import STANDARD_WEBHOOKS_SECRET, WebhookReceiver, chat_body, client, jobs_config

ANTHROPIC_KEY = "sk-ant-upstream-test"
fake_anthropic_server, fake_anthropic = fake_fixtures(
    lambda: FakeAnthropic(api_key=ANTHROPIC_KEY), scope="module",
    server_name="fake_anthropic_server", name="fake_anthropic")


@pytest.fixture(scope="module")
def server(fake_openai_server: FakeOpenAI, fake_anthropic_server: FakeAnthropic,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[JunctionProcess]:
    config = jobs_config(fake_openai_server, extra="max_batch_requests = 50\n") + f"""
[providers.anthropic]
api_key = "{ANTHROPIC_KEY}"
base_url = "{fake_anthropic_server.base_url}"
"""
    with JunctionProcess(tmp_path_factory.mktemp("batches"), config) as process:
        yield process


def wait_batch(http: Any, batch_id: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = http.get(f"/api/v1/batches/{batch_id}").json()
        if batch["status"] in ("completed", "cancelled"):
            return batch
        time.sleep(0.05)
    raise AssertionError(f"batch {batch_id} did not finish: {batch}")


def test_batch_with_mixed_successes_and_failures(server: JunctionProcess, fake_openai: FakeOpenAI,
                                                 fake_anthropic: FakeAnthropic) -> None:
    requests = [chat_body("one"), chat_body("two", "anthropic/claude-haiku-4-5"),
                chat_body("three", "nosuch/model"), chat_body("four")]
    with client(server.url) as http:
        created = http.post("/api/v1/batches", json={"requests": requests})
        assert created.status_code == 202, created.text
        batch = wait_batch(http, created.json()["id"])
        assert batch["counts"]["total"] == 4 and batch["progress"] == 1.0
        assert (batch["counts"]["succeeded"], batch["counts"]["failed"]) == (3, 1)
        results = batch["results"]
        assert [item["index"] for item in results] == [0, 1, 2, 3]
        assert [item["status"] for item in results] == ["succeeded", "succeeded", "failed", "succeeded"]
        assert results[2]["error"]["param"] == "model" or "nosuch" in results[2]["error"]["message"]
        assert results[1]["result"]["model"].startswith("claude")
        assert "results" not in http.get(f"/api/v1/batches/{batch['id']}", params={"results": "false"}).json()
        # Each item is a job too, listed by batch.
        jobs = http.get("/api/v1/jobs", params={"batch_id": batch["id"]}).json()["data"]
        assert sorted(job["id"] for job in jobs) == sorted(item["job_id"] for item in results)
    assert len([r for r in fake_anthropic.requests if r.path == "/v1/messages"]) == 1


def test_batch_as_jsonl_and_its_limits(server: JunctionProcess, fake_openai: FakeOpenAI) -> None:
    with client(server.url) as http:
        lines = "\n".join(json.dumps(chat_body(f"line {n}")) for n in range(3)) + "\n"
        created = http.post("/api/v1/batches", content=lines, headers={"content-type": "application/jsonl"})
        assert created.status_code == 202, created.text
        assert wait_batch(http, created.json()["id"])["counts"]["succeeded"] == 3
        bad = http.post("/api/v1/batches", content=lines + "{nope\n", headers={"content-type": "application/jsonl"})
        assert bad.status_code == 400 and "line 4" in bad.json()["error"]["message"]
        too_many = http.post("/api/v1/batches", json={"requests": [chat_body()] * 51})
        assert too_many.status_code == 400 and too_many.json()["error"]["code"] == "batch_too_large"
        invalid = http.post("/api/v1/batches", json={"requests": [chat_body(), {"model": "x"}]})
        assert invalid.status_code == 400 and invalid.json()["error"]["param"] == "requests[1].messages"
        assert http.post("/api/v1/batches", json={"requests": []}).status_code == 400
        assert http.get("/api/v1/batches/batch_nope").status_code == 404


def test_openai_sdk_batch_api_end_to_end_across_two_providers(server: JunctionProcess, fake_openai: FakeOpenAI,
                                                              fake_anthropic: FakeAnthropic) -> None:
    fake_openai.script(text="from openai")
    fake_anthropic.script(text="from claude")
    lines = [
        {"custom_id": "gpt", "method": "POST", "url": "/v1/chat/completions", "body": chat_body("a")},
        {"custom_id": "claude", "method": "POST", "url": "/v1/chat/completions",
         "body": {**chat_body("b", "anthropic/claude-haiku-4-5"), "max_tokens": 100}},
        {"custom_id": "broken", "method": "POST", "url": "/v1/chat/completions", "body": chat_body("c", "nosuch/x")},
    ]
    content = "".join(json.dumps(line) + "\n" for line in lines).encode()
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.key, max_retries=0, timeout=20) as sdk:
        uploaded = sdk.files.create(file=("input.jsonl", content), purpose="batch")
        assert uploaded.purpose == "batch" and uploaded.bytes == len(content)
        assert sdk.files.retrieve(uploaded.id).filename == "input.jsonl"
        assert sdk.files.content(uploaded.id).content == content

        batch = sdk.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                   completion_window="24h", metadata={"run": "nightly"})
        assert batch.status == "in_progress" and batch.request_counts.total == 3
        deadline = time.monotonic() + 20
        while batch.status != "completed" and time.monotonic() < deadline:
            time.sleep(0.05)
            batch = sdk.batches.retrieve(batch.id)
        assert batch.status == "completed", batch
        assert (batch.request_counts.completed, batch.request_counts.failed) == (2, 1)
        assert batch.metadata == {"run": "nightly"} and batch.completed_at is not None

        output = [json.loads(line) for line in sdk.files.content(batch.output_file_id).text.splitlines()]
        by_id = {line["custom_id"]: line for line in output}
        assert set(by_id) == {"gpt", "claude"}
        for custom_id, text in (("gpt", "from openai"), ("claude", "from claude")):
            line = by_id[custom_id]
            assert set(line) == {"id", "custom_id", "response", "error"} and line["error"] is None
            assert line["id"].startswith("batch_req_")
            assert line["response"]["status_code"] == 200 and line["response"]["request_id"]
            assert line["response"]["body"]["object"] == "chat.completion"
            assert line["response"]["body"]["choices"][0]["message"]["content"] == text
        errors = [json.loads(line) for line in sdk.files.content(batch.error_file_id).text.splitlines()]
        assert [line["custom_id"] for line in errors] == ["broken"]
        assert errors[0]["response"]["status_code"] >= 400
        assert errors[0]["response"]["body"]["error"]["message"]

        assert batch.id in [item.id for item in sdk.batches.list(limit=10).data]
        with pytest.raises(openai.ConflictError):
            sdk.batches.cancel(batch.id)
        with pytest.raises(openai.BadRequestError):  # a line naming another endpoint
            bad = sdk.files.create(file=("bad.jsonl", json.dumps({**lines[0], "url": "/v1/embeddings"}).encode()),
                                   purpose="batch")
            sdk.batches.create(input_file_id=bad.id, endpoint="/v1/chat/completions", completion_window="24h")
        with pytest.raises(openai.BadRequestError):
            sdk.files.create(file=("x.jsonl", content), purpose="fine-tune")
        with pytest.raises(openai.NotFoundError):
            sdk.batches.retrieve("batch_missing")


def test_openai_batch_cancel(server: JunctionProcess, fake_openai: FakeOpenAI) -> None:
    for _ in range(40):  # every reply slow: most jobs are still queued when the cancel arrives
        fake_openai.script(text="slow", delay=0.5)
    lines = [{"custom_id": f"c{n}", "method": "POST", "url": "/v1/chat/completions", "body": chat_body()}
             for n in range(40)]
    content = "".join(json.dumps(line) + "\n" for line in lines).encode()
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.key, max_retries=0, timeout=20) as sdk:
        file_id = sdk.files.create(file=("in.jsonl", content), purpose="batch").id
        batch = sdk.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h")
        cancelled = sdk.batches.cancel(batch.id)
        assert cancelled.status in ("cancelling", "cancelled")
        deadline = time.monotonic() + 20
        while cancelled.status != "cancelled" and time.monotonic() < deadline:
            time.sleep(0.05)
            cancelled = sdk.batches.retrieve(batch.id)
        assert cancelled.status == "cancelled" and cancelled.cancelled_at is not None
        counts = cancelled.request_counts
        assert counts.completed + counts.failed == 40 and counts.failed > 0


def test_batch_webhook_when_it_completes(server: JunctionProcess, fake_openai: FakeOpenAI,
                                         receiver: WebhookReceiver) -> None:
    with client(server.url) as http:
        created = http.post("/api/v1/batches", json={"requests": [chat_body("x"), chat_body("y")],
                                                     "webhook": {"url": receiver.hook_url}})
        assert created.status_code == 202, created.text
        batch_id = created.json()["id"]
        wait_batch(http, batch_id)
    deadline = time.monotonic() + 10
    while not receiver.deliveries() and time.monotonic() < deadline:
        time.sleep(0.05)
    [delivery] = receiver.deliveries()
    payload = Webhook(STANDARD_WEBHOOKS_SECRET).verify(delivery.body, delivery.headers)
    assert payload["id"] == batch_id and payload["status"] == "completed"
    assert payload["counts"]["succeeded"] == 2


def test_batch_files_in_a_configured_directory(fake_openai_server: FakeOpenAI, tmp_path: Path,
                                               fake_openai: FakeOpenAI) -> None:
    files = tmp_path / "files"
    config = jobs_config(fake_openai_server, extra=f'files_dir = "{files}"\n')
    line = {"custom_id": "one", "method": "POST", "url": "/v1/chat/completions", "body": chat_body()}
    content = (json.dumps(line) + "\n").encode()
    with JunctionProcess(tmp_path / "server", config) as process, \
            openai.OpenAI(base_url=f"{process.url}/v1", api_key=process.key, max_retries=0, timeout=20) as sdk:
        uploaded = sdk.files.create(file=("in.jsonl", content), purpose="batch")
        assert (files / uploaded.id).read_bytes() == content
        batch = sdk.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
        deadline = time.monotonic() + 20
        while batch.status != "completed" and time.monotonic() < deadline:
            time.sleep(0.05)
            batch = sdk.batches.retrieve(batch.id)
        output = sdk.files.content(batch.output_file_id).content
        assert output == (files / batch.output_file_id).read_bytes()
        assert json.loads(output)["custom_id"] == "one"
