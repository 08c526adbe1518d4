"""Node services: processes ``junction serve`` runs beside its Granian workers, one of each per
node (the metrics plugin's usage relay is one). A plugin registers a :class:`NodeService` from
``register_node_services``; :func:`running` starts each in a process of its own before the
workers are spawned, tells the workers where it listens through an environment variable, and
stops it (SIGTERM, then a bounded wait) once the workers have exited, so what they sent last is
still handled.

Only ``junction serve`` runs them: an app built in-process (tests, the other commands) has none,
and whatever uses a service works without it.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("junction.node")

#: How long a service may take to listen before the workers start without it.
READY_SECONDS = 30.0
#: How long a stopping service may take to finish its work (a ledger's final flush).
STOP_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class NodeService:
    """A process beside the workers: ``python -m <module> <address>``, with the server's
    environment (its config file, ``PROMETHEUS_MULTIPROC_DIR``).

    It listens on the Unix socket ``address``, and exits once it has received SIGTERM and finished
    its work; it should ignore SIGINT (a terminal's Ctrl-C reaches the whole process group, and
    the workers still send their last work as they stop). ``env`` is the environment variable
    that gives the workers ``address``; it is unset when the service did not start."""

    name: str
    module: str
    env: str


@contextmanager
def running(services: list[NodeService], ready_seconds: float = READY_SECONDS,
            stop_seconds: float = STOP_SECONDS) -> Iterator[dict[str, str]]:
    """Start ``services``, yield ``{name: address}`` of those listening, stop them all on exit."""
    if not services:
        yield {}
        return
    folder = Path(tempfile.mkdtemp(prefix="junction-node-"))
    started: list[tuple[NodeService, subprocess.Popen[bytes]]] = []
    listening: dict[str, str] = {}
    try:
        for service in services:
            address = str(folder / f"{service.name}.sock")
            process = subprocess.Popen([sys.executable, "-m", service.module, address])
            started.append((service, process))
            if _wait_listening(address, process, ready_seconds):
                os.environ[service.env] = address
                listening[service.name] = address
            else:
                log.warning("node service %s did not start (exit code %s); the workers go on without it",
                            service.name, process.poll())
                os.environ.pop(service.env, None)
        yield listening
    finally:
        for service, process in started:
            os.environ.pop(service.env, None)
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + stop_seconds
        for service, process in started:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("node service %s did not stop within %.0f s; killed", service.name, stop_seconds)
                process.kill()
                process.wait()
        for leftover in folder.iterdir():
            leftover.unlink()
        folder.rmdir()


def _wait_listening(address: str, process: subprocess.Popen[bytes], seconds: float) -> bool:
    """Whether ``address`` accepts a connection within ``seconds`` (False as soon as ``process`` exited)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        if os.path.exists(address):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                try:
                    probe.connect(address)
                    return True
                except OSError:
                    pass
        time.sleep(0.02)
    return False
