"""Batches: many chat requests as jobs of one batch, progress counted from the jobs themselves,
and — for OpenAI Batch API batches — output and error files written when the last job finishes.

The batch whose last job a worker finishes is finalized by that worker (a conditional status
change makes exactly one of several racing workers do it). A worker that dies while finalizing
leaves the batch ``finalizing``: after ``[jobs] finalize_timeout_seconds`` without progress a
sweeping worker takes it over (:meth:`BatchService.recover_finalizing`).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import msgspec

from junction.domain.batches.files import FileStorage
from junction.domain.jobs.delivery import WebhookDelivery
from junction.domain.jobs.outbox import Outbox
from junction.domain.jobs.records import Batch, Job, JobFilter, JobRepository, StoredFile
from junction.domain.jobs.service import check_chat_body, owner_org, reader_org
from junction.errors import Conflict, InvalidRequest
from junction.plugins.protocols import Principal
from junction.settings import JobsSettings
from junction.stores.documents.common import new_id, utc_now
from junction.stores.documents.jobs_common import batch_not_found

log = logging.getLogger("junction.batches")

#: Stalled batches one sweep takes over at most (the next sweep takes the rest).
RECOVER_AT_ONCE = 100
#: Statuses a batch is still running in.
RUNNING = ("in_progress", "cancelling")


class BatchService:
    def __init__(self, settings: JobsSettings, store: JobRepository, outbox: Outbox,
                 delivery: WebhookDelivery) -> None:
        self.settings = settings
        self.store = store
        self.outbox = outbox
        self.delivery = delivery
        self.files = FileStorage(store, settings.files_dir)

    def _ttl(self) -> timedelta:
        return timedelta(seconds=self.settings.result_ttl_seconds)

    async def create(self, principal: Principal, requests: list[dict[str, Any]], *, kind: str,
                     custom_ids: list[str] | None = None, input_file_id: str | None = None,
                     metadata: dict[str, Any] | None = None, param: str = "requests",
                     webhook_url: str | None = None) -> Batch:
        if not requests:
            raise InvalidRequest(f"{param}: must hold at least one request", param=param, code="invalid_value")
        if len(requests) > self.settings.max_batch_requests:
            raise InvalidRequest(f"{param}: at most {self.settings.max_batch_requests} requests per batch "
                                 "([jobs] max_batch_requests)", param=param, code="batch_too_large")
        if kind == "junction":  # OpenAI batches check their lines themselves, naming the line
            for index, body in enumerate(requests):
                check_chat_body(body, f"{param}[{index}]")
        if webhook_url is not None:
            await self.delivery.check(webhook_url, principal.org_id)
        now = utc_now()
        batch = Batch(id=new_id("batch"), org_id=owner_org(principal), kind=kind, total=len(requests),
                      input_file_id=input_file_id, metadata=metadata, webhook_url=webhook_url,
                      created_at=now, updated_at=now)
        who = msgspec.to_builtins(principal)
        jobs = [Job(id=new_id("job"), org_id=batch.org_id, principal=who, endpoint="chat.completions",
                    request=body, batch_id=batch.id, batch_index=index,
                    custom_id=custom_ids[index] if custom_ids else None, created_at=now, updated_at=now,
                    publish_by=now + self.outbox.timeout)
                for index, body in enumerate(requests)]
        await self.store.create_batch(batch)
        await self.store.create_many(jobs)
        self.outbox.add([job.id for job in jobs])  # published after the 202, in groups
        return batch

    async def get(self, principal: Principal, batch_id: str, kind: str) -> Batch:
        batch = await self.store.get_batch(reader_org(principal), batch_id)
        if batch.kind != kind:
            raise batch_not_found(batch_id)
        return batch

    async def counts(self, batch: Batch) -> dict[str, int]:
        found = await self.store.counts(batch.id)
        return {"total": batch.total, **{status: found.get(status, 0) for status in
                                         ("queued", "running", "succeeded", "failed", "cancelled")}}

    async def results(self, batch: Batch) -> list[Job]:
        return await self.store.list(None, JobFilter(batch_id=batch.id, limit=max(batch.total, 1)))

    async def cancel(self, principal: Principal, batch_id: str, kind: str) -> Batch:
        batch = await self.get(principal, batch_id, kind)
        if batch.status not in RUNNING:
            raise Conflict(f"batch {batch_id!r} is already {batch.status}", param="batch_id",
                           code="batch_not_cancellable")
        await self.store.update_batch(batch.id, {"status": "cancelling", "cancelled_at": utc_now()},
                                      only_status=("in_progress",))
        await self.store.cancel_batch(batch.id, utc_now() + self._ttl())
        await self.job_finished(batch.id)  # nothing may be running: finalize now
        return await self.store.get_batch(None, batch.id)

    async def job_finished(self, batch_id: str) -> None:
        """After one of the batch's jobs finished: finalize the batch when it was the last one."""
        if await self.store.any_open(batch_id):
            return
        batch = await self.store.get_batch(None, batch_id)
        if batch.status not in RUNNING:
            return
        final = "cancelled" if batch.status == "cancelling" else "completed"
        if not await self.store.update_batch(batch_id, {"status": "finalizing"}, only_status=(batch.status,)):
            return  # another worker is finalizing it
        await self._finalize(batch, final)

    async def recover_finalizing(self) -> int:
        """Finish the batches a worker started finalizing and then died (or hung) on: finalizing for
        longer than ``[jobs] finalize_timeout_seconds``. Returns how many were taken over."""
        cutoff = utc_now() - timedelta(seconds=self.settings.finalize_timeout_seconds)
        taken = 0
        for batch in await self.store.stale_batches("finalizing", cutoff, RECOVER_AT_ONCE):
            # The claim refreshes updated_at: of several sweeping workers one takes it over.
            if not await self.store.update_batch(batch.id, {"status": "finalizing"},
                                                 only_status=("finalizing",), updated_before=cutoff):
                continue
            log.warning("batch %s: finalizing stalled (its worker stopped); finishing it here", batch.id)
            await self._finalize(batch, "cancelled" if batch.cancelled_at is not None else "completed")
            taken += 1
        return taken

    async def _finalize(self, batch: Batch, final: str) -> None:
        batch_id = batch.id
        changes: dict[str, Any] = {"status": final, "finished_at": utc_now(), "expires_at": utc_now() + self._ttl()}
        if batch.kind == "openai":
            changes.update(await self._write_files(batch))
        await self.store.update_batch(batch_id, changes)
        log.info("batch %s %s", batch_id, final)
        if batch.webhook_url is not None:
            # Signed like a job's, webhook-id = the batch id; attempts are logged, not recorded.
            done = await self.store.get_batch(None, batch_id)
            body = msgspec.json.encode({"id": done.id, "object": "batch", "status": done.status,
                                        "counts": await self.counts(done)})
            await self.delivery.deliver(done.id, done.org_id, batch.webhook_url, body)

    async def _write_files(self, batch: Batch) -> dict[str, Any]:
        output, errors = [], []
        for job in await self.results(batch):
            line = openai_result_line(job)
            (output if job.status == "succeeded" else errors).append(line)
        ids: dict[str, Any] = {}
        for name, lines in (("output_file_id", output), ("error_file_id", errors)):
            if not lines:
                continue
            content = b"".join(msgspec.json.encode(line) + b"\n" for line in lines)
            record = StoredFile(id=new_id("file"), org_id=batch.org_id, purpose="batch_output",
                                filename=f"{batch.id}_{'output' if name == 'output_file_id' else 'error'}.jsonl",
                                bytes=len(content), created_at=utc_now(), expires_at=utc_now() + self._ttl())
            await self.files.save(record, content)
            ids[name] = record.id
        return ids


def openai_result_line(job: Job) -> dict[str, Any]:
    """One line of an OpenAI batch output or error file."""
    line_id = "batch_req_" + job.id.removeprefix("job_")
    if job.status == "succeeded":
        return {"id": line_id, "custom_id": job.custom_id,
                "response": {"status_code": 200, "request_id": job.id, "body": job.result}, "error": None}
    if job.status == "cancelled":
        return {"id": line_id, "custom_id": job.custom_id, "response": None,
                "error": {"code": "batch_cancelled", "message": "This request was cancelled with its batch."}}
    error = dict(job.error or {})
    status = int(error.pop("status", 500) or 500)
    return {"id": line_id, "custom_id": job.custom_id,
            "response": {"status_code": status, "request_id": job.id, "body": {"error": error}}, "error": None}
