"""``junction worker`` on the machine's RabbitMQ: results and webhooks through a separate worker
process, a worker SIGKILLed mid-job, RabbitMQ restarted with jobs queued, poison messages."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from junction.testing.server import JunctionProcess
from tests.fakes.openai_upstream import FakeOpenAI
from tests.jobs.conftest import (
    STANDARD_WEBHOOKS_SECRET,
    WebhookReceiver,
    chat_body,
    client,
    jobs_config,
    wait_for,
)
from tests.jobs.rabbit import AMQP_URL, WorkerProcess, delete_queue, publish_raw, rabbitmqctl, wait_for_port

pytestmark = pytest.mark.slow


class Deployment:
    def __init__(self, directory: Path, config: str, queue: str) -> None:
        self.directory = directory
        self.config = config
        self.queue = queue
        self.server = JunctionProcess(directory, config)

    def worker(self, concurrency: int = 4) -> WorkerProcess:
        return WorkerProcess(self.directory, self.server.config_path, concurrency)


@pytest.fixture(scope="module")
def deployment(fake_openai_server: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    directory = tmp_path_factory.mktemp("rabbit")
    queue = f"junction.test.{secrets.token_hex(4)}"
    config = jobs_config(fake_openai_server, queue=AMQP_URL, documents=f"sqlite+aiosqlite:///{directory}/jobs.db",
                         extra=f'queue_name = "{queue}"\n')
    deployment = Deployment(directory, config, queue)
    with deployment.server:
        try:
            yield deployment
        finally:
            deployment.server.stop()
            asyncio.run(delete_queue(queue))


def test_worker_runs_jobs_and_delivers_signed_webhooks(deployment: Deployment, fake_openai: FakeOpenAI,
                                                       receiver: WebhookReceiver) -> None:
    fake_openai.script(text="from the worker")
    with deployment.worker(), client(deployment.server.url) as http:
        job_id = http.post("/api/v1/jobs", json={"request": chat_body(), "webhook": {"url": receiver.hook_url}}
                           ).json()["id"]
        job = wait_for(http, job_id, webhook="delivered")
    assert job["result"]["choices"][0]["message"]["content"] == "from the worker"
    payload = Webhook(STANDARD_WEBHOOKS_SECRET).verify(receiver.deliveries()[0].body, receiver.deliveries()[0].headers)
    assert payload["id"] == job_id and payload["status"] == "succeeded"


def test_a_worker_killed_mid_job_the_job_completes_exactly_once(deployment: Deployment, fake_openai: FakeOpenAI,
                                                                 receiver: WebhookReceiver) -> None:
    fake_openai.script(text="never seen", delay=3.0)  # the first worker dies while waiting for this
    fake_openai.script(text="after the crash")
    with client(deployment.server.url) as http:
        first = deployment.worker().start()
        try:
            job_id = http.post("/api/v1/jobs", json={"request": chat_body("crash"),
                                                     "webhook": {"url": receiver.hook_url}}).json()["id"]
            wait_for(http, job_id, ("running",))
            time.sleep(0.3)  # the upstream request is in flight
            first.kill()
        finally:
            first.stop()
        with deployment.worker():
            job = wait_for(http, job_id, webhook="delivered", timeout=30)
    assert job["status"] == "succeeded" and job["attempts"] == 2
    assert job["result"]["choices"][0]["message"]["content"] == "after the crash"
    deliveries = [r for r in receiver.deliveries() if r.headers["webhook-id"] == job_id]
    assert len(deliveries) == 1  # one outcome, delivered once
    time.sleep(0.5)
    assert len([r for r in receiver.deliveries() if r.headers["webhook-id"] == job_id]) == 1


def test_a_job_that_keeps_killing_workers_is_dead_lettered(deployment: Deployment, fake_openai: FakeOpenAI) -> None:
    for _ in range(2):
        fake_openai.script(text="never", delay=5.0)

    def poisoned() -> int:
        return len([r for r in fake_openai.requests if r.json()["messages"][0]["content"] == "poison"])

    with client(deployment.server.url) as http:
        job_id = http.post("/api/v1/jobs", json={"request": chat_body("poison")}).json()["id"]
        for attempt in (1, 2):  # max_attempts = 2: each start dies mid-job
            worker = deployment.worker().start()
            try:
                deadline = time.monotonic() + 10
                while poisoned() < attempt and time.monotonic() < deadline:
                    time.sleep(0.05)
                worker.kill()
            finally:
                worker.stop()
        with deployment.worker():
            job = wait_for(http, job_id)  # the third start dead-letters it without running it
            follow_up = wait_for(http, http.post("/api/v1/jobs", json={"request": chat_body()}).json()["id"])
    assert job["status"] == "failed" and job["dead_letter"] is True and job["attempts"] == 3
    assert job["error"]["code"] == "worker_lost"
    assert follow_up["status"] == "succeeded"
    assert poisoned() == 2


def test_rabbitmq_restart_with_jobs_queued_loses_none(deployment: Deployment, fake_openai: FakeOpenAI) -> None:
    with client(deployment.server.url) as http:
        queued = [http.post("/api/v1/jobs", json={"request": chat_body(f"q{n}")}).json()["id"] for n in range(20)]
        try:
            rabbitmqctl("stop_app")
            time.sleep(1.0)
        finally:
            rabbitmqctl("start_app")
            wait_for_port()
        # The gateway reconnects by itself; a submit during the reconnect is a clear 503.
        after = None
        deadline = time.monotonic() + 30
        while after is None and time.monotonic() < deadline:
            response = http.post("/api/v1/jobs", json={"request": chat_body("after")})
            if response.status_code == 202:
                after = response.json()["id"]
            else:
                assert response.status_code == 503, response.text
                time.sleep(0.5)
        assert after is not None
        with deployment.worker(concurrency=8):
            jobs = [wait_for(http, job_id, timeout=40) for job_id in [*queued, after]]
    assert [job["status"] for job in jobs] == ["succeeded"] * 21


def test_a_running_worker_carries_on_after_a_rabbitmq_restart(deployment: Deployment,
                                                                fake_openai: FakeOpenAI) -> None:
    with client(deployment.server.url) as http, deployment.worker():
        before = wait_for(http, http.post("/api/v1/jobs", json={"request": chat_body("before")}).json()["id"])
        try:
            rabbitmqctl("stop_app")
            time.sleep(1.0)
        finally:
            rabbitmqctl("start_app")
            wait_for_port()
        after = None
        deadline = time.monotonic() + 30
        while after is None and time.monotonic() < deadline:
            response = http.post("/api/v1/jobs", json={"request": chat_body("after")})
            if response.status_code == 202:
                after = response.json()["id"]
            else:
                time.sleep(0.5)
        assert after is not None
        job = wait_for(http, after, timeout=40)
    assert before["status"] == job["status"] == "succeeded"


def test_poison_messages_do_not_block_the_queue(deployment: Deployment, fake_openai: FakeOpenAI) -> None:
    asyncio.run(publish_raw(deployment.queue, b"\x00\xff not json at all"))
    asyncio.run(publish_raw(deployment.queue, b'{"task_id": "x", "task_name": "junction.jobs.run", "labels": {}, '
                                              b'"args": ["job_does_not_exist"], "kwargs": {}}',
                            {"task_id": "x", "task_name": "junction.jobs.run"}))
    asyncio.run(publish_raw(deployment.queue, b'{"task_id": "y", "task_name": "no.such.task", "labels": {}, '
                                              b'"args": [], "kwargs": {}}'))
    with deployment.worker(concurrency=1), client(deployment.server.url) as http:
        job = wait_for(http, http.post("/api/v1/jobs", json={"request": chat_body()}).json()["id"])
    assert job["status"] == "succeeded"


def test_worker_refuses_the_embedded_queue(tmp_path: Path) -> None:
    config = tmp_path / "junction.toml"
    config.write_text('[stores]\nqueue = "memory://"\n', encoding="utf-8")
    with pytest.raises(RuntimeError, match="needs a RabbitMQ queue"):
        WorkerProcess(tmp_path, config).start()
