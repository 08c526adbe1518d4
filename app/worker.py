"""The TaskIQ side of queued jobs, kept thin: the broker for ``[stores] queue``, the one task
(``junction.jobs.run``: run a job by id), and ``junction worker``.

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
from typing import Annotated

from taskiq import AsyncBroker, Context, InMemoryBroker, TaskiqDepends

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
from junction.stores.startup_errors import StoreUnreachable, explaining, redacted

log = logging.getLogger("junction.worker")

TASK_NAME = "junction.jobs.run"
TASK_MANY = "junction.jobs.run_many"
AMQP_SCHEMES = ("amqp", "amqps")
#: Seconds before a job whose outcome could not be stored goes back on the queue.
REQUEUE_DELAY = 1.0
#: Seconds a closing process waits for its outbox to publish what it accepted.
DRAIN_SECONDS = 5.0


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

        self._task = broker.register_task(run_job, task_name=TASK_NAME)
        self._many = broker.register_task(run_jobs, task_name=TASK_MANY)

    async def enqueue_many(self, job_ids: list[str]) -> None:
        await self._many.kiq(job_ids)

    async def enqueue(self, job_id: str, sent_at: float | None = None) -> None:
        if sent_at is None:
            await self._task.kiq(job_id)
        else:
            await self._task.kiq(job_id, sent_at=sent_at)


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
        self.broker = build_broker(settings, worker=worker)
        self.queue = TaskiqJobQueue(self.broker, self.runner, jobs.concurrency)
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
            await connect_broker(self.broker, self.settings.stores.queue)
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
            self._purger.cancel()
            self._purger = None
        try:
            await self.outbox.drain(DRAIN_SECONDS)
            await self.broker.shutdown()
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
        receiver = Receiver(runtime.jobs.broker, max_async_tasks=settings.jobs.concurrency, run_startup=False)
        log.info("worker consuming %s with concurrency %d", settings.jobs.queue_name, settings.jobs.concurrency)
        await receiver.listen(finish)
    finally:
        await runtime.close()

