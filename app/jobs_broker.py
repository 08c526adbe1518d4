"""The TaskIQ broker for ``[stores] queue`` and the one task (``junction.jobs.run``: run a job by
id). Imported only by a process that queues or runs jobs (see :class:`junction.worker.JobQueue`):
TaskIQ, with pydantic and aiohttp under it, is ~17 MB of a serving worker that never queues one.
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
    """:class:`~junction.domain.jobs.service.JobQueue` on a TaskIQ broker."""

    def __init__(self, broker: AsyncBroker, runner: JobRunner) -> None:
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

    async def enqueue(self, job_id: str, sent_at: float | None = None) -> None:
        if sent_at is None:
            await self._task.kiq(job_id)
        else:
            await self._task.kiq(job_id, sent_at=sent_at)
