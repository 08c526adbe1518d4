"""Queued jobs, batches and batch files as the document store keeps them, and the repository
Protocol every backend (SQL, MongoDB) satisfies.

Isolation works as for the other records: reads take the org they are confined to, and another
org's job is indistinguishable from a missing one. ``org_id=None`` is the master key's unconfined
view. Jobs of org-less callers (the master key) are stored under the org ``""``.

Every state change is a conditional write, so a job redelivered to a second worker, a cancel racing
a worker, or a webhook attempt recorded twice cannot overwrite an outcome already stored: the first
outcome wins and later ones report that they changed nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

import msgspec

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JOB_STATUSES: tuple[JobStatus, ...] = ("queued", "running", "succeeded", "failed", "cancelled")
#: A job in one of these has its outcome; nothing changes it any more (but its webhook delivery).
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
WebhookStatus = Literal["pending", "delivered", "dead"]
BatchStatus = Literal["validating", "in_progress", "finalizing", "completed", "failed", "cancelling",
                      "cancelled", "expired"]


class WebhookAttempt(msgspec.Struct, kw_only=True):
    """One POST of a job's outcome to its webhook."""

    at: datetime
    #: The receiver's HTTP status; ``None`` when there was no answer (refused, timeout, guard).
    status: int | None = None
    error: str | None = None
    duration_ms: float = 0.0


class Job(msgspec.Struct, kw_only=True):
    id: str
    org_id: str
    #: The submitting caller (:class:`~junction.plugins.protocols.Principal` as JSON builtins): the
    #: worker runs the job as this caller, through the same pipeline stages.
    principal: dict[str, Any]
    #: ``chat.completions``.
    endpoint: str
    #: The request body, as the client sent it.
    request: dict[str, Any]
    status: JobStatus = "queued"
    result: dict[str, Any] | None = None
    #: The OpenAI error object (``message``, ``type``, ``param``, ``code``) of a failed job.
    error: dict[str, Any] | None = None
    #: How many times a worker started it (a redelivered job counts again).
    attempts: int = 0
    #: Failed for good after ``[jobs] max_attempts`` starts (a job that keeps crashing workers,
    #: or keeps meeting transient failures).
    dead_letter: bool = False
    idempotency_key: str | None = None
    #: SHA-256 of the submitted body: the same key with another body is a conflict.
    request_hash: str = ""
    webhook_url: str | None = None
    webhook_status: WebhookStatus | None = None
    webhook_attempts: list[WebhookAttempt] = []
    batch_id: str | None = None
    #: The submitting request's headers that change how the call runs (``x-junction-*`` routing
    #: and cache headers, ``cache-control``, trace context): the worker runs the call with them.
    headers: dict[str, str] = {}
    #: Position in its batch (0-based) and, for OpenAI batches, the line's ``custom_id``.
    batch_index: int | None = None
    custom_id: str | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    #: When a finished job (and its result) is deleted: ``[jobs] result_ttl_seconds`` after it finished.
    expires_at: datetime | None = None
    #: How far a long job got, as it reports it (a document's ingestion: ``{"done", "total"}`` chunks).
    progress: dict[str, Any] | None = None
    #: At submit: the job goes into the outbox (stored, its message not yet confirmed by the
    #: queue), and past this time a sweep publishes it (its server died before it could). The
    #: outbox is the store's business (SQL: the ``job_outbox`` table); reads need not carry it.
    publish_by: datetime | None = None


class Batch(msgspec.Struct, kw_only=True):
    id: str
    org_id: str
    #: ``junction`` (``/api/v1/batches``) or ``openai`` (``/v1/batches``).
    kind: str
    status: BatchStatus = "in_progress"
    total: int = 0
    endpoint: str = "/v1/chat/completions"
    input_file_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    completion_window: str = "24h"
    metadata: dict[str, Any] | None = None
    webhook_url: str | None = None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    cancelled_at: datetime | None = None
    expires_at: datetime | None = None


class StoredFile(msgspec.Struct, kw_only=True):
    """A file of the OpenAI Files API (``purpose=batch`` input, ``batch_output``), with its bytes."""

    id: str
    org_id: str
    purpose: str
    filename: str
    bytes: int
    created_at: datetime
    expires_at: datetime | None = None


