"""Running one job in a worker: through the same gateway (every stage: limits, budgets, metrics,
bridges, org credentials) as the submitting caller, then storing the outcome once and POSTing it
to the job's webhook.

Delivery is at least once: the queue acknowledges a message only after this returns, i.e. after
the outcome is stored (and the webhook settled). A redelivered job whose outcome is stored is not
run again; its webhook is finished if it was not. Every start counts an attempt; a job started
``max_attempts`` times without an outcome (it keeps killing workers, or keeps meeting transient
failures) is dead-lettered: failed, with ``dead_letter: true`` and its last error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import msgspec

from junction.domain.jobs.delivery import WebhookDelivery
from junction.domain.jobs.records import FINISHED, Job, JobRepository, WebhookAttempt, WebhookStatus
from junction.domain.jobs.service import job_view
from junction.domain.rag.ingest_jobs import INGEST_ENDPOINT
from junction.errors import JunctionError, ServiceUnavailable
from junction.formats.openai import decode_chat_request, encode_chat_response
from junction.pipeline.gateway import Gateway
from junction.plugins.call import Call
from junction.plugins.protocols import Principal
from junction.settings import JobsSettings
from junction.stores.documents.common import utc_now

if TYPE_CHECKING:
    from junction.domain.jobs.bridge_jobs import BridgeTurns
    from junction.domain.rag.ingest_jobs import IngestJobs

log = logging.getLogger("junction.jobs")

#: Failures worth another attempt later: rate limits, upstream trouble, our stores unavailable.
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})
#: How long after its message was sent a job not in the store yet is waited for (its insert
#: overlaps the publish); past that the insert failed and the message is dropped.
STORE_WAIT_SECONDS = 10.0


def error_object(error: JunctionError) -> dict[str, Any]:
    return {"message": error.message, "type": error.error_type, "param": error.param, "code": error.code,
            "status": error.status}


class JobRunner:
    def __init__(self, settings: JobsSettings, store: JobRepository, gateway: Gateway,
                 delivery: WebhookDelivery) -> None:
        self.settings = settings
        self.store = store
        self.gateway = gateway
        self.delivery = delivery
        #: Runs bridge-turn jobs (set by the composition root).
        self.bridges: BridgeTurns | None = None
        #: Runs document ingestions (set by the composition root when RAG is there).
        self.ingests: IngestJobs | None = None
        #: Told the batch id when one of a batch's jobs finished (the batch service finalizes).
        self.batch_finished: Callable[[str], Awaitable[None]] | None = None

    async def run(self, job_id: str, sent_at: float | None = None) -> None:
        job = await self.store.begin(job_id)
        if job is None and sent_at is not None:
            job = await self._stored_soon(job_id, sent_at)
        if job is None:
            log.warning("job %s: not in the store (expired, or never stored); message dropped", job_id)
            return
        if job.status not in FINISHED:
            job = await self._execute(job)
        if job.batch_id is not None and self.batch_finished is not None:
            await self.batch_finished(job.batch_id)
        if job.webhook_url is not None and job.webhook_status == "pending" and job.status != "cancelled":
            await self._deliver(job)

    async def _stored_soon(self, job_id: str, sent_at: float) -> Job | None:
        """The job's message was sent while its insert was in flight and overtook it: wait for the
        insert (milliseconds, normally) until ``STORE_WAIT_SECONDS`` after the message was sent."""
        delay = 0.005
        while time.time() < sent_at + STORE_WAIT_SECONDS:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)
            job = await self.store.begin(job_id)
            if job is not None:
                return job
        return None

    async def _execute(self, job: Job) -> Job:
        settings = self.settings
        while True:
            if job.attempts > settings.max_attempts:
                last = job.error or {"message": f"the job was started {job.attempts - 1} times without "
                                                "finishing (its worker stopped each time)",
                                     "type": "server_error", "param": None, "code": "worker_lost"}
                return await self._finish(job, "failed", None, last, dead_letter=True)
            try:
                result = await self._call(job)
            except JunctionError as error:
                if error.status in TRANSIENT_STATUSES and job.attempts < settings.max_attempts:
                    delay = settings.retry_backoff_seconds * 2 ** (job.attempts - 1)
                    log.info("job %s: attempt %d failed (%s); retrying in %.1fs", job.id, job.attempts,
                             error.status, delay)
                    await asyncio.sleep(delay)
                    again = await self.store.begin(job.id)
                    if again is None or again.status in FINISHED:  # cancelled meanwhile
                        return again or job
                    job = again
                    continue
                return await self._finish(job, "failed", None, error_object(error),
                                          dead_letter=error.status in TRANSIENT_STATUSES)
            return await self._finish(job, "succeeded", result, None)

    async def _call(self, job: Job) -> dict[str, Any]:
        principal = msgspec.convert(job.principal, Principal)
        if job.endpoint == "bridges.chat":
            if self.bridges is None:
                raise ServiceUnavailable("bridge jobs need the bridges of the documents store",
                                         code="bridges_unavailable")
            return await self.bridges.run(principal, job.request, job.headers, job.id)
        if job.endpoint == INGEST_ENDPOINT:
            if self.ingests is None:
                raise ServiceUnavailable("ingestion jobs need RAG collections", code="rag_unavailable")
            return await self.ingests.run(principal, job.request,
                                          lambda progress: self.store.record_progress(job.id, progress))
        call = Call(request_id=job.id, endpoint=job.endpoint, principal=principal, headers=job.headers,
                    request=decode_chat_request(msgspec.json.encode(job.request)))
        response = await self.gateway.complete(call)
        result: dict[str, Any] = msgspec.json.decode(encode_chat_response(response))
        return result

    async def _finish(self, job: Job, status: Any, result: dict[str, Any] | None,
                      error: dict[str, Any] | None, *, dead_letter: bool = False) -> Job:
        expires = utc_now() + timedelta(seconds=self.settings.result_ttl_seconds)
        stored = await self.store.finish(job.id, status, result=result, error=error, expires_at=expires,
                                         dead_letter=dead_letter)
        if stored is not None:
            return stored
        log.info("job %s: already finished (cancelled, or by another worker); outcome discarded", job.id)
        return await self.store.get(None, job.id)

    async def _deliver(self, job: Job) -> None:
        assert job.webhook_url is not None

        async def record(attempt: WebhookAttempt, status: WebhookStatus) -> None:
            await self.store.record_webhook(job.id, attempt, status)

        await self.delivery.deliver(job.id, job.org_id, job.webhook_url, msgspec.json.encode(job_view(job)),
                                    made=len(job.webhook_attempts), record=record)
