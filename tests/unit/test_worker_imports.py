"""What a serving worker imports is what it costs in memory: ``junction serve`` spawns its Granian
workers as fresh interpreters, so every module a worker imports is paid once per worker (issue 17:
idle RSS per worker). Libraries the default configuration's serving path does not use stay out of
it; each costs several MB (measured in a worker's RSS).

Run in a subprocess the way a spawned worker starts: its ``__main__`` is the ``junction`` console
script (which imports ``junction.cli``), then Granian calls the app factory and runs the lifespan.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

#: Not imported by a serving worker with the default configuration (SQLite stores, no Redis).
NOT_IN_A_WORKER = (
    "redis",  # with redis-py's OpenTelemetry, psutil and cryptography imports: ~10 MB
    "sqlalchemy.orm",  # SQLAlchemy's asyncio package imports it for AsyncSession: ~6 MB
    "sqlalchemy.dialects.postgresql",  # JSONB, and every PostgreSQL driver's module: ~2 MB
    "alembic",
    # off by default or not configured: their modules load when they are turned on
    "junction.middleware.budget.stage",
    "junction.middleware.rate_limit.stage",
    "junction.middleware.response_cache.stage",
    "junction.middleware.circuit_breaker.stage",
    "junction.providers.gemini.adapter",
    "pydantic",
    "numpy",
    "jinja2",
    "taskiq",
    "aiohttp",
    "pyreqwest",  # http_client = "pyreqwest" only (the default client is on the event loop): ~10 MB
    # the command line's own: the worker's __main__ imports junction.cli, not its commands
    "argparse",
    "junction.domain.commands",
)

_UPGRADE = """
from junction.cli import _upgrade_local_files
from junction.settings import load_settings
_upgrade_local_files(load_settings())
"""

_WORKER = """
import asyncio, json, sys
import junction.cli  # the spawned worker's __mp_main__: the console script imports it
from junction.asgi import create_app_from_environment

async def lifespan() -> None:
    app = create_app_from_environment()
    inbox: asyncio.Queue = asyncio.Queue()
    sent: list = []

    async def send(message) -> None:
        sent.append(message["type"])
        if message["type"] == "lifespan.startup.complete":
            await inbox.put({"type": "lifespan.shutdown"})

    await inbox.put({"type": "lifespan.startup"})
    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, send)
    assert sent[0] == "lifespan.startup.complete", sent

asyncio.run(lifespan())
print(json.dumps(sorted(sys.modules)))
"""


def _run(code: str, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_a_serving_worker_does_not_import_what_its_path_does_not_use(tmp_path: Path) -> None:
    config = tmp_path / "junction.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path}"\n\n[providers.openai]\napi_key = "sk-test"\n'
                      'base_url = "http://127.0.0.1:9/v1"\n', encoding="utf-8")
    env = {**os.environ, "JUNCTION_CONFIG": str(config), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    _run(_UPGRADE, env, tmp_path)  # as `junction serve` does before it starts workers
    modules = set(json.loads(_run(_WORKER, env, tmp_path).splitlines()[-1]))
    assert "junction.asgi" in modules and "sqlalchemy" in modules  # the worker did build its app
    imported = [name for name in NOT_IN_A_WORKER
                if name in modules or any(module.startswith(name + ".") for module in modules)]
    assert imported == []


_DEFERRED_PACKAGE = """
import asyncio, sys
import sqlalchemy as sa
from junction.stores.sql_engine import open_engine

engine = open_engine("sqlite+aiosqlite:///:memory:")
assert "sqlalchemy.orm" not in sys.modules
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession  # the package's own __init__ runs now
import sqlalchemy.ext.asyncio as package
assert type(engine) is AsyncEngine and package.AsyncEngine is AsyncEngine and package.AsyncSession is AsyncSession

async def main() -> None:
    async with AsyncSession(engine) as session:
        assert (await session.execute(sa.text("SELECT 1"))).scalar() == 1
    async with engine.connect() as connection:
        assert (await connection.execute(sa.text("SELECT 2"))).scalar() == 2
    await engine.dispose()

asyncio.run(main())
print("ok")
"""


def test_the_asyncio_package_of_sqlalchemy_is_whole_once_asked_for_more_than_the_engine(tmp_path: Path) -> None:
    """open_engine() loads SQLAlchemy's async engine without its package's ORM half; whoever then
    imports the package (a plugin's AsyncSession, Alembic) gets all of it, with the same classes."""
    assert _run(_DEFERRED_PACKAGE, dict(os.environ), tmp_path).strip() == "ok"


def test_serve_starts_workers_with_mimalloc_committing_on_demand(monkeypatch: pytest.MonkeyPatch) -> None:
    from junction import cli

    monkeypatch.delenv("MIMALLOC_ARENA_EAGER_COMMIT", raising=False)
    cli._worker_allocator_settings()
    assert os.environ["MIMALLOC_ARENA_EAGER_COMMIT"] == "0"
    monkeypatch.setenv("MIMALLOC_ARENA_EAGER_COMMIT", "1")
    cli._worker_allocator_settings()  # an operator's own setting wins
    assert os.environ["MIMALLOC_ARENA_EAGER_COMMIT"] == "1"
