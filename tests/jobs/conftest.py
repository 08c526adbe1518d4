"""Queued-jobs fixtures: a webhook receiver on loopback, gateway configs, polling helpers."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from junction.testing.upstream import FakeUpstream
from tests.conftest import openai_provider_table
from tests.fakes.openai_upstream import FakeOpenAI

WEBHOOK_SECRET = "test-webhook-secret-0123456789"
#: The same secret as the standardwebhooks library takes it.
STANDARD_WEBHOOKS_SECRET = "whsec_" + base64.b64encode(WEBHOOK_SECRET.encode()).decode()
MASTER = "sk-test-master"


class WebhookReceiver(FakeUpstream):
    """Answers ``POST /hook`` with 200 (or the errors scripted with ``fail_next``), recording each."""

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/hook", self.hook)]

    async def hook(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    @property
    def hook_url(self) -> str:
        return f"{self.url}/hook"

    def deliveries(self) -> list[Any]:
        return [request for request in self.requests if request.path == "/hook"]


@pytest.fixture(scope="session")
def receiver_server() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def receiver(receiver_server: WebhookReceiver) -> WebhookReceiver:
    receiver_server.reset()
    return receiver_server


def jobs_config(fake: FakeOpenAI, *, queue: str = "memory://", documents: str = "", extra: str = "",
                allow_private: bool = True) -> str:
    stores = f'[stores]\nqueue = "{queue}"\n' + (f'documents = "{documents}"\n' if documents else "")
    return openai_provider_table(fake, read_timeout=10.0) + stores + f"""
[jobs]
webhook_secret = "{WEBHOOK_SECRET}"
allow_private_webhooks = {"true" if allow_private else "false"}
retry_backoff_seconds = 0.05
webhook_backoff_seconds = 0.05
webhook_max_attempts = 3
webhook_timeout_seconds = 2.0
max_attempts = 2
""" + extra


def client(base_url: str, key: str = MASTER) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"authorization": f"Bearer {key}"}, timeout=20)


def chat_body(text: str = "hello", model: str = "openai/gpt-4o-mini") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}]}


def wait_for(http: httpx.Client, job_id: str, statuses: tuple[str, ...] = ("succeeded", "failed", "cancelled"),
             timeout: float = 20.0, webhook: str | None = None) -> dict[str, Any]:
    """Poll ``GET /api/v1/jobs/{id}`` until the job is in one of ``statuses`` (and, with ``webhook``,
    its delivery in that status)."""
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = http.get(f"/api/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job = response.json()
        if job["status"] in statuses and (webhook is None or (job["webhook"] or {}).get("status") == webhook):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not reach {statuses} / webhook {webhook}: {job}")
