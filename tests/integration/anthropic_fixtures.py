"""Fixtures for the Anthropic provider and ``/v1/messages`` tests: a fake Anthropic API and a
gateway serving both it (``anthropic/...``) and the session's fake OpenAI (``openai/...``, reset for
a test by ``fake_openai`` from ``tests/conftest.py``).

Test modules import the fixtures they use by name.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from junction.testing.server import JunctionProcess
from tests.conftest import openai_provider_table
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.fixtures import fake_fixtures
from tests.fakes.openai_upstream import FakeOpenAI

ANTHROPIC_UPSTREAM_KEY = "sk-ant-upstream-test"


fake_anthropic_server, fake_anthropic = fake_fixtures(
    lambda: FakeAnthropic(api_key=ANTHROPIC_UPSTREAM_KEY), scope="session",
    server_name="fake_anthropic_server", name="fake_anthropic")


@pytest.fixture(scope="session")
def anthropic_gateway(
    fake_anthropic_server: FakeAnthropic,
    fake_openai_server: FakeOpenAI,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[JunctionProcess]:
    directory = tmp_path_factory.mktemp("anthropic-gateway")
    config = (
        openai_provider_table(fake_openai_server, read_timeout=5.0)
        + f"""
[providers.anthropic]
api_key = "{ANTHROPIC_UPSTREAM_KEY}"
base_url = "{fake_anthropic_server.base_url}"
default_max_tokens = 2048
read_timeout = 5.0

[models."claude"]
deployments = [{{ model = "anthropic/claude-sonnet-4-5" }}]
"""
    )
    with JunctionProcess(directory, config) as server:
        yield server


@pytest.fixture
def openai_sdk(anthropic_gateway: JunctionProcess):
    import openai

    with openai.OpenAI(
        base_url=f"{anthropic_gateway.url}/v1", api_key=anthropic_gateway.key, max_retries=0, timeout=20
    ) as client:
        yield client


@pytest.fixture
def anthropic_sdk(anthropic_gateway: JunctionProcess):
    import anthropic

    with anthropic.Anthropic(
        base_url=anthropic_gateway.url, api_key=anthropic_gateway.key, max_retries=0, timeout=20
    ) as client:
        yield client
