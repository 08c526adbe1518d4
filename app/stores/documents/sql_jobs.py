"""The SQL repository of queued jobs, batches, batch files and per-org webhook secrets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from junction.domain.jobs.records import (
    FINISHED,
    Batch,
    Job,
    JobFilter,
    JobStatus,
    StoredFile,
    WebhookAttempt,
)
from junction.errors import NotFound
from junction.security.crypto import Cipher
from junction.stores.documents.common import Notifier, open_secret, utc_now
from junction.stores.documents.jobs_common import (
    WEBHOOK_SECRET_BINDING,
    batch_not_found,
    file_not_found,
    job_not_found,
    seal_webhook_secret,
)
from junction.stores.documents.protocol import ProviderSecret
from junction.stores.documents.sql import job_batches, job_files, job_outbox, jobs, webhook_secrets
from junction.stores.documents.sql_repos import SqlRepository, require_org, row_values, to_record

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from junction.stores.documents.sql_store import SqlDatabase

_JOB_JSON = ("principal", "request", "result", "error", "webhook_attempts", "headers")
_OPEN = ("queued", "running")
#: Rows per INSERT statement when a batch's jobs are stored (well under every driver's limit).
_INSERT_CHUNK = 500


def _job_row(job: Job) -> dict[str, Any]:
    """The ``jobs`` row of a job (``publish_by`` lives in ``job_outbox``)."""
    values = row_values(job, _JOB_JSON)
    del values["publish_by"]
    return values


def _visible(table: sa.Table, org_id: str | None, now: datetime) -> list[sa.ColumnElement[bool]]:
    clauses = [sa.or_(table.c.expires_at.is_(None), table.c.expires_at > now)]
    if org_id is not None:
        clauses.append(table.c.org_id == org_id)
    return clauses


def _pg_statements(database: SqlDatabase) -> Any:
    # Imported for PostgreSQL only: asyncpg is ~3 MB of a worker on SQLite.
    from junction.stores.documents.pg_jobs import PgJobStatements

    return PgJobStatements(database)


class SqlJobs(SqlRepository):
    def __init__(self, database: SqlDatabase, notify: Notifier, cipher: Cipher) -> None:
        super().__init__(database, notify)
        self._cipher = cipher
        #: PostgreSQL: the per-job statements grouped on one connection (SQLite: as written below).
        self._hot = None if database.is_sqlite else _pg_statements(database)

    async def close(self) -> None:
        if self._hot is not None:
            await self._hot.close()

    @asynccontextmanager
    async def _single(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one statement that is atomic by itself: no BEGIN/COMMIT around it
        (two round trips fewer on every job's start and finish, and on every read)."""
        async with self._db.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            yield connection

    async def create(self, job: Job) -> Job:
        if self._hot is not None:
            # No row inserted and no key: the row is this call's own, inserted by a first try
            # whose answer a dying connection lost.
            if await self._hot.insert(job) or job.idempotency_key is None:
                return job
            return await self._by_idempotency_key(job)
        try:
            async with self._db.begin() as connection:
                # Values as parameters, not .values(): the compiled statement is then cached.
                await connection.execute(jobs.insert(), [_job_row(job)])
                if job.publish_by is not None:
                    await connection.execute(job_outbox.insert(), [{"id": job.id, "publish_by": job.publish_by}])
            return job
        except IntegrityError:
            if job.idempotency_key is None:
                raise
        return await self._by_idempotency_key(job)

    async def _by_idempotency_key(self, job: Job) -> Job:
        async with self._single() as connection:
            query = sa.select(jobs).where(jobs.c.org_id == job.org_id,
                                          jobs.c.idempotency_key == job.idempotency_key)
            row = (await connection.execute(query)).first()
        if row is None:  # expired and purged in between: nothing to return but a retry
            raise NotFound("the job of this idempotency key just expired; submit again", code="job_expired")
        return to_record(row, Job)

    async def create_many(self, records: list[Job]) -> None:
        async with self._db.begin() as connection:
            for start in range(0, len(records), _INSERT_CHUNK):
                chunk = records[start:start + _INSERT_CHUNK]
                await connection.execute(jobs.insert(), [_job_row(job) for job in chunk])
                outbox = [{"id": job.id, "publish_by": job.publish_by} for job in chunk if job.publish_by is not None]
                if outbox:
                    await connection.execute(job_outbox.insert(), outbox)

    async def get(self, org_id: str | None, job_id: str) -> Job:
        query = sa.select(jobs).where(jobs.c.id == job_id, *_visible(jobs, org_id, utc_now()))
        async with self._single() as connection:
            row = (await connection.execute(query)).first()
        if row is None:
            raise job_not_found(job_id)
        return to_record(row, Job)

    async def list(self, org_id: str | None, where: JobFilter) -> list[Job]:
        clauses = _visible(jobs, org_id, utc_now())
        if where.status is not None:
            clauses.append(jobs.c.status == where.status)
        if where.batch_id is not None:
            clauses.append(jobs.c.batch_id == where.batch_id)
        if where.dead_letter is not None:
            clauses.append(jobs.c.dead_letter == where.dead_letter)
        if where.webhook_status is not None:
            clauses.append(jobs.c.webhook_status == where.webhook_status)
        if where.before is not None:
            anchor = sa.select(jobs.c.created_at).where(jobs.c.id == where.before).scalar_subquery()
            clauses.append(sa.or_(jobs.c.created_at < anchor,
                                  sa.and_(jobs.c.created_at == anchor, jobs.c.id < where.before)))
        order = ([jobs.c.batch_index] if where.batch_id is not None
                 else [jobs.c.created_at.desc(), jobs.c.id.desc()])
        query = sa.select(jobs).where(*clauses).order_by(*order).limit(where.limit)
        async with self._single() as connection:
            return [to_record(row, Job) for row in await connection.execute(query)]

    async def begin(self, job_id: str) -> Job | None:
        if self._hot is not None:
            return await self._hot.begin(job_id)
        async with self._single() as connection:
            for _ in range(3):
                now = utc_now()
                # One round trip when the job is open (the usual case); a finished or missing job
                # is read as it is.
                row = (await connection.execute(
                    jobs.update().where(jobs.c.id == job_id, jobs.c.status.in_(_OPEN))
                    .values(status="running", attempts=jobs.c.attempts + 1, started_at=now, updated_at=now)
                    .returning(*jobs.c))).first()
                if row is not None:
                    break
                row = (await connection.execute(sa.select(jobs).where(jobs.c.id == job_id))).first()
                # Inserted between the two (its insert overlaps the publish): claim it after all.
                if row is None or row.status not in _OPEN:
                    break
        return None if row is None else to_record(row, Job)

    async def published(self, job_ids: list[str]) -> None:
        if self._hot is not None:
            return await self._hot.published(job_ids)
        async with self._single() as connection:
            await connection.execute(job_outbox.delete().where(job_outbox.c.id.in_(job_ids)))

    async def claim_unpublished(self, now: datetime, lease_until: datetime, limit: int) -> list[str]:
        due = job_outbox.c.publish_by <= now
        queued = sa.exists().where(jobs.c.id == job_outbox.c.id, jobs.c.status == "queued")
        # Conditional on ``publish_by`` still being due: of two sweepers only one moves a row.
        claim = (job_outbox.update()
                 .where(job_outbox.c.id.in_(sa.select(job_outbox.c.id).where(due, queued).limit(limit)), due)
                 .values(publish_by=lease_until).returning(job_outbox.c.id))
        async with self._db.begin() as connection:
            claimed = [row[0] for row in await connection.execute(claim)]
            # Rows of jobs no longer queued (started after a publish whose row outlived it,
            # cancelled, or gone): nothing to publish.
            await connection.execute(job_outbox.delete().where(due, ~queued))
        return claimed

    async def finish(self, job_id: str, status: JobStatus, *, result: dict[str, Any] | None,
                     error: dict[str, Any] | None, expires_at: datetime, dead_letter: bool = False) -> Job | None:
        if self._hot is not None:
            from junction.stores.documents.pg_jobs import Outcome

            return await self._hot.finish(Outcome(job_id, status, result, error, dead_letter, expires_at))
        now = utc_now()
        async with self._single() as connection:
            row = (await connection.execute(
                jobs.update().where(jobs.c.id == job_id, jobs.c.status.in_(_OPEN))
                .values(status=status, result=result, error=error, dead_letter=dead_letter,
                        finished_at=now, updated_at=now, expires_at=expires_at)
                .returning(*jobs.c))).first()
        return None if row is None else to_record(row, Job)

    async def cancel(self, org_id: str | None, job_id: str, expires_at: datetime) -> Job:
        now = utc_now()
        async with self._db.begin() as connection:
            await connection.execute(
                jobs.update().where(jobs.c.id == job_id, jobs.c.status.in_(_OPEN),
                                    *_visible(jobs, org_id, now))
                .values(status="cancelled", finished_at=now, updated_at=now, expires_at=expires_at))
        return await self.get(org_id, job_id)

    async def any_open(self, batch_id: str) -> bool:
        if self._hot is not None:
            return await self._hot.any_open(batch_id)
        query = sa.select(jobs.c.id).where(jobs.c.batch_id == batch_id, jobs.c.status.in_(_OPEN)).limit(1)
        async with self._single() as connection:
            return await connection.scalar(query) is not None

    async def cancel_batch(self, batch_id: str, expires_at: datetime) -> int:
        now = utc_now()
        async with self._db.begin() as connection:
            done = await connection.execute(
                jobs.update().where(jobs.c.batch_id == batch_id, jobs.c.status == "queued")
                .values(status="cancelled", finished_at=now, updated_at=now, expires_at=expires_at))
        return int(done.rowcount or 0)

    async def record_webhook(self, job_id: str, attempt: WebhookAttempt, status: str) -> None:
        # Read-modify-write in one transaction: only the job's one worker delivers its webhook.
        async with self._db.begin() as connection:
            query = sa.select(jobs.c.webhook_attempts).where(jobs.c.id == job_id)
            if connection.dialect.name == "postgresql":
                query = query.with_for_update()
            found = (await connection.execute(query)).first()
            if found is None:
                return
            attempts = [*(found[0] or []), msgspec.to_builtins(attempt)]
            await connection.execute(jobs.update().where(jobs.c.id == job_id).values(
                webhook_attempts=attempts, webhook_status=status, updated_at=utc_now()))

    async def record_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        async with self._db.begin() as connection:
            await connection.execute(jobs.update().where(jobs.c.id == job_id, jobs.c.status == "running")
                                     .values(progress=progress, updated_at=utc_now()))

    async def counts(self, batch_id: str) -> dict[str, int]:
        query = (sa.select(jobs.c.status, sa.func.count()).where(jobs.c.batch_id == batch_id)
                 .group_by(jobs.c.status))
        async with self._single() as connection:
            return {status: count for status, count in await connection.execute(query)}

    async def purge_expired(self, now: datetime) -> int:
        async with self._db.begin() as connection:
            gone = await connection.execute(jobs.delete().where(jobs.c.expires_at <= now,
                                                                jobs.c.status.in_(tuple(FINISHED))))
            await connection.execute(job_batches.delete().where(job_batches.c.expires_at <= now))
            await connection.execute(job_files.delete().where(job_files.c.expires_at <= now))
        return int(gone.rowcount or 0)

    # --- batches and files --------------------------------------------------------------------

    async def create_batch(self, batch: Batch) -> None:
        async with self._db.begin() as connection:
            await connection.execute(job_batches.insert().values(row_values(batch, ("metadata",))))

    async def get_batch(self, org_id: str | None, batch_id: str) -> Batch:
        query = sa.select(job_batches).where(job_batches.c.id == batch_id,
                                             *_visible(job_batches, org_id, utc_now()))
        return await self._one(query, Batch, batch_not_found(batch_id))

    async def list_batches(self, org_id: str | None, kind: str, limit: int, after: str | None) -> list[Batch]:
        clauses = [*_visible(job_batches, org_id, utc_now()), job_batches.c.kind == kind]
        if after is not None:
            anchor = sa.select(job_batches.c.created_at).where(job_batches.c.id == after).scalar_subquery()
            clauses.append(sa.or_(job_batches.c.created_at < anchor,
                                  sa.and_(job_batches.c.created_at == anchor, job_batches.c.id < after)))
        query = (sa.select(job_batches).where(*clauses)
                 .order_by(job_batches.c.created_at.desc(), job_batches.c.id.desc()).limit(limit))
        async with self._db.connect() as connection:
            return [to_record(row, Batch) for row in await connection.execute(query)]

    async def update_batch(self, batch_id: str, changes: dict[str, Any], *,
                           only_status: tuple[str, ...] = (), updated_before: datetime | None = None) -> bool:
        clauses = [job_batches.c.id == batch_id]
        if only_status:
            clauses.append(job_batches.c.status.in_(only_status))
        if updated_before is not None:
            clauses.append(job_batches.c.updated_at < updated_before)
        async with self._db.begin() as connection:
            done = await connection.execute(
                job_batches.update().where(*clauses).values(**changes, updated_at=utc_now()))
        return bool(done.rowcount)

    async def stale_batches(self, status: str, updated_before: datetime, limit: int) -> list[Batch]:
        query = (sa.select(job_batches)
                 .where(job_batches.c.status == status, job_batches.c.updated_at < updated_before)
                 .order_by(job_batches.c.updated_at).limit(limit))
        async with self._single() as connection:
            return [to_record(row, Batch) for row in await connection.execute(query)]

    async def files_expired(self, file_ids: list[str], now: datetime) -> dict[str, bool]:
        query = sa.select(job_files.c.id, job_files.c.expires_at).where(job_files.c.id.in_(file_ids))
        async with self._single() as connection:
            rows = (await connection.execute(query)).all()
        return {row.id: row.expires_at is not None and row.expires_at <= now for row in rows}

    async def create_file(self, record: StoredFile, content: bytes) -> None:
        async with self._db.begin() as connection:
            await connection.execute(job_files.insert().values(**row_values(record), content=content))

    async def get_file(self, org_id: str | None, file_id: str) -> StoredFile:
        columns = [column for column in job_files.c if column.name != "content"]
        query = sa.select(*columns).where(job_files.c.id == file_id, *_visible(job_files, org_id, utc_now()))
        return await self._one(query, StoredFile, file_not_found(file_id))

    async def file_content(self, org_id: str | None, file_id: str) -> bytes:
        query = sa.select(job_files.c.content).where(job_files.c.id == file_id,
                                                     *_visible(job_files, org_id, utc_now()))
        async with self._db.connect() as connection:
            content = await connection.scalar(query)
        if content is None:
            raise file_not_found(file_id)
        return bytes(content)

    # --- per-org webhook secrets ----------------------------------------------------------------

    async def set_webhook_secret(self, org_id: str, secret: str | None) -> None:
        async with self._db.begin() as connection:
            await require_org(connection, org_id)
            await connection.execute(webhook_secrets.delete().where(webhook_secrets.c.org_id == org_id))
            if secret is not None:
                sealed = seal_webhook_secret(self._cipher, org_id, secret)
                await connection.execute(webhook_secrets.insert().values(
                    org_id=org_id, key_id=sealed.key_id, ciphertext=sealed.blob, updated_at=utc_now()))

    async def webhook_secret(self, org_id: str) -> str | None:
        query = sa.select(webhook_secrets.c.key_id, webhook_secrets.c.ciphertext).where(
            webhook_secrets.c.org_id == org_id)
        async with self._db.connect() as connection:
            row = (await connection.execute(query)).first()
        if row is None:
            return None
        secret: ProviderSecret = open_secret(self._cipher, org_id, WEBHOOK_SECRET_BINDING, row[0], bytes(row[1]))
        return secret.api_key
