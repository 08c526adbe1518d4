"""Submitting, reading and cancelling jobs (the API side), and the queue they travel on.

A job is stored (status ``queued``) and the submit answered once that insert committed; its id
is then put on the queue off the request path, by the process's outbox
(:mod:`junction.domain.jobs.outbox`), and the worker finds everything else in the store. The queue
(:class:`JobQueue`) is TaskIQ's — see ``app/worker.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from junction.domain.access import is_unconfined
from junction.domain.jobs.bridge_jobs import carried_headers, is_bridge_request
from junction.domain.jobs.delivery import WebhookDelivery
from junction.domain.jobs.records import Job, JobFilter, JobRepository
from junction.errors import Conflict, InvalidRequest
from junction.formats.openai import decode_chat_request
from junction.plugins.protocols import Principal
from junction.settings import JobsSettings
from junction.stores.documents.common import new_id, utc_now

if TYPE_CHECKING:
    from junction.domain.jobs.bridge_jobs import BridgeTurns
    from junction.domain.jobs.outbox import Outbox

#: The org under which jobs of org-less callers (the master key) are kept.
NO_ORG = ""


class JobQueue(Protocol):
    async def enqueue(self, job_id: str, sent_at: float | None = None) -> None:
        """Put one job on the queue (durably: it survives a broker restart). ``sent_at`` (Unix
        seconds) tells the worker the job may not be stored yet when the message arrives."""
        ...

    async def enqueue_many(self, job_ids: list[str]) -> None:
        """Put these jobs on the queue in one message (durably)."""
        ...


class JobRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /api/v1/jobs``."""

    request: dict[str, Any]
    webhook: Webhook | None = None
    idempotency_key: str | None = None


class Webhook(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    url: str


def owner_org(principal: Principal) -> str:
    return principal.org_id or NO_ORG


def reader_org(principal: Principal) -> str | None:
    """What a caller may read: an unconfined caller everything, others their org's jobs."""
    return None if is_unconfined(principal) else owner_org(principal)


def check_chat_body(body: dict[str, Any], param: str = "request") -> None:
    """A job's request must be a valid, non-streaming chat completion body (400 at submit, not a
    failed job later)."""
    try:
        chat = decode_chat_request(msgspec.json.encode(body))
    except InvalidRequest as error:
        where = f"{param}.{error.param}" if error.param else param
        message = error.message.removeprefix(f"{error.param}: ") if error.param else error.message
        raise InvalidRequest(f"{where}: {message}", param=where, code=error.code) from None
    if chat.stream:
        raise InvalidRequest(f"{param}.stream: a queued job cannot stream; omit stream",
                             param=f"{param}.stream", code="invalid_value")


class JobService:
    def __init__(self, settings: JobsSettings, store: JobRepository, outbox: Outbox,
                 delivery: WebhookDelivery) -> None:
        self.settings = settings
        self.store = store
        self.outbox = outbox
        self.delivery = delivery
        #: Bridge turns as jobs (set by the composition root when bridges are there).
        self.bridges: BridgeTurns | None = None

    async def submit(self, principal: Principal, body: JobRequest, idempotency_key: str | None = None,
                     headers: Mapping[str, str] | None = None) -> Job:
        key = body.idempotency_key or idempotency_key
        if key is not None and not 0 < len(key) <= 200:
            raise InvalidRequest("idempotency_key: must be 1 to 200 characters", param="idempotency_key",
                                 code="invalid_value")
        carried = carried_headers(headers)
        endpoint = "chat.completions"
        if is_bridge_request(body.request):
            if self.bridges is None:
                raise InvalidRequest("request.bridge: bridges are not available on this server",
                                     param="request.bridge", code="invalid_value")
            await self.bridges.check(principal, body.request, carried)
            endpoint = "bridges.chat"
        else:
            check_chat_body(body.request)
        webhook_url = body.webhook.url if body.webhook is not None else None
        if webhook_url is not None:
            await self.delivery.check(webhook_url, principal.org_id)
        digest = hashlib.sha256(msgspec.json.encode([body.request, webhook_url], order="sorted")).hexdigest()
        now = utc_now()
        job = Job(id=new_id("job"), org_id=owner_org(principal), principal=msgspec.to_builtins(principal),
                  endpoint=endpoint, request=body.request, idempotency_key=key, request_hash=digest,
                  webhook_url=webhook_url, webhook_status="pending" if webhook_url else None, headers=carried,
                  created_at=now, updated_at=now, publish_by=now + self.outbox.timeout)
        stored = await self.store.create(job)
        if stored.id != job.id:
            if stored.request_hash != digest:
                raise Conflict("idempotency_key: already used with a different request body",
                               param="idempotency_key", code="idempotency_key_reused")
            return stored  # the same submission again: the same job (published by its first submit)
        self.outbox.add([job.id])
        return job

    async def submit_task(self, principal: Principal, endpoint: str, request: dict[str, Any]) -> Job:
        """Queue work a route checked itself (``endpoint`` names what the worker runs, e.g. a
        document's ingestion): no idempotency key, no webhook."""
        now = utc_now()
        job = Job(id=new_id("job"), org_id=owner_org(principal), principal=msgspec.to_builtins(principal),
                  endpoint=endpoint, request=request, created_at=now, updated_at=now,
                  publish_by=now + self.outbox.timeout)
        await self.store.create(job)
        self.outbox.add([job.id])
        return job

    async def get(self, principal: Principal, job_id: str) -> Job:
        return await self.store.get(reader_org(principal), job_id)

    async def list(self, principal: Principal, where: JobFilter) -> list[Job]:
        return await self.store.list(reader_org(principal), where)

    async def cancel(self, principal: Principal, job_id: str) -> Job:
        expires = utc_now() + timedelta(seconds=self.settings.result_ttl_seconds)
        return await self.store.cancel(reader_org(principal), job_id, expires)


def unix(value: Any) -> int | None:
    return None if value is None else int(value.timestamp())


def job_view(job: Job) -> dict[str, Any]:
    """A job as ``GET /api/v1/jobs/{id}`` (and its webhook) shows it."""
    view: dict[str, Any] = {
        "id": job.id, "object": "job", "status": job.status, "result": job.result, "error": job.error,
        "attempts": job.attempts, "dead_letter": job.dead_letter, "idempotency_key": job.idempotency_key,
        "batch_id": job.batch_id, "created_at": unix(job.created_at), "started_at": unix(job.started_at),
        "finished_at": unix(job.finished_at), "expires_at": unix(job.expires_at), "webhook": None,
        "progress": job.progress,
    }
    if job.webhook_url is not None:
        view["webhook"] = {
            "url": job.webhook_url, "status": job.webhook_status,
            "attempts": [{"at": unix(attempt.at), "status": attempt.status, "error": attempt.error,
                          "duration_ms": round(attempt.duration_ms, 1)} for attempt in job.webhook_attempts],
        }
    return view
