"""A real gateway in front of one provider's fake, and the fixtures the provider test modules share."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import openai
import pytest

from junction.testing.server import JunctionProcess
from junction.testing.upstream import FakeUpstream
from tests.fakes.fixtures import fake_fixtures


def provider_gateway(
    directory: Path, provider: str, api_key: str, base_url: str, **keys: Any
) -> JunctionProcess:
    """A started ``junction serve`` with ``[providers.<provider>]`` pointed at ``base_url``."""
    table = {"api_key": api_key, "base_url": base_url, **keys}
    lines = "\n".join(f"{key} = {json.dumps(value)}" for key, value in table.items())
    return JunctionProcess(directory, f"[providers.{provider}]\n{lines}\n").start()


def sdk(server: JunctionProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.key, max_retries=0, timeout=20)


def provider_fixtures(
    provider: str,
    make_fake: Callable[[], FakeUpstream],
    api_key: str,
    *,
    client: Callable[[JunctionProcess], AbstractContextManager[Any]] = sdk,
    **keys: Any,
) -> tuple[Any, Any, Any, Any]:
    """The fixtures of a provider test module, to assign to ``upstream, junction, fake, client``:
    the fake (started once per module), a gateway in front of it (``keys`` go into its provider
    table), the fake reset for each test, and a ``client`` (the openai SDK unless given) of the
    gateway."""
    upstream, fake = fake_fixtures(make_fake)

    @pytest.fixture(scope="module", name="junction")
    def junction(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JunctionProcess]:
        server = provider_gateway(tmp_path_factory.mktemp(provider), provider, api_key,
                                  upstream.base_url, **keys)  # type: ignore[attr-defined]
        yield server
        server.stop()

    @pytest.fixture(name="client")
    def client_of_junction(junction: JunctionProcess) -> Iterator[Any]:
        with client(junction) as connected:
            yield connected

    return upstream, junction, fake, client_of_junction
