"""A third-party provider package, installed with pip, is discovered, listed, serves requests,
and is switched off by config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest

from app.testing.server import JunctionProcess

PACKAGE = Path(__file__).resolve().parents[2] / "examples" / "junction-echo-provider"


def pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
                          capture_output=True, text=True, check=True, timeout=300)


@pytest.fixture(scope="module")
def echo_package():
    pip("install", "--no-deps", str(PACKAGE))
    yield
    pip("uninstall", "-y", "junction-echo-provider")


def junction(*args: str, cwd: Path) -> str:
    result = subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True,
                            cwd=cwd, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_listed_by_junction_plugins(echo_package, tmp_path):
    config = tmp_path / "junction.toml"
    config.write_text("[providers.echo]\nprefix = \"hi\"\n")
    rows = [line.split() for line in junction("plugins", "--config", str(config), cwd=tmp_path).splitlines()]
    assert rows[0] == ["NAME", "KIND", "PACKAGE", "VERSION", "ENABLED"]
    assert ["echo", "provider", "junction-echo-provider", "1.2.0", "yes"] in rows
    assert ["openai", "provider", "junction-gateway"] == [r for r in rows if r[0] == "openai"][0][:3]


def test_serves_requests_and_models(echo_package, tmp_path):
    with JunctionProcess(tmp_path, '[providers.echo]\nprefix = "parrot says"\n') as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.key, max_retries=0)
        completion = client.chat.completions.create(model="echo/parrot",
                                                    messages=[{"role": "user", "content": "hello"}])
        assert completion.choices[0].message.content == "parrot says: hello"
        streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="echo/parrot", messages=[{"role": "user", "content": "hello"}], stream=True) if c.choices)
        assert streamed.strip() == "parrot says: hello"
        assert "echo/parrot" in [m.id for m in client.models.list()]
        listed = httpx.get(f"{server.url}/api/v1/plugins", headers={"authorization": f"Bearer {server.key}"}).json()
        assert {"name": "echo", "kind": "provider", "package": "junction-echo-provider", "version": "1.2.0",
                "enabled": True, "reason": ""} in listed
        assert httpx.get(f"{server.url}/api/v1/plugins").status_code == 401


def test_switched_off_by_config(echo_package, tmp_path):
    config = tmp_path / "junction.toml"
    config.write_text("[providers.echo]\nenabled = false\n")
    rows = [line.split(None, 4) for line in junction("plugins", "--config", str(config), cwd=tmp_path).splitlines()]
    assert ["echo", "provider", "junction-echo-provider", "1.2.0", "no (disabled in config)"] in rows
    with JunctionProcess(tmp_path / "run", "[providers.echo]\nenabled = false\n") as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.key, max_retries=0)
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="echo/parrot", messages=[{"role": "user", "content": "x"}])
        assert caught.value.code == "provider_disabled"
