"""What a new operator sees when the first start goes wrong: one or two lines naming the store, its
URL (password hidden), the cause and the fix — the traceback only with --debug — and no file
written by a start whose config does not validate."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from junction.testing.server import free_port
from tests.stores.conftest import POSTGRES_SERVER, create_postgres_database, drop_postgres_database

KEY = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I="
SHARED_KEYS = f'[security]\nencryption_keys = [{{ id = "k1", key = "{KEY}" }}]\n'


def serve(directory: Path, config: str, *flags: str) -> subprocess.CompletedProcess[str]:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "junction.toml").write_text(config, encoding="utf-8")
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("JUNCTION_CONFIG", "JUNCTION_MASTER_KEY")}
    return subprocess.run([sys.executable, "-m", "junction.cli", *flags, "serve", "--port", str(free_port())],
                          cwd=directory, env=environment, capture_output=True, text=True, timeout=60)


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("junction: cannot start")
            or line.startswith("junction: configuration error")]


@pytest.mark.parametrize("store", ["documents", "metrics"])
def test_a_database_that_does_not_exist(tmp_path: Path, store: str) -> None:
    # The usage ledger's too: its workers started and buffered usage for ever, warning that a
    # server which answers "no such database" did not answer.
    url = POSTGRES_SERVER.replace("postgres@", "postgres:hunter2@") + "/junction_no_such_database"
    result = serve(tmp_path, f'[stores]\n{store} = "{url}"\n' + SHARED_KEYS)
    [line] = error_lines(result)
    assert line.startswith(f"junction: cannot start: stores.{store}: ")
    assert "hunter2" not in result.stderr and "postgres:***@" in line
    assert "database 'junction_no_such_database' does not exist" in line
    assert "createdb junction_no_such_database" in line and "junction migrate" in line
    assert len(result.stderr.splitlines()) <= 5  # the data directory, the master key, the error, the hint


@pytest.mark.parametrize("store", ["documents", "metrics"])
async def test_an_unmigrated_database(tmp_path: Path, store: str) -> None:
    # The usage ledger's too: its schema check ran only in the workers, each failing its start
    # with a traceback, and the server exited without saying why in one line.
    name = await create_postgres_database()
    try:
        result = serve(tmp_path, f'[stores]\n{store} = "{POSTGRES_SERVER}/{name}"\n' + SHARED_KEYS)
    finally:
        await drop_postgres_database(name)
    [line] = error_lines(result)
    assert line.startswith(f"junction: configuration error: stores.{store}: ")
    assert f"/{name} is at schema revision none" in line and "run `junction migrate` first" in line
    assert len(result.stderr.splitlines()) <= 5


def test_a_ledger_url_that_does_not_parse(tmp_path: Path) -> None:
    result = serve(tmp_path, '[stores]\nmetrics = "postgresql+asyncpg://postgres@127.0.0.1:notaport/j"\n')
    [line] = error_lines(result)
    assert line.startswith("junction: configuration error: stores.metrics: not a database URL (")


@pytest.mark.parametrize(("store", "url", "server"), [
    ("cache", "redis://:hunter2@127.0.0.1:{port}/0", "Redis"),
    ("queue", "amqp://guest:hunter2@127.0.0.1:{port}/", "RabbitMQ"),
    ("documents", "postgresql+asyncpg://postgres:hunter2@127.0.0.1:{port}/junction", "PostgreSQL"),
])
def test_an_unreachable_store(tmp_path: Path, store: str, url: str, server: str) -> None:
    config = f'[stores]\n{store} = "{url.format(port=closed_port())}"\n' + SHARED_KEYS
    result = serve(tmp_path, config)
    [line] = error_lines(result)
    assert line.startswith(f"junction: cannot start: stores.{store}: ") and ":***@127.0.0.1:" in line
    assert "cannot connect" in line and f"Start {server}, or fix the host and port" in line
    assert "hunter2" not in result.stderr
    assert f"junction: data directory {tmp_path} " in result.stderr  # where its state lives, said
    debug = serve(tmp_path / "debug", config, "--debug")
    assert debug.returncode == 2 and "Traceback" in debug.stderr and "ConnectionRefusedError" in debug.stderr


def test_a_config_error_writes_nothing(tmp_path: Path) -> None:
    # valid TOML, invalid config: shared store without encryption keys
    result = serve(tmp_path, '[stores]\ndocuments = "postgresql+asyncpg://postgres@127.0.0.1:1/x"\n')
    assert result.returncode == 2 and "security.encryption_keys: required" in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["junction.toml"]
    result = serve(tmp_path, '[middleware.jwt]\nenabled = true\n')  # a plugin refusing its config
    assert result.returncode == 2 and "middleware" in result.stderr and "jwt" in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["junction.toml"]


def test_settings_of_a_plugin_that_is_off_are_a_warning(tmp_path: Path) -> None:
    config = f'[middleware.jwt]\nsecret = "s3cret-s3cret-s3cret-s3cret-s3cret"\n[stores]\ncache = "redis://127.0.0.1:{closed_port()}/0"\n'
    result = serve(tmp_path, config)  # stops at the unreachable cache, after the warnings
    assert ("junction: warning: middleware.jwt: the table has settings but the plugin is off by default, so "
            "they are ignored; add enabled = true to turn it on") in result.stderr.splitlines()
