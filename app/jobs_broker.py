"""The TaskIQ broker for ``[stores] queue`` and its tasks (``junction.jobs.run_many``: run these
jobs by id; ``junction.jobs.run``: one, sent by older servers). Imported only by a process that
queues or runs jobs (see :class:`junction.worker.JobQueue`): TaskIQ, with pydantic and aiohttp under it, is ~17 MB of a serving worker that never queues one.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from taskiq import AsyncBroker, Context, InMemoryBroker, TaskiqDepends

from junction.domain.jobs.runner import JobRunner
from junction.errors import ConfigError, ServiceUnavailable
from junction.settings import Settings
from junction.stores.documents import url_scheme
from junction.stores.startup_errors import StoreUnreachable, explaining, redacted
from junction.worker import AMQP_SCHEMES

log = logging.getLogger("junction.worker")

TASK_NAME = "junction.jobs.run"
TASK_MANY = "junction.jobs.run_many"
#: Seconds before a job whose outcome could not be stored goes back on the queue.
REQUEUE_DELAY = 1.0


async def connect_broker(broker: AsyncBroker, url: str) -> None:
    """``broker.startup()``; a queue that cannot be reached is a ConfigError naming its URL."""
    try:
        with explaining("queue", url):
            await broker.startup()
    except StoreUnreachable:
        raise
    except Exception as error:  # noqa: BLE001 - every broker's connect error: reported, not swallowed
        raise StoreUnreachable(
            f"stores.queue: {redacted(url)}: cannot connect to the queue ({type(error).__name__}). "
            "Start RabbitMQ, or fix the URL") from error


def build_broker(settings: Settings, *, worker: bool) -> AsyncBroker:
    url, jobs = settings.stores.queue, settings.jobs
    scheme = url_scheme(url)
    if scheme == "memory":
        return InMemoryBroker(max_async_tasks=jobs.concurrency)
    if scheme not in AMQP_SCHEMES:
        raise ConfigError(f"stores.queue: unsupported URL scheme {scheme!r}; use memory:// or amqp://")
    from taskiq_aio_pika import AioPikaBroker, Exchange, Queue

    broker = AioPikaBroker(url, qos=jobs.concurrency, exchange=Exchange(name=jobs.queue_name),
                           task_queues=[Queue(name=jobs.queue_name)],
                           dead_letter_queue=Queue(name=f"{jobs.queue_name}.dead_letter"))
    broker.is_worker_process = worker
    return broker


class TaskiqJobQueue:
    """:class:`~junction.domain.jobs.service.JobQueue` on a TaskIQ broker.

    A message carries the ids of up to ``PER_MESSAGE`` jobs (``junction.jobs.run_many``; the
    outbox groups the jobs stored meanwhile): the per-message work of the broker, aio-pika and
    TaskIQ, on both sides, is shared by them. It is acknowledged once every one of its jobs has its
    outcome stored; a redelivered message reruns only its jobs without one. At most
    ``concurrency`` jobs run at once, however they arrived. ``junction.jobs.run`` (one id) is
    still consumed, for messages sent by older servers.
    """

    def __init__(self, broker: AsyncBroker, runner: JobRunner, concurrency: int) -> None:
        slots = asyncio.Semaphore(concurrency)

        async def run_one(job_id: str) -> bool:
            """Run one job of a message; ``False`` when its outcome could not be stored."""
            async with slots:
                try:
                    await runner.run(job_id)
                except ServiceUnavailable:
                    log.warning("job %s: the document store is unavailable; queued again", job_id)
                    return False
            return True

        async def run_jobs(job_ids: list[str]) -> None:
            outcomes = await asyncio.gather(*(run_one(job_id) for job_id in job_ids), return_exceptions=True)
            again = [job_id for job_id, outcome in zip(job_ids, outcomes, strict=True) if outcome is False]
            if again:
                # Their outcomes could not be stored: a message with them goes back on the queue
                # before this one is acknowledged, so they are neither lost nor stuck.
                await asyncio.sleep(REQUEUE_DELAY)
                await self._many.kiq(again)
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome  # after the others finished: TaskIQ logs it, as for one job

        async def run_job(job_id: str, context: Annotated[Context, TaskiqDepends()],
                          sent_at: float | None = None) -> None:
            try:
                await runner.run(job_id, sent_at)
            except ServiceUnavailable:
                # The outcome could not be stored: a copy goes back on the queue before this
                # message is acknowledged, so the job is neither lost nor stuck.
                log.warning("job %s: the document store is unavailable; queued again", job_id)
                await asyncio.sleep(REQUEUE_DELAY)
                await context.requeue()

        self.broker = broker
        self._task = broker.register_task(run_job, task_name=TASK_NAME)
        self._many = broker.register_task(run_jobs, task_name=TASK_MANY)

    async def enqueue_many(self, job_ids: list[str]) -> None:
        await self._many.kiq(job_ids)

    async def enqueue(self, job_id: str, sent_at: float | None = None) -> None:
        if sent_at is None:
            await self._task.kiq(job_id)
        else:
            await self._task.kiq(job_id, sent_at=sent_at)
