"""``junction orgs`` and ``junction keys``: admin tasks from the command line, as an operator runs
them, including a revocation that a running server (sharing SQLite and the Redis bus) obeys."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from junction.testing.server import JunctionProcess
from tests.conftest import openai_provider_table
from tests.fakes.openai_upstream import FakeOpenAI

pytestmark = pytest.mark.slow

CLI_REDIS_DB = 13
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def write_config(directory: Path, cache: str, extra: str = "") -> Path:
    path = directory / "junction.toml"
    path.write_text(
        f"""{extra}
[server]
data_dir = "{directory}"

[stores]
documents = "sqlite+aiosqlite:///{directory}/documents.db"
cache = "{cache}"
""",
        encoding="utf-8",
    )
    return path


def junction(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "JUNCTION_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "junction.cli", *args, "--config", str(config), "--json"],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def lines(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_orgs_and_keys_from_the_command_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, "memory://")
    [org] = lines(junction(config, "orgs", "create", "Acme"))
    assert [o["id"] for o in lines(junction(config, "orgs", "list"))] == [org["id"]]
    [issued] = lines(
        junction(
            config,
            "keys",
            "create",
            "--org",
            org["id"],
            "--name",
            "ci",
            "--scope",
            "chat",
            "--scope",
            "admin",
            "--model",
            "openai/gpt-4o-mini",
        )
    )
    assert issued["key"].startswith("sk-jn-") and issued["scopes"] == ["chat", "admin"]
    [listed] = lines(junction(config, "keys", "list", "--org", org["id"]))
    assert listed["id"] == issued["id"] and "key" not in listed and issued["key"] not in json.dumps(listed)
    [revoked] = lines(junction(config, "keys", "revoke", "--org", org["id"], issued["id"]))
    assert revoked["revoked_at"] is not None
    assert oct((tmp_path / "junction-encryption-key").stat().st_mode)[-3:] == "600"


def test_cli_errors_are_one_line_messages(tmp_path: Path) -> None:
    config = write_config(tmp_path, "memory://")
    result = junction(config, "keys", "create", "--org", "org_missing", "--name", "x")
    assert (
        result.returncode == 1 and "not found" in result.stderr.lower() and "Traceback" not in result.stderr
    )
    result = junction(
        config, "keys", "create", "--org", "org_missing", "--name", "x", "--expires-at", "yesterday"
    )
    assert result.returncode == 2 and "expires-at" in result.stderr


def test_cli_revocation_reaches_a_running_server(tmp_path: Path, fake_openai_server: FakeOpenAI) -> None:
    client = redis.Redis(host="127.0.0.1", port=6379, db=CLI_REDIS_DB)
    client.flushdb()
    client.close()
    config = write_config(
        tmp_path, f"redis://127.0.0.1:6379/{CLI_REDIS_DB}", openai_provider_table(fake_openai_server)
    )
    [org] = lines(junction(config, "orgs", "create", "Ops"))
    [issued] = lines(junction(config, "keys", "create", "--org", org["id"], "--name", "svc"))
    server = JunctionProcess(tmp_path / "server", config.read_text(encoding="utf-8"))
    with server:

        def status() -> int:
            return httpx.get(
                f"{server.url}/v1/models", headers={"authorization": f"Bearer {issued['key']}"}
            ).status_code

        assert status() == 200
        lines(junction(config, "keys", "revoke", "--org", org["id"], issued["id"]))
        deadline = time.monotonic() + 1.0
        while status() != 401:
            assert time.monotonic() < deadline, "the server still accepts the revoked key"
            time.sleep(0.02)
