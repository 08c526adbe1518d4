"""The hot statements of queued jobs on PostgreSQL, grouped: a job's insert at submit, its leaving
the outbox once published, its start and its outcome in a worker, and the batch "anything still
open?" probe.

Every one of them is one statement however many jobs it carries: callers that arrive while a
statement is in flight wait for the next one, which takes them all (group commit: one fsync for
many outcomes, and a worker acknowledges a message only once its own outcome's statement
returned, i.e. is durable). The statements run on one long-lived connection taken from the
engine's pool and used through its asyncpg driver connection — no SQLAlchemy statement
compilation, and no pool pre-ping per statement: a dead connection is replaced and the statement
sent once more (every one of them is safe to repeat: conditional updates, inserts that ignore
their own earlier copy). Values travel as one JSON document (``jsonb_to_recordset``), results
come back as JSON text decoded straight into the records.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec

from junction.domain.jobs.records import Job
from junction.errors import ServiceUnavailable
from junction.stores.documents.common import utc_now

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from junction.stores.documents.sql_store import SqlDatabase

log = logging.getLogger("junction.stores.jobs")

_OPEN = "('queued', 'running')"
# The jobs inserted, and those of them with a ``publish_by`` into the outbox, in one statement.
_INSERT = ("WITH inserted AS (INSERT INTO jobs SELECT * FROM jsonb_populate_recordset(NULL::jobs, $1::text::jsonb) "
           "ON CONFLICT DO NOTHING RETURNING id), "
           "outbox AS (INSERT INTO job_outbox (id, publish_by) SELECT r.id, r.publish_by FROM "
           "jsonb_to_recordset($1::text::jsonb) AS r(id text, publish_by timestamptz) JOIN inserted USING (id) "
           "WHERE r.publish_by IS NOT NULL) SELECT id FROM inserted")
# The claimed jobs as updated, and the others (finished, or claimed by nobody) as they are: the
# second SELECT sees the statement's snapshot, i.e. the rows before the UPDATE.
_BEGIN = (f"WITH claimed AS (UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = $2, "
          f"updated_at = $2 WHERE id = ANY($1::text[]) AND status IN {_OPEN} RETURNING jobs.*) "
          "SELECT to_jsonb(claimed.*)::text FROM claimed UNION ALL SELECT to_jsonb(jobs.*)::text FROM jobs "
          "WHERE id = ANY($1::text[]) AND id NOT IN (SELECT id FROM claimed)")
_FINISH = ("UPDATE jobs SET status = u.status, result = u.result, error = u.error, "
           "dead_letter = u.dead_letter, finished_at = $2, updated_at = $2, expires_at = u.expires_at "
           "FROM jsonb_to_recordset($1::text::jsonb) AS u(id text, status text, result jsonb, error jsonb, "
           "dead_letter boolean, expires_at timestamptz) "
           f"WHERE jobs.id = u.id AND jobs.status IN {_OPEN} RETURNING to_jsonb(jobs.*)::text")
_PUBLISHED = "DELETE FROM job_outbox WHERE id = ANY($1::text[])"
_OPEN_BATCHES = f"SELECT DISTINCT batch_id FROM jobs WHERE batch_id = ANY($1::text[]) AND status IN {_OPEN}"

#: What a dead or restarted server's connection raises (a shutdown, a reset socket, a closed one,
#: or a protocol state left inconsistent by a server that hung up while the connection was idle).
_CONNECTION_LOST = (asyncpg.PostgresConnectionError, asyncpg.exceptions.OperatorInterventionError,
                    asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError, OSError)
_job_decoder = msgspec.json.Decoder(Job)
_encoder = msgspec.json.Encoder()


class Outcome(msgspec.Struct):
    """A job's outcome, as :meth:`PgJobStatements.finish` stores it."""

    id: str
    status: str
    result: Any
    error: Any
    dead_letter: bool
    expires_at: datetime


#: A lane's statement: runs one group of its callers' arguments on the connection, returns one
#: result per argument, in order.
Flush = Callable[[asyncpg.Connection, list[Any]], Awaitable[list[Any]]]


class _Lane:
    def __init__(self, flush: Flush) -> None:
        self.flush = flush
        self.waiting: list[tuple[Any, asyncio.Future[Any]]] = []


