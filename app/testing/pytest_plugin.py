"""Junction's pytest plugin (entry point ``pytest11``): makes the provider conformance kit and the
server helpers available to any package's tests. Importing it has no side effects.

It is loaded into every pytest run of an environment where Junction is installed, so it imports
nothing heavy: the kit itself is imported by the test modules that use it
(``from junction.testing.conformance import ProviderConformance``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from junction.testing.server import JunctionProcess


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "conformance: Junction's provider conformance suite (junction.testing.conformance)")


@pytest.fixture
def junction_server(tmp_path: Path) -> Iterator[Callable[..., JunctionProcess]]:
    """Start real ``junction serve`` processes: ``junction_server(config_toml, env={...})``.

    Every process started through it is stopped when the test ends.
    """
    from junction.testing.server import JunctionProcess

    started: list[JunctionProcess] = []

    def start(config: str = "", *, env: dict[str, str] | None = None) -> JunctionProcess:
        server = JunctionProcess(tmp_path / f"junction-{len(started)}", config, env=env).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
