"""Publishing stored jobs to the queue after the 202: a transactional outbox.

A submit stores the job with ``publish_by`` set (``[jobs] publish_timeout_seconds`` ahead) and
answers as soon as that one insert committed; the queue is not on the request path. Each process
has one :class:`Outbox` task that publishes the ids handed to it in groups (up to ``PER_MESSAGE``
ids a message, the messages of a group in flight together, so the broker confirms them
together); the confirmed ones are taken
out of the outbox a moment later (``CLEAR_AFTER``), many in one statement. A publish that fails is
retried by the same task, with backoff, while the process lives.

Nothing is lost when the process dies between the commit and the publish: the job is still
``queued`` with its ``publish_by`` in the past, and a sweep (:meth:`Outbox.sweep`, run by workers
and the embedded server) publishes it. A message sent twice (the process died after the publish,
before the outbox was cleared) is harmless: a worker runs a job only while it is open, and the
first stored outcome wins.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from junction.domain.jobs.records import JobRepository
from junction.domain.jobs.service import JobQueue
from junction.stores.documents.common import utc_now

log = logging.getLogger("junction.jobs.outbox")

#: Jobs published together (their messages in flight at once, confirmed together).
GROUP = 500
#: Job ids one message carries at most: the per-message costs (broker, aio-pika, TaskIQ, the
#: acknowledgement) shared, while the jobs of a large batch still spread over several workers.
PER_MESSAGE = 16
#: Seconds before a failed publish is tried again, doubling up to ``RETRY_MAX``.
RETRY_FIRST = 0.5
RETRY_MAX = 10.0
#: Seconds confirmed jobs wait to be cleared from the outbox together (one statement for all the
#: jobs confirmed meanwhile, not one per publish; a crash in between only means a duplicate message).
CLEAR_AFTER = 0.05
#: Overdue jobs one sweep publishes at most (the next sweep takes the rest).
SWEEP_AT_ONCE = 5000


class Outbox:
    def __init__(self, queue: JobQueue, store: JobRepository, publish_timeout_seconds: float) -> None:
        self.queue = queue
        self.store = store
        self.timeout = timedelta(seconds=publish_timeout_seconds)
        self._pending: list[str] = []
        self._confirmed: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self._clearer: asyncio.Task[None] | None = None

    def add(self, job_ids: list[str]) -> None:
        """Publish these stored jobs, off the caller's path."""
        self._pending.extend(job_ids)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._publish_pending())

    async def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) for what was handed over to be published; what is
        left then is published by a sweep."""
        if self._task is not None and not self._task.done():
            try:
                async with asyncio.timeout(timeout):  # not wait_for: on 3.11 it can drop a cancel
                    await asyncio.shield(self._task)
            except TimeoutError:
                log.warning("%d jobs not published at shutdown; a sweep will publish them", len(self._pending))
                self._task.cancel()
        if self._clearer is not None:
            self._clearer.cancel()
        await self._clear()

    async def sweep(self) -> int:
        """Publish the queued jobs whose ``publish_by`` passed; returns how many."""
        now = utc_now()
        claimed = await self.store.claim_unpublished(now, now + self.timeout, SWEEP_AT_ONCE)
        if claimed:
            log.warning("%d stored jobs were not published in time (their server stopped, or the queue "
                        "was down); publishing them now", len(claimed))
            await self._publish(claimed)
        return len(claimed)

    async def _publish_pending(self) -> None:
        delay = RETRY_FIRST
        while self._pending:
            group, self._pending = self._pending[:GROUP], self._pending[GROUP:]
            failed = await self._publish(group)
            if not failed:
                delay = RETRY_FIRST
                continue
            self._pending[:0] = failed
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    async def _publish(self, job_ids: list[str]) -> list[str]:
        """Publish ``job_ids`` together and have the confirmed ones cleared from the outbox soon;
        returns the ids whose publish failed."""
        messages = [job_ids[start:start + PER_MESSAGE] for start in range(0, len(job_ids), PER_MESSAGE)]
        outcomes = await asyncio.gather(*(self.queue.enqueue_many(message) for message in messages),
                                        return_exceptions=True)
        sent = [job_id for message, outcome in zip(messages, outcomes, strict=True) if outcome is None
                for job_id in message]
        failed = [job_id for message, outcome in zip(messages, outcomes, strict=True) if outcome is not None
                  for job_id in message]
        if failed:
            error = next(outcome for outcome in outcomes if outcome is not None)
            if isinstance(error, asyncio.CancelledError):
                raise error
            # The type only: a broker error's text may carry its URL, credentials included.
            log.warning("publishing %d jobs failed (%s); trying again (a sweep's: at its next lease)",
                        len(failed), type(error).__name__)
        if sent:
            self._confirmed.extend(sent)
            if self._clearer is None or self._clearer.done():
                self._clearer = asyncio.create_task(self._clear_soon())
        return failed

    async def _clear_soon(self) -> None:
        while self._confirmed:
            await asyncio.sleep(CLEAR_AFTER)
            await self._clear()

    async def _clear(self) -> None:
        confirmed, self._confirmed = self._confirmed, []
        if not confirmed:
            return
        try:
            await self.store.published(confirmed)
        except Exception as error:  # noqa: BLE001 - the store's errors vary; the sweep covers it
            # Still in the outbox: a sweep publishes them again, and the duplicate message finds
            # the job running or finished (harmless).
            log.warning("clearing %d published jobs from the outbox failed (%s)", len(confirmed),
                        type(error).__name__)
