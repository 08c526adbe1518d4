"""Runs a real ``junction serve`` process on a free loopback port, for end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from junction.testing.upstream import free_port


def serving_workers(serve_pid: int) -> list[int]:
    """The Granian workers under the ``junction serve`` process ``serve_pid`` (Linux), or that
    process itself without any. Workers are spawned by multiprocessing; its resource tracker and
    the node services (the usage relay) are children too: not workers."""
    children = Path(f"/proc/{serve_pid}/task/{serve_pid}/children").read_text().split()
    return [int(child) for child in children
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()] or [serve_pid]


class JunctionProcess:
    """``with JunctionProcess(tmp_path, config_toml) as server:`` → ``server.url``, ``server.key``."""

    def __init__(self, directory: Path, config: str = "", *, env: dict[str, str] | None = None,
                 master_key: str = "sk-test-master", workers: int = 1) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_path = self.directory / "junction.toml"
        self.config_path.write_text(config, encoding="utf-8")
        self.key = master_key
        self.port = free_port()
        self.workers = workers
        self.env = {**os.environ, "JUNCTION_MASTER_KEY": master_key, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.directory / "junction.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> JunctionProcess:
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "junction.cli", "serve", "--config", str(self.config_path),
             "--port", str(self.port), "--workers", str(self.workers)],
            cwd=self.directory, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"junction exited with {self.process.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"junction did not become healthy in {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def worker_pids(self) -> list[int]:
        """The Granian worker processes serving requests (Linux)."""
        assert self.process is not None
        return serving_workers(self.process.pid)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> JunctionProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
