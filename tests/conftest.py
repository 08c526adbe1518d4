"""Shared fixtures: fake upstreams on loopback and a real ``junction serve`` process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from junction.testing.server import JunctionProcess
from tests.fakes.fixtures import fake_fixtures
from tests.fakes.openai_upstream import FakeOpenAI

UPSTREAM_KEY = "sk-upstream-test"

#: Every OpenAI-shaped answer the suite receives is checked against OpenAI's OpenAPI document; a
#: hung test fails alone, with its asyncio tasks' stacks.
pytest_plugins = ["tests.openapi.plugin", "tests.hangs"]


#: ``fake_openai_server``: the session's fake OpenAI; ``fake_openai``: the same, emptied of recorded
#: requests and scripted replies for the test.
fake_openai_server, fake_openai = fake_fixtures(lambda: FakeOpenAI(api_key=UPSTREAM_KEY), scope="session",
                                                server_name="fake_openai_server", name="fake_openai")


def openai_provider_table(fake: FakeOpenAI, **extra: object) -> str:
    lines = [f'[providers.openai]\napi_key = "{UPSTREAM_KEY}"\nbase_url = "{fake.base_url}"']
    lines += [f"{key} = {json.dumps(value)}" for key, value in extra.items()]  # JSON scalars are TOML
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def gateway(fake_openai_server: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JunctionProcess]:
    """A gateway with the OpenAI provider pointed at the fake, master key ``sk-test-master``."""
    directory: Path = tmp_path_factory.mktemp("gateway")
    config = openai_provider_table(fake_openai_server, read_timeout=2.0) + """
[server]
max_body_bytes = 65536

[models."fast"]
deployments = [{ model = "openai/gpt-4o-mini" }]
fallbacks = ["openai/gpt-4o"]
"""
    with JunctionProcess(directory, config) as server:
        yield server


@pytest.fixture
def openai_client(gateway: JunctionProcess):
    import openai

    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.key, max_retries=0, timeout=20) as client:
        yield client
