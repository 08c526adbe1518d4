"""The outbox: a submit is answered once the job is stored, and a job whose server died before
publishing it still runs, exactly once.

The server reaches RabbitMQ through a TCP relay the test can hold: while held, what the server
sends (its publishes) waits in the relay, so the 202s are answered and nothing reaches the queue.
The server is then SIGKILLed; a worker's sweep publishes the stored jobs."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from junction.testing.server import JunctionProcess
from tests.fakes.openai_upstream import FakeOpenAI
from tests.jobs.conftest import chat_body, client, jobs_config, wait_for
from tests.jobs.rabbit import AMQP_URL, WorkerProcess, delete_queue

pytestmark = pytest.mark.slow


class HeldRelay:
    """A TCP relay to RabbitMQ on loopback; ``hold()`` stops forwarding what clients send."""

    def __init__(self, target_port: int = 5672) -> None:
        self.target_port = target_port
        self.forwarding = threading.Event()
        self.forwarding.set()
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> HeldRelay:
        self._thread.start()
        self._ready.wait(10)
        return self

    def hold(self) -> None:
        self.forwarding.clear()

    def stop(self) -> None:
        async def close() -> None:
            relays = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in relays:
                task.cancel()
            await asyncio.gather(*relays, return_exceptions=True)
            self.loop.stop()

        asyncio.run_coroutine_threadsafe(close(), self.loop)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._relay, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(source: asyncio.StreamReader, target: asyncio.StreamWriter, held: bool) -> None:
            while data := await source.read(65536):
                while held and not self.forwarding.is_set():
                    await asyncio.sleep(0.05)  # held: what the client sent never arrives
                target.write(data)
                await target.drain()

        await asyncio.gather(pipe(reader, upstream_writer, True), pipe(upstream_reader, writer, False),
                             return_exceptions=True)


@pytest.fixture
def relay() -> Iterator[HeldRelay]:
    relay = HeldRelay().start()
    yield relay
    relay.stop()


def _kill_with_children(server: JunctionProcess) -> None:
    """SIGKILL ``junction serve`` and its Granian worker (the process that answered the 202s)."""
    assert server.process is not None
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for child in children:
        os.kill(int(child), signal.SIGKILL)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=10)


async def _messages_on(queue: str) -> int:
    import aio_pika

    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)
    finally:
        await connection.close()


def test_jobs_accepted_by_a_server_killed_before_publishing_run_exactly_once(
        fake_openai_server: FakeOpenAI, fake_openai: FakeOpenAI, relay: HeldRelay, tmp_path: Path) -> None:
    queue = f"junction.test.{secrets.token_hex(4)}"
    documents = f"sqlite+aiosqlite:///{tmp_path}/jobs.db"
    sweeping = 'publish_timeout_seconds = 1.0\nsweep_interval_seconds = 0.3\n'
    held_url = AMQP_URL.replace(":5672/", f":{relay.port}/")
    first = JunctionProcess(tmp_path / "first", jobs_config(fake_openai_server, queue=held_url, documents=documents,
                                                            extra=f'queue_name = "{queue}"\n' + sweeping))
    second = JunctionProcess(tmp_path / "second", jobs_config(fake_openai_server, queue=AMQP_URL, documents=documents,
                                                              extra=f'queue_name = "{queue}"\n' + sweeping))
    texts = [f"outbox {n}" for n in range(5)]
    try:
        with first:
            relay.hold()
            with client(first.url) as http:
                accepted = []
                for text in texts:
                    started = time.monotonic()
                    response = http.post("/api/v1/jobs", json={"request": chat_body(text)})
                    assert response.status_code == 202, response.text
                    assert time.monotonic() - started < 2.0  # not waiting for the held broker
                    accepted.append(response.json()["id"])
            time.sleep(0.3)
            _kill_with_children(first)
        assert asyncio.run(_messages_on(queue)) == 0  # nothing was published before the kill
        with second, WorkerProcess(second.directory, second.config_path), client(second.url) as http:
            jobs = [wait_for(http, job_id, timeout=30) for job_id in accepted]
            time.sleep(1.0)  # a second sweep, and any duplicate message, have had their chance
            again = [http.get(f"/api/v1/jobs/{job_id}").json() for job_id in accepted]
    finally:
        asyncio.run(delete_queue(queue))
    assert [job["status"] for job in jobs] == ["succeeded"] * len(texts)
    assert [job["attempts"] for job in again] == [1] * len(texts)
    seen = [request.json()["messages"][0]["content"] for request in fake_openai.requests
            if request.path.endswith("/chat/completions")]
    assert sorted(text for text in seen if text.startswith("outbox ")) == texts  # each called once
