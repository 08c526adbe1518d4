"""The document store contract for queued jobs, batches, files and webhook secrets, on every backend."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from junction.domain.jobs.records import Batch, Job, JobFilter, StoredFile, WebhookAttempt
from junction.errors import NotFound
from junction.stores.documents.common import new_id, utc_now
from junction.stores.documents.protocol import DocumentStore
from tests.stores.conftest import Backend


def a_job(org_id: str, **fields: object) -> Job:
    now = utc_now()
    values: dict[str, object] = {
        "id": new_id("job"), "org_id": org_id, "principal": {"id": "key:1", "kind": "key", "scopes": ["chat"]},
        "endpoint": "chat.completions", "request": {"model": "openai/gpt-4o", "messages": []},
        "request_hash": "h1", "created_at": now, "updated_at": now}
    values.update(fields)
    return Job(**values)  # type: ignore[arg-type]


async def test_job_lifecycle_is_conditional_and_org_scoped(store: DocumentStore) -> None:
    job = await store.jobs.create(a_job("org_a", webhook_url="http://x/hook", webhook_status="pending"))
    assert await store.jobs.get("org_a", job.id) == job
    assert await store.jobs.get(None, job.id) == job  # the master key's unconfined view
    with pytest.raises(NotFound):
        await store.jobs.get("org_b", job.id)

    await store.jobs.record_progress(job.id, {"done": 1, "total": 9})  # not running yet: ignored
    assert (await store.jobs.get("org_a", job.id)).progress is None
    started = await store.jobs.begin(job.id)
    assert started is not None and (started.status, started.attempts) == ("running", 1)
    await store.jobs.record_progress(job.id, {"done": 3, "total": 9})
    assert (await store.jobs.get("org_a", job.id)).progress == {"done": 3, "total": 9}
    again = await store.jobs.begin(job.id)  # a redelivery counts again
    assert again is not None and again.attempts == 2
    expires = utc_now() + timedelta(hours=1)
    finished = await store.jobs.finish(job.id, "succeeded", result={"id": "c1"}, error=None, expires_at=expires)
    assert finished is not None and finished.status == "succeeded" and finished.result == {"id": "c1"}
    assert finished.expires_at == expires and finished.attempts == 2
    assert finished.progress == {"done": 3, "total": 9}  # the last progress stays with the outcome
    # The first outcome wins: a second worker's write, or a late cancel, changes nothing.
    assert await store.jobs.finish(job.id, "failed", result=None, error={"message": "x"}, expires_at=expires) is None
    assert (await store.jobs.cancel("org_a", job.id, expires)).status == "succeeded"
    done = await store.jobs.begin(job.id)
    assert done is not None and (done.status, done.attempts, done.result) == ("succeeded", 2, {"id": "c1"})
    assert await store.jobs.begin("job_missing") is None

    attempt = WebhookAttempt(at=utc_now(), status=500, error="HTTP 500", duration_ms=3.5)
    await store.jobs.record_webhook(job.id, attempt, "pending")
    await store.jobs.record_webhook(job.id, WebhookAttempt(at=utc_now(), status=200), "delivered")
    stored = await store.jobs.get("org_a", job.id)
    assert stored.webhook_status == "delivered" and stored.webhook_attempts[0] == attempt
    assert [item.status for item in stored.webhook_attempts] == [500, 200]


async def test_idempotency_key_returns_the_first_job(store: DocumentStore) -> None:
    first = await store.jobs.create(a_job("org_k", idempotency_key="k-1"))
    second = await store.jobs.create(a_job("org_k", idempotency_key="k-1", request_hash="other"))
    assert second.id == first.id and second.request_hash == "h1"
    other_org = await store.jobs.create(a_job("org_other", idempotency_key="k-1"))
    assert other_org.id != first.id
    # Jobs without a key never collide.
    assert (await store.jobs.create(a_job("org_k"))).id != (await store.jobs.create(a_job("org_k"))).id


async def test_cancel_list_filters_counts_and_expiry(store: DocumentStore) -> None:
    org = "org_" + new_id("x")
    queued = await store.jobs.create(a_job(org))
    batch_jobs = [a_job(org, batch_id="bt_1" + org, batch_index=index) for index in range(3)]
    await store.jobs.create_many(batch_jobs)
    expires = utc_now() + timedelta(hours=1)
    cancelled = await store.jobs.cancel(org, queued.id, expires)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    await store.jobs.begin(batch_jobs[0].id)
    await store.jobs.finish(batch_jobs[0].id, "failed", result=None, error={"message": "no"},
                            expires_at=expires, dead_letter=True)

    listed = await store.jobs.list(org, JobFilter(batch_id="bt_1" + org))
    assert [job.batch_index for job in listed] == [0, 1, 2]
    assert [job.id for job in await store.jobs.list(org, JobFilter(dead_letter=True))] == [batch_jobs[0].id]
    assert [job.id for job in await store.jobs.list(org, JobFilter(status="cancelled"))] == [queued.id]
    assert len(await store.jobs.list(org, JobFilter(limit=2))) == 2
    assert await store.jobs.list("org_nobody", JobFilter()) == []
    assert await store.jobs.counts("bt_1" + org) == {"failed": 1, "queued": 2}
    assert await store.jobs.any_open("bt_1" + org) and not await store.jobs.any_open("bt_none")
    await store.jobs.begin(batch_jobs[1].id)
    assert await store.jobs.cancel_batch("bt_1" + org, expires) == 1  # the running one carries on
    assert await store.jobs.counts("bt_1" + org) == {"failed": 1, "running": 1, "cancelled": 1}

    past = utc_now() - timedelta(seconds=1)
    old = await store.jobs.create(a_job(org))
    await store.jobs.finish(old.id, "succeeded", result={}, error=None, expires_at=past)
    with pytest.raises(NotFound):
        await store.jobs.get(org, old.id)  # expired results are gone at once, purged or not
    await store.jobs.purge_expired(utc_now())  # (MongoDB's TTL index may have been first)
    assert old.id not in [job.id for job in await store.jobs.list(None, JobFilter(status="succeeded", limit=1000))]
    assert (await store.jobs.get(org, batch_jobs[1].id)).status == "running"  # unfinished jobs stay


async def test_batches_files_and_webhook_secrets(store: DocumentStore) -> None:
    org = await store.orgs.create("jobs")
    now = utc_now()
    batch = Batch(id=new_id("batch"), org_id=org.id, kind="openai", total=2, created_at=now, updated_at=now,
                  metadata={"team": "a"})
    await store.jobs.create_batch(batch)
    assert await store.jobs.get_batch(org.id, batch.id) == batch
    with pytest.raises(NotFound):
        await store.jobs.get_batch("org_other", batch.id)
    assert await store.jobs.update_batch(batch.id, {"status": "completed"}, only_status=("in_progress",))
    assert not await store.jobs.update_batch(batch.id, {"status": "cancelling"}, only_status=("in_progress",))
    assert [item.id for item in await store.jobs.list_batches(org.id, "openai", 10, None)] == [batch.id]
    assert await store.jobs.list_batches(org.id, "junction", 10, None) == []

    record = StoredFile(id=new_id("file"), org_id=org.id, purpose="batch", filename="in.jsonl", bytes=5,
                        created_at=now)
    await store.jobs.create_file(record, b"hello")
    assert await store.jobs.get_file(org.id, record.id) == record
    assert await store.jobs.file_content(org.id, record.id) == b"hello"
    with pytest.raises(NotFound):
        await store.jobs.file_content("org_other", record.id)

    assert await store.jobs.webhook_secret(org.id) is None
    await store.jobs.set_webhook_secret(org.id, "whsec-org")
    assert await store.jobs.webhook_secret(org.id) == "whsec-org"
    await store.jobs.set_webhook_secret(org.id, None)
    assert await store.jobs.webhook_secret(org.id) is None
    with pytest.raises(NotFound):
        await store.jobs.set_webhook_secret("org_missing", "x")


async def test_concurrent_starts_and_outcomes_first_outcome_wins(store: DocumentStore) -> None:
    """Many jobs started and finished at once (PostgreSQL groups them into one statement each):
    every job gets exactly one outcome, the first, and headers come back as stored."""
    created = await asyncio.gather(*(store.jobs.create(a_job("org_g", headers={"x-junction-cache-ttl": str(n)}))
                                     for n in range(40)))
    started = await asyncio.gather(*(store.jobs.begin(job.id) for job in created))
    assert all(job is not None and job.status == "running" and job.attempts == 1 for job in started)
    expires = utc_now() + timedelta(hours=1)
    # Two outcomes for each job, sent together: one of them is stored, the other reports so.
    outcomes = await asyncio.gather(*(store.jobs.finish(job.id, status, result={"n": index}, error=None,
                                                        expires_at=expires)
                                      for job in created for index, status in enumerate(("succeeded", "failed"))))
    for number, job in enumerate(created):
        pair = outcomes[2 * number:2 * number + 2]
        assert sum(outcome is not None for outcome in pair) == 1, pair
        stored = await store.jobs.get("org_g", job.id)
        winner = next(outcome for outcome in pair if outcome is not None)
        assert (stored.status, stored.result) == (winner.status, winner.result)
        assert stored.headers == {"x-junction-cache-ttl": str(number)}


async def test_stalled_batches_and_file_expiry(store: DocumentStore) -> None:
    org = await store.orgs.create("sweep")
    long_ago = utc_now() - timedelta(hours=1)
    stalled = Batch(id=new_id("batch"), org_id=org.id, kind="openai", status="finalizing", created_at=long_ago,
                    updated_at=long_ago)
    await store.jobs.create_batch(stalled)
    cutoff = utc_now() - timedelta(minutes=1)
    assert [batch.id for batch in await store.jobs.stale_batches("finalizing", cutoff, 10)] == [stalled.id]
    # The claim refreshes updated_at: a second claim with the same cutoff takes nothing.
    assert await store.jobs.update_batch(stalled.id, {"status": "finalizing"}, only_status=("finalizing",),
                                         updated_before=cutoff)
    assert not await store.jobs.update_batch(stalled.id, {"status": "finalizing"}, only_status=("finalizing",),
                                             updated_before=cutoff)
    assert await store.jobs.stale_batches("finalizing", cutoff, 10) == []

    now = utc_now()
    kept = StoredFile(id=new_id("file"), org_id=org.id, purpose="batch", filename="a", bytes=0, created_at=now)
    gone = StoredFile(id=new_id("file"), org_id=org.id, purpose="batch_output", filename="b", bytes=0,
                      created_at=now, expires_at=now - timedelta(seconds=1))
    for record in (kept, gone):
        await store.jobs.create_file(record, b"")
    found = await store.jobs.files_expired([kept.id, gone.id, "file_missing"], now)
    # An expired record is reported so, or (MongoDB's TTL index) already gone: the sweep deletes both.
    assert found[kept.id] is False and found.get(gone.id, True) is True and "file_missing" not in found


async def test_job_writes_outlive_a_reset_connection(backend: Backend, postgres_database: str) -> None:
    """PostgreSQL: the grouped job statements run on one long-lived connection without a pre-ping;
    when the server drops it (a restart, a failover), the next write reconnects and goes through."""
    if backend.name != "postgresql":
        pytest.skip("the grouped statements are PostgreSQL's")
    store = await backend.open()
    try:
        job = await store.jobs.create(a_job("org_reset"))
        engine = create_async_engine(postgres_database)
        try:
            async with engine.connect() as admin:
                killed = await admin.scalar(sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND query LIKE 'WITH inserted AS (INSERT INTO jobs%'"))  # the grouped statements' connection
        finally:
            await engine.dispose()
        assert killed and killed >= 1
        started = await store.jobs.begin(job.id)
        assert started is not None and (started.status, started.attempts) == ("running", 1)
        finished = await store.jobs.finish(job.id, "succeeded", result={"ok": True}, error=None,
                                           expires_at=utc_now() + timedelta(hours=1))
        assert finished is not None and finished.result == {"ok": True}
    finally:
        await backend.close()


async def test_the_outbox_hands_each_overdue_job_to_one_sweeper(store: DocumentStore) -> None:
    org = "org_" + new_id("x")
    now = utc_now()
    overdue = await store.jobs.create(a_job(org, publish_by=now - timedelta(seconds=5)))
    published = await store.jobs.create(a_job(org, publish_by=now - timedelta(seconds=5)))
    started = await store.jobs.create(a_job(org, publish_by=now - timedelta(seconds=5)))
    not_yet = await store.jobs.create(a_job(org, publish_by=now + timedelta(minutes=5)))
    await store.jobs.published([published.id])
    assert await store.jobs.begin(started.id) is not None  # a started job needs no publish
    lease = now + timedelta(minutes=1)
    claims = await asyncio.gather(*(store.jobs.claim_unpublished(now, lease, 100) for _ in range(3)))
    mine = [job_id for claim in claims for job_id in claim if job_id in {overdue.id, published.id,
                                                                          started.id, not_yet.id}]
    assert mine == [overdue.id]  # once, to one of the three sweepers
    assert overdue.id not in await store.jobs.claim_unpublished(now, lease, 100)  # leased
    # Past the lease (the sweeper died before publishing): claimed again.
    later = lease + timedelta(seconds=1)
    assert overdue.id in await store.jobs.claim_unpublished(later, later + timedelta(minutes=1), 100)