class JobFilter(msgspec.Struct, kw_only=True):
    status: JobStatus | None = None
    batch_id: str | None = None
    dead_letter: bool | None = None
    webhook_status: WebhookStatus | None = None
    #: Jobs created before this job (newest first paging).
    before: str | None = None
    limit: int = 100


@runtime_checkable
class JobRepository(Protocol):
    async def create(self, job: Job) -> Job:
        """Insert ``job``; with an idempotency key already used in the org, return that job instead
        (the caller compares ``request_hash``)."""
        ...

    async def create_many(self, jobs: list[Job]) -> None:
        """Insert a batch's jobs at once (no idempotency keys)."""
        ...

    async def get(self, org_id: str | None, job_id: str) -> Job:
        """NotFound when missing, another org's, or expired."""
        ...

    async def list(self, org_id: str | None, where: JobFilter) -> list[Job]:
        """Newest first."""
        ...

    async def begin(self, job_id: str) -> Job | None:
        """A worker starts ``job_id``: when queued or running (a redelivery), mark it running and
        count the attempt. Returns the job as it is now (finished jobs unchanged), ``None`` when
        there is no such job."""
        ...

    async def finish(self, job_id: str, status: JobStatus, *, result: dict[str, Any] | None,
                     error: dict[str, Any] | None, expires_at: datetime, dead_letter: bool = False) -> Job | None:
        """Store the outcome unless the job already has one: the job as stored by this call, or
        ``None`` when it had an outcome already (or is missing)."""
        ...

    async def published(self, job_ids: list[str]) -> None:
        """The jobs' messages are confirmed by the queue: take them out of the outbox."""
        ...

    async def claim_unpublished(self, now: datetime, lease_until: datetime, limit: int) -> list[str]:
        """Queued jobs whose ``publish_by`` passed, at most ``limit``: move their ``publish_by`` to
        ``lease_until`` (so one of several sweepers takes each) and return their ids."""
        ...

    async def cancel(self, org_id: str | None, job_id: str, expires_at: datetime) -> Job:
        """Cancel a queued or running job (a finished one is returned unchanged)."""
        ...

    async def any_open(self, batch_id: str) -> bool:
        """Whether a job of the batch is still queued or running (one index probe)."""
        ...

    async def cancel_batch(self, batch_id: str, expires_at: datetime) -> int:
        """Cancel the batch's jobs no worker started yet; returns how many."""
        ...

    async def record_webhook(self, job_id: str, attempt: WebhookAttempt, status: WebhookStatus) -> None:
        """Append a delivery attempt and set the delivery's status."""
        ...

    async def record_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        """Set a running job's ``progress``."""
        ...

    async def counts(self, batch_id: str) -> dict[str, int]:
        """How many of the batch's jobs are in each status."""
        ...

    async def purge_expired(self, now: datetime) -> int:
        """Delete finished jobs, batches and files whose ``expires_at`` passed; returns the jobs deleted."""
        ...

    # --- batches and files --------------------------------------------------------------------

    async def create_batch(self, batch: Batch) -> None: ...

    async def get_batch(self, org_id: str | None, batch_id: str) -> Batch: ...

    async def list_batches(self, org_id: str | None, kind: str, limit: int, after: str | None) -> list[Batch]:
        """Newest first; ``after``: the batches older than that one."""
        ...

    async def update_batch(self, batch_id: str, changes: dict[str, Any], *,
                           only_status: tuple[str, ...] = (), updated_before: datetime | None = None) -> bool:
        """Apply ``changes``; with ``only_status``, only while the batch is in one of those, with
        ``updated_before`` only while it was last changed before then."""
        ...

    async def stale_batches(self, status: str, updated_before: datetime, limit: int) -> list[Batch]:
        """Batches of every org in ``status``, last changed before ``updated_before``."""
        ...

    async def create_file(self, record: StoredFile, content: bytes) -> None: ...

    async def get_file(self, org_id: str | None, file_id: str) -> StoredFile: ...

    async def file_content(self, org_id: str | None, file_id: str) -> bytes: ...

    async def files_expired(self, file_ids: list[str], now: datetime) -> dict[str, bool]:
        """For each of ``file_ids`` that has a record: whether it expired (ids without are left out)."""
        ...

    # --- per-org webhook secrets ----------------------------------------------------------------

    async def set_webhook_secret(self, org_id: str, secret: str | None) -> None:
        """Seal and store the org's signing secret (``None`` deletes it)."""
        ...

    async def webhook_secret(self, org_id: str) -> str | None: ...
