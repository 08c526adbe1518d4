"""Files Junction creates hold prompts, threads, key hashes and sealed credentials: owner-only."""

from __future__ import annotations

import stat
import subprocess
import sys

import httpx
import pytest

from junction.testing.server import JunctionProcess
from tests.conftest import openai_provider_table
from tests.fakes.openai_upstream import FakeOpenAI

pytestmark = pytest.mark.slow


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_sqlite_and_key_files_are_owner_only(tmp_path, fake_openai: FakeOpenAI):
    config = openai_provider_table(fake_openai) + f'[server]\ndata_dir = "{tmp_path}"\n'
    server = JunctionProcess(tmp_path, config)
    server.env.pop("JUNCTION_MASTER_KEY", None)
    server.config_path.write_text(config + '[auth]\nmaster_key = "sk-test-master"\n', encoding="utf-8")
    with server:
        headers = {"authorization": f"Bearer {server.key}"}
        response = httpx.post(f"{server.url}/api/v1/admin/orgs", json={"name": "files"}, headers=headers)
        assert response.status_code == 201, response.text
        files = [tmp_path / name for name in ("junction.db", "junction.db-wal", "junction.db-shm")]
        for path in files:
            assert path.exists(), path
        keys = [path for path in tmp_path.iterdir() if "key" in path.name and path.is_file()]
        assert keys, sorted(p.name for p in tmp_path.iterdir())
        for path in [*files, *keys]:
            assert mode(path) & 0o077 == 0, f"{path.name} is {oct(mode(path))}"


def test_an_existing_world_readable_database_is_tightened(tmp_path, fake_openai: FakeOpenAI):
    database = tmp_path / "junction.db"
    database.touch(mode=0o644)
    database.chmod(0o644)
    with JunctionProcess(tmp_path, openai_provider_table(fake_openai)):
        pass
    assert mode(database) == 0o600


def test_junction_migrate_creates_both_sqlite_stores_owner_only(tmp_path):
    config = tmp_path / "junction.toml"
    config.write_text(f'[stores]\ndocuments = "sqlite+aiosqlite:///{tmp_path}/documents.db"\n'
                      f'metrics = "sqlite+aiosqlite:///{tmp_path}/metrics.db"\n', encoding="utf-8")
    migrated = subprocess.run([sys.executable, "-m", "junction.cli", "migrate", "--config", str(config)],
                              capture_output=True, text=True, timeout=120)
    assert migrated.returncode == 0, migrated.stderr
    databases = [path for path in tmp_path.iterdir() if path.name.startswith(("documents.db", "metrics.db"))]
    assert {"documents.db", "metrics.db"} <= {path.name for path in databases}
    for path in databases:
        assert mode(path) & 0o077 == 0, f"{path.name} is {oct(mode(path))}"