class PgJobStatements:
    def __init__(self, database: SqlDatabase) -> None:
        self._db = database
        self._connection: AsyncConnection | None = None
        self._driver: asyncpg.Connection | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._insert = _Lane(self._flush_insert)
        self._published = _Lane(self._flush_published)
        self._begin = _Lane(self._flush_begin)
        self._finish = _Lane(self._flush_finish)
        self._open = _Lane(self._flush_open)
        self._lanes = (self._insert, self._published, self._begin, self._finish, self._open)

    # --- what the repository calls --------------------------------------------------------------

    async def insert(self, job: Job) -> bool:
        """Insert ``job``; ``False`` when a row with its id or idempotency key exists already."""
        inserted: bool = await self._submit(self._insert, job)
        return inserted

    async def published(self, job_ids: list[str]) -> None:
        await self._submit(self._published, job_ids)

    async def begin(self, job_id: str) -> Job | None:
        found: Job | None = await self._submit(self._begin, job_id)
        return found

    async def finish(self, outcome: Outcome) -> Job | None:
        stored: Job | None = await self._submit(self._finish, outcome)
        return stored

    async def any_open(self, batch_id: str) -> bool:
        open_: bool = await self._submit(self._open, batch_id)
        return open_

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        if self._connection is not None:
            connection, self._connection, self._driver = self._connection, None, None
            await connection.close()

    # --- grouping -------------------------------------------------------------------------------

    async def _submit(self, lane: _Lane, argument: Any) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        lane.waiting.append((argument, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_all())
        return await future

    async def _flush_all(self) -> None:
        while any(lane.waiting for lane in self._lanes):
            for lane in self._lanes:
                if not lane.waiting:
                    continue
                group, lane.waiting = lane.waiting, []
                try:
                    results = await self._run(lane.flush, [argument for argument, _ in group])
                except Exception as error:  # noqa: BLE001 - handed to every caller of the group
                    for _, future in group:
                        if not future.done():
                            future.set_exception(error)
                    continue
                for (_, future), result in zip(group, results, strict=True):
                    if not future.done():
                        future.set_result(result)

    async def _run(self, flush: Flush, arguments: list[Any]) -> list[Any]:
        for attempt in (1, 2):
            try:
                return await flush(await self._driver_connection(), arguments)
            except _CONNECTION_LOST as error:
                await self._drop_connection()
                if attempt == 2:
                    log.error("the document store is unavailable: %s", type(error).__name__)
                    raise ServiceUnavailable("the document store is unavailable; retry shortly",
                                             code="store_unavailable",
                                             headers={"Retry-After": "1"}) from error
        raise AssertionError("unreachable")

    async def _driver_connection(self) -> asyncpg.Connection:
        if self._driver is None:
            async with self._db.available():
                connection = await self._db.engine.connect()
                try:
                    raw = await connection.get_raw_connection()
                except BaseException:
                    await connection.close()
                    raise
            self._connection, self._driver = connection, raw.driver_connection
        return self._driver

    async def _drop_connection(self) -> None:
        connection, self._connection, self._driver = self._connection, None, None
        if connection is not None:
            try:
                await connection.invalidate()
                await connection.close()
            except Exception as error:  # noqa: BLE001 - it is dead already; a fresh one replaces it
                log.debug("closing a dead document-store connection: %s", type(error).__name__)

    # --- the statements -------------------------------------------------------------------------

    @staticmethod
    async def _flush_insert(driver: asyncpg.Connection, records: list[Job]) -> list[bool]:
        inserted = {row[0] for row in await driver.fetch(_INSERT, _encoder.encode(records).decode())}
        return [record.id in inserted for record in records]

    @staticmethod
    async def _flush_published(driver: asyncpg.Connection, groups: list[list[str]]) -> list[None]:
        await driver.execute(_PUBLISHED, list({job_id for group in groups for job_id in group}))
        return [None] * len(groups)

    @staticmethod
    async def _flush_begin(driver: asyncpg.Connection, job_ids: list[str]) -> list[Job | None]:
        rows = await driver.fetch(_BEGIN, list(set(job_ids)), utc_now())
        found = {job.id: job for job in (_job_decoder.decode(row[0]) for row in rows)}
        return [found.get(job_id) for job_id in job_ids]

    @staticmethod
    async def _flush_finish(driver: asyncpg.Connection, outcomes: list[Outcome]) -> list[Job | None]:
        first: dict[str, Outcome] = {}
        for outcome in outcomes:
            first.setdefault(outcome.id, outcome)  # two outcomes of one job in a group: the first wins
        rows = await driver.fetch(_FINISH, _encoder.encode(list(first.values())).decode(), utc_now())
        stored = {job.id: job for job in (_job_decoder.decode(row[0]) for row in rows)}
        return [stored.get(outcome.id) if first[outcome.id] is outcome else None for outcome in outcomes]

    @staticmethod
    async def _flush_open(driver: asyncpg.Connection, batch_ids: list[str]) -> list[bool]:
        open_ = {row[0] for row in await driver.fetch(_OPEN_BATCHES, list(set(batch_ids)))}
        return [batch_id in open_ for batch_id in batch_ids]

