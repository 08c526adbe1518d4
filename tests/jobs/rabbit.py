"""Helpers for the RabbitMQ tests: a ``junction worker`` child process and queue clean-up."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
AMQP_URL = os.environ.get("JUNCTION_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


class WorkerProcess:
    """``junction worker --config <path>`` in ``directory``, its output in ``worker-N.log``."""

    count = 0

    def __init__(self, directory: Path, config_path: Path, concurrency: int = 4) -> None:
        WorkerProcess.count += 1
        self.directory = directory
        self.log_path = directory / f"worker-{WorkerProcess.count}.log"
        self.args = [sys.executable, "-m", "junction.cli", "worker", "--config", str(config_path),
                     "--concurrency", str(concurrency)]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> WorkerProcess:
        log = self.log_path.open("wb")
        env = {**os.environ, "JUNCTION_MASTER_KEY": "sk-test-master", "PYTHONPATH": str(PROJECT_ROOT)}
        self.process = subprocess.Popen(self.args, cwd=self.directory, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}:\n{self.output()}")
            if "Listening started" in self.output():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"worker did not start in {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no clean-up, no acknowledgement of what it was running."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for_port(host: str = "127.0.0.1", port: int = 5672, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{host}:{port} did not open in {timeout}s")


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


async def delete_queue(name: str) -> None:
    """Remove the test's queue, dead-letter queue and exchange."""
    import aio_pika

    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        for queue in (name, f"{name}.dead_letter"):
            await channel.queue_delete(queue)
        await channel.exchange_delete(name)
    finally:
        await connection.close()


async def publish_raw(name: str, body: bytes, headers: dict[str, str] | None = None) -> None:
    """Put a message on the job queue exactly as given (a poison message)."""
    import aio_pika

    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(name)
        await exchange.publish(aio_pika.Message(body=body, headers=headers or {},
                                                delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=name)
    finally:
        await connection.close()
