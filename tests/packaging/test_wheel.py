"""The wheel is self-contained and claims only the ``junction`` import namespace: built once, installed
into a fresh virtualenv, and run from an empty directory — ``junction serve`` on the embedded
default answers /healthz and a chat call through a fake upstream, and ``junction migrate`` brings a
PostgreSQL database to the current schema. Written for the import names after the namespace rename
(``/work/coord/rename_namespace.py``); before it, there is no ``junction`` package and it skips."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

pytest.importorskip("junction", reason="the import names are not yet moved into the junction namespace")

from junction.testing.server import free_port  # noqa: E402
from tests.conftest import UPSTREAM_KEY  # noqa: E402
from tests.fakes.openai_upstream import FakeOpenAI  # noqa: E402
from tests.stores.conftest import POSTGRES_SERVER, create_postgres_database, drop_postgres_database  # noqa: E402

pytestmark = pytest.mark.slow

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SOURCE_ROOTS = {"junction": "app", "junction/providers": "plugins/providers",
                "junction/middleware": "plugins/middleware", "junction/migrations": "migrations",
                "junction/vector_indexes": "plugins/vector_indexes"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-q", "-w", str(out)],
                           cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    [path] = out.glob("junction_gateway-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(home)], check=True, timeout=300)
    installed = subprocess.run([str(home / "bin" / "pip"), "install", "-q", str(wheel)],
                               capture_output=True, text=True, timeout=900)
    assert installed.returncode == 0, installed.stderr
    return home


def environment(**extra: str) -> dict[str, str]:
    keep = {key: value for key, value in os.environ.items()
            if key not in ("JUNCTION_CONFIG", "PYTHONPATH", "VIRTUAL_ENV") and not key.startswith("PYTEST")}
    return {**keep, **extra}


def test_the_wheel_holds_only_the_junction_namespace_and_every_source_file(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith((".dist-info", ".data"))}
    assert top_level == {"junction"}
    for package, folder in SOURCE_ROOTS.items():
        nested = [p for p, f in SOURCE_ROOTS.items() if p != package and p.startswith(package + "/")]
        expected = {f"{package}/{path.relative_to(PROJECT_ROOT / folder).as_posix()}"
                    for path in (PROJECT_ROOT / folder).rglob("*.py") if "__pycache__" not in path.parts}
        expected = {name for name in expected if not any(name.startswith(n + "/") for n in nested)}
        assert expected <= set(names), sorted(expected - set(names))[:5]
    for shipped in ("junction/granian.toml", "junction/junction.example.toml", "junction/migrations/env.py",
                    "junction/migrations/script.py.mako", "junction/migrations/metrics/env.py",
                    "junction/static/swagger-ui/swagger-ui-bundle.js", "junction/providers/openai/prices.toml",
                    "junction/static/chatbot/widget.js", "junction/middleware/admin_ui/templates/layout.html",
                    "junction/middleware/admin_ui/static/chart.umd.min.js"):
        assert shipped in names, shipped


@pytest.fixture
def empty_directory(tmp_path: Path) -> Path:
    directory = tmp_path / "empty"
    directory.mkdir()
    return directory


def test_serve_from_an_empty_directory(venv: Path, empty_directory: Path, tmp_path: Path,
                                       fake_openai_server: FakeOpenAI) -> None:
    config = tmp_path / "provider.toml"
    config.write_text(f'[providers.openai]\napi_key = "{UPSTREAM_KEY}"\nbase_url = "{fake_openai_server.base_url}"\n',
                      encoding="utf-8")
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen([str(venv / "bin" / "junction"), "serve", "--config", str(config), "--port", str(port)],
                               cwd=empty_directory, env=environment(JUNCTION_MASTER_KEY="sk-master"),
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise AssertionError((tmp_path / "serve.log").read_text())
        reply = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=20,
                           headers={"authorization": "Bearer sk-master"},
                           json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["content"]
    finally:
        process.terminate()
        process.wait(timeout=20)
    # its state is in the directory it started from, and nowhere near the source tree
    assert (empty_directory / "junction.db").is_file()
    assert str(PROJECT_ROOT) not in (tmp_path / "serve.log").read_text()


def test_migrate_against_postgresql(venv: Path, empty_directory: Path, tmp_path: Path) -> None:
    name = asyncio.run(create_postgres_database())
    try:
        url = f"{POSTGRES_SERVER}/{name}"
        config = tmp_path / "pg.toml"
        config.write_text(f'[stores]\ndocuments = "{url}"\nmetrics = "{url}"\n', encoding="utf-8")
        migrated = subprocess.run([str(venv / "bin" / "junction"), "migrate", "--config", str(config)],
                                  cwd=empty_directory, env=environment(), capture_output=True, text=True, timeout=300)
        assert migrated.returncode == 0, migrated.stderr
        check = (f"import asyncio, asyncpg\nasync def main():\n    c = await asyncpg.connect('{url.replace('+asyncpg', '')}')\n"
                 "    print(await c.fetchval('select count(*) from information_schema.tables "
                 "where table_name in (\\'orgs\\', \\'usage_events\\')'))\n    await c.close()\nasyncio.run(main())\n")
        counted = subprocess.run([str(venv / "bin" / "python"), "-c", check], capture_output=True, text=True, timeout=60)
        assert counted.stdout.strip() == "2", counted.stderr
    finally:
        asyncio.run(drop_postgres_database(name))
