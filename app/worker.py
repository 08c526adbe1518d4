"""Queued jobs in one process (:class:`Jobs`, built by the Runtime), and ``junction worker``. The
TaskIQ side — the broker for ``[stores] queue`` and its tasks (run jobs by id, up to
``PER_MESSAGE`` to a message) — is :mod:`junction.jobs_broker`, imported once the process queues
or runs a job.

* ``amqp://`` / ``amqps://``: taskiq-aio-pika on RabbitMQ — a durable quorum queue
  (``[jobs] queue_name``), persistent messages, and a message is acknowledged only after its task
  returned, i.e. after the job's outcome is stored (see :mod:`junction.domain.jobs.runner`). A worker
  that dies mid-job leaves its message unacknowledged: RabbitMQ hands it to another worker.
  Undecodable messages are logged and dropped by TaskIQ, so they never block the queue.
* ``memory://`` (the embedded default): TaskIQ's in-memory broker runs jobs inside the serving
  process; jobs left queued or running by a previous run are queued again at start (with one
  serving worker; several each run their own in-memory queue, and RabbitMQ is the way beyond one).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from junction.domain.batches.service import BatchService
from junction.domain.jobs.bridge_jobs import BridgeTurns
from junction.domain.jobs.delivery import WebhookDelivery
from junction.domain.jobs.outbox import PER_MESSAGE, Outbox
from junction.domain.jobs.records import JobFilter, JobRepository
from junction.domain.jobs.runner import JobRunner
from junction.domain.jobs.service import JobService
from junction.domain.jobs.webhooks import WebhookSender
from junction.domain.rag.ingest_jobs import IngestJobs
from junction.domain.services import Domain
from junction.errors import ConfigError, ServiceUnavailable
from junction.pipeline.gateway import Gateway
from junction.settings import Settings
from junction.stores.documents import url_scheme
from junction.stores.documents.common import utc_now
from junction.tasks import end_if_cancel_dropped, stop

log = logging.getLogger("junction.worker")

AMQP_SCHEMES = ("amqp", "amqps")
#: Seconds a closing process waits for its outbox to publish what it accepted.
DRAIN_SECONDS = 5.0


class JobQueue:
    """The process's :class:`~junction.domain.jobs.service.JobQueue`: the TaskIQ broker
    (:mod:`junction.jobs_broker`) behind it is built when first needed. RabbitMQ is connected at
    start (an unreachable queue stops start-up, and ``junction worker`` consumes it); the embedded
    in-memory queue only once a job is queued, so a worker that never queues one never imports
    TaskIQ."""

    def __init__(self, settings: Settings, runner: JobRunner, *, worker: bool) -> None:
        self._settings = settings
        self._runner = runner
        self._worker = worker
        self._queue: Any = None  # a jobs_broker.TaskiqJobQueue once built
        self._building = asyncio.Lock()

    @property
    def broker(self) -> Any:
        return self._queue.broker if self._queue is not None else None

    async def start(self) -> None:
        if url_scheme(self._settings.stores.queue) != "memory":
            await self._connected()

    async def enqueue(self, job_id: str, sent_at: float | None = None) -> None:
        queue = self._queue or await self._connected()
        await queue.enqueue(job_id, sent_at)

    async def enqueue_many(self, job_ids: list[str]) -> None:
        queue = self._queue or await self._connected()
        await queue.enqueue_many(job_ids)

    async def close(self) -> None:
        if self._queue is not None:
            await self._queue.broker.shutdown()

    async def connected_broker(self) -> Any:
        """The broker, connected (``junction worker`` consumes from it)."""
        return (await self._connected()).broker

    async def _connected(self) -> Any:
        async with self._building:
            if self._queue is None:
                from junction.jobs_broker import TaskiqJobQueue, build_broker, connect_broker

                broker = build_broker(self._settings, worker=self._worker)
                await connect_broker(broker, self._settings.stores.queue)
                self._queue = TaskiqJobQueue(broker, self._runner, self._settings.jobs.concurrency)
            return self._queue


class Jobs:
    """Everything queued jobs need in one process, built and started by the Runtime."""

    def __init__(self, settings: Settings, store: JobRepository, gateway: Gateway, *, worker: bool,
                 domain: Domain | None = None) -> None:
        jobs = settings.jobs
        self.settings = settings
        self.embedded = url_scheme(settings.stores.queue) == "memory"
        self.worker = worker
        self.webhooks = WebhookSender(jobs.allow_private_webhooks, jobs.webhook_timeout_seconds)
        self.delivery = WebhookDelivery(jobs, store, self.webhooks)
        self.runner = JobRunner(jobs, store, gateway, self.delivery)
        self.queue = JobQueue(settings, self.runner, worker=worker)
        self.outbox = Outbox(self.queue, store, jobs.publish_timeout_seconds)
        self.service = JobService(jobs, store, self.outbox, self.delivery)
        self.batches = BatchService(jobs, store, self.outbox, self.delivery)
        self.runner.batch_finished = self.batches.job_finished
        if domain is not None:
            self.runner.bridges = self.service.bridges = BridgeTurns(gateway, domain)
            if domain.knowledge is not None:
                self.runner.ingests = IngestJobs(domain.knowledge)
        self.store = store
        self._purger: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.webhooks.start()
        try:
            await self.queue.start()
        except ConfigError:
            await self.webhooks.close()
            raise
        if self.embedded and (self.settings.server.workers or 1) == 1:
            # With several Granian workers each would queue the same jobs again: recovery is
            # for the single-process embedded default (use RabbitMQ beyond it). Before the first
            # sweep, which would publish the queued ones a second time.
            await self._requeue_unfinished()
        if self.embedded or self.worker:
            self._purger = asyncio.create_task(self._sweep_forever())

    async def close(self) -> None:
        if self._purger is not None:
            # Ended, not only cancelled, before the stores it sweeps close: a sweep still in its
            # database call then ran on into a closed engine, and ``asyncio.run`` at the worker's
            # exit could wait for it for ever.
            purger, self._purger = self._purger, None
            await stop(purger)
        try:
            await self.outbox.drain(DRAIN_SECONDS)
            await self.queue.close()
        finally:
            await self.webhooks.close()

    async def _requeue_unfinished(self) -> None:
        for status in ("queued", "running"):
            found = [job.id for job in await self.store.list(None, JobFilter(status=status, limit=100_000))]
            for start in range(0, len(found), PER_MESSAGE):
                await self.queue.enqueue_many(found[start:start + PER_MESSAGE])
            if found:
                await self.store.published(found)

    async def sweep(self) -> None:
        """Jobs their server stored but did not publish in time published; expired jobs, batches
        and files (``files_dir`` too) deleted; stalled finalizations taken over."""
        await self.outbox.sweep()
        now = utc_now()
        await self.batches.files.sweep(now)
        gone = await self.store.purge_expired(now)
        if gone:
            log.info("purged %d expired jobs", gone)
        await self.batches.recover_finalizing()

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except ServiceUnavailable:
                log.warning("the jobs sweep failed: the document store is unavailable")
            except OSError as error:
                log.warning("the jobs sweep failed: files_dir: %s", error)
            end_if_cancel_dropped()  # a cancel lost in a store call (see the function) still ends it
            await asyncio.sleep(self.settings.jobs.sweep_interval_seconds)


def _not_per_task(record: logging.LogRecord) -> bool:
    return not (record.levelno == logging.INFO and str(record.msg).startswith("Executing task"))


async def run_worker(settings: Settings, concurrency: int | None = None) -> None:
    """``junction worker``: consume the queue until SIGTERM/SIGINT, then finish running jobs."""
    from taskiq.receiver import Receiver

    from junction.runtime import Runtime

    if url_scheme(settings.stores.queue) not in AMQP_SCHEMES:
        raise ConfigError("stores.queue: `junction worker` needs a RabbitMQ queue (amqp://...); with "
                          "memory:// jobs run inside `junction serve`")
    if concurrency is not None:
        settings.jobs.concurrency = concurrency
    # TaskIQ's receiver logs every message it runs at INFO: a formatted, written line per job, a
    # few per cent of a worker's CPU, saying nothing the job record does not. Its other lines stay.
    logging.getLogger("taskiq.receiver.receiver").addFilter(_not_per_task)
    runtime = Runtime(settings, worker=True)
    await runtime.start()
    try:
        assert runtime.jobs is not None
        finish = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, finish.set)
        broker = await runtime.jobs.queue.connected_broker()
        receiver = Receiver(broker, max_async_tasks=settings.jobs.concurrency, run_startup=False)
        log.info("worker consuming %s with concurrency %d", settings.jobs.queue_name, settings.jobs.concurrency)
        await receiver.listen(finish)
    finally:
        await runtime.close()

