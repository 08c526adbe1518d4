"""Pytest fixtures for a fake upstream, made once here instead of in every test module.

A fake server is started once per scope and reset (recorded requests and scripted replies
dropped) before and after each test that asks for it. Assign the returned fixtures to module names::

    fake_openai_server, fake_openai = fake_fixtures(lambda: FakeOpenAI(), scope="session",
                                                    server_name="fake_openai_server", name="fake_openai")
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal, TypeVar

import pytest

from junction.testing.upstream import FakeUpstream

F = TypeVar("F", bound=FakeUpstream)


def fake_fixtures(make: Callable[[], F], *, scope: Literal["session", "module"] = "module",
                  server_name: str = "upstream", name: str = "fake") -> tuple[Any, Any]:
    """Fixture ``server_name`` (the started fake, for ``scope``) and ``name`` (the same fake, reset
    for the test)."""

    @pytest.fixture(scope=scope, name=server_name)
    def server() -> Iterator[F]:
        fake = make().start()
        yield fake
        fake.stop()

    @pytest.fixture(name=name)
    def fresh(request: pytest.FixtureRequest) -> Iterator[F]:
        upstream: F = request.getfixturevalue(server_name)
        upstream.reset()
        yield upstream
        # After it too: replies a test scripted and did not use (calls it expected to be refused)
        # would answer the calls of a later test that uses the server without resetting it.
        upstream.reset()

    return server, fresh
