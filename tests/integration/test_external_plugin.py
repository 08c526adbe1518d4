"""A third-party plugin package, installed with pip, is discovered and listed; its provider serves
requests, its stage counts streamed tokens and adds a route; each is switched off by config."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from junction.testing.server import JunctionProcess

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
    result = subprocess.run([sys.executable, "-m", "junction.cli", *args], capture_output=True, text=True,
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


# --- the package's stage: counts streamed tokens, adds a route and an ASGI middleware ----------

COUNTER_CONFIG = '[providers.echo]\nprefix = "parrot says"\n'


def counts(server: JunctionProcess) -> dict:
    response = httpx.get(f"{server.url}/api/v1/token-counter", headers={"authorization": f"Bearer {server.key}"})
    assert response.status_code == 200, response.text
    return response.json()


def test_its_stage_is_listed_in_the_resolved_order(echo_package, tmp_path):
    config = tmp_path / "junction.toml"
    config.write_text(COUNTER_CONFIG)
    output = junction("plugins", "--config", str(config), cwd=tmp_path)
    rows = [line.split() for line in output.splitlines()]
    assert ["token-counter", "middleware", "junction-echo-provider", "1.2.0", "yes"] in rows
    pipeline = output.split("PIPELINE", 1)[1].splitlines()[1:]
    # The built-in metrics stage shares the observe phase.
    assert [line.split()[1] for line in pipeline if "metrics" not in line] == [
        "token-counter", "authorize", "bridges", "agents", "org-credentials", "attempts"]
    counter = next(line for line in pipeline if "token-counter" in line)
    assert counter.split()[2] == "observe" and "routing policy: weighted" in pipeline[-1]


def test_its_stage_counts_streamed_tokens_and_its_route_shows_them(echo_package, tmp_path):
    with JunctionProcess(tmp_path, COUNTER_CONFIG) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.key, max_retries=0)
        chunks = list(client.chat.completions.create(
            model="echo/parrot", messages=[{"role": "user", "content": "one two three"}], stream=True))
        deltas = sum(1 for chunk in chunks if chunk.choices and chunk.choices[0].delta.content)
        client.chat.completions.create(model="echo/parrot", messages=[{"role": "user", "content": "not a stream"}])
        seen = counts(server)
        assert seen["tokens"] == deltas == 5  # "parrot", "says:", "one", "two", "three"
        assert [(s["status"], s["deployment"]) for s in seen["streams"]] == [(200, "echo/parrot")]
        assert httpx.get(f"{server.url}/healthz").headers["x-token-counter"] == "on"
        assert httpx.get(f"{server.url}/api/v1/token-counter").status_code == 401
        listed = httpx.get(f"{server.url}/api/v1/plugins", headers={"authorization": f"Bearer {server.key}"}).json()
        counter = next(entry for entry in listed if entry["name"] == "token-counter")
        assert counter.pop("position") in (1, 2)  # the built-in metrics stage shares the observe phase
        assert counter == {"name": "token-counter", "kind": "middleware", "package": "junction-echo-provider",
                           "version": "1.2.0", "enabled": True, "reason": "", "phase": "observe"}


def test_its_finally_runs_once_when_a_real_client_disconnects_mid_stream(echo_package, tmp_path, fake_openai):
    import asyncio
    import socket

    from tests.conftest import openai_provider_table
    from tests.fakes.openai_upstream import ScriptedReply
    from tests.integration.test_streaming import CHAT, wait_for

    reply = fake_openai.script(ScriptedReply(text="a long answer nobody reads", hold=asyncio.Event()))
    config = COUNTER_CONFIG + openai_provider_table(fake_openai, models=["gpt-4o"])  # no model-list fetch
    try:
        with JunctionProcess(tmp_path, config) as server:
            request = httpx.Request("POST", f"{server.url}/v1/chat/completions", json=CHAT,
                                    headers={"authorization": f"Bearer {server.key}"})
            with socket.create_connection(("127.0.0.1", server.port)) as sock:
                head = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                head += "".join(f"{k}: {v}\r\n" for k, v in request.headers.items() if k.lower() != "host")
                sock.sendall(head.encode() + b"\r\n" + request.read())
                assert b"200 OK" in sock.recv(65536)
                assert wait_for(lambda: len(fake_openai.requests) == 1)
            time.sleep(0.3)
            fake_openai.set_event(reply.hold)  # the upstream goes on; the gateway finds its client gone
            assert wait_for(lambda: fake_openai.disconnects == 1), "the upstream stream was not closed"
            assert wait_for(lambda: len(counts(server)["streams"]) == 1)
            time.sleep(0.3)  # a second run of the stage's finally would show up here
            streams = counts(server)["streams"]
            assert [(s["status"], s["deployment"]) for s in streams] == [(499, "openai/gpt-4o")]
    finally:
        fake_openai.set_event(reply.hold)


def test_its_stage_and_route_are_switched_off_by_config(echo_package, tmp_path):
    config = COUNTER_CONFIG + "[middleware.token-counter]\nenabled = false\n"
    (tmp_path / "listing.toml").write_text(config)
    output = junction("plugins", "--config", str(tmp_path / "listing.toml"), cwd=tmp_path)
    rows = [line.split(None, 4) for line in output.splitlines()]
    assert ["token-counter", "middleware", "junction-echo-provider", "1.2.0", "no (disabled in config)"] in rows
    assert "token-counter" not in output.split("PIPELINE", 1)[1]
    with JunctionProcess(tmp_path / "run", config) as server:
        assert httpx.get(f"{server.url}/api/v1/token-counter",
                         headers={"authorization": f"Bearer {server.key}"}).status_code == 404
        assert "x-token-counter" not in httpx.get(f"{server.url}/healthz").headers
