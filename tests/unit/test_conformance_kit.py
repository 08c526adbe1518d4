"""The conformance kit itself, run the way a third-party package runs it: it catches a provider
that loses data, skips what a provider declares it lacks, and its marker works under
``--strict-markers`` (registered by the ``pytest11`` plugin)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

LOSSY_PROVIDER_TESTS = '''
from junction.testing.conformance import ProviderConformance, Reply
from tests.fakes.openai_compatible import OpenAICompatibleFake


class UsageLosingFake(OpenAICompatibleFake):
    """Stands in for a provider plugin that drops cached-token counts."""

    def queue_reply(self, reply: Reply) -> None:
        reply.cached_tokens = 0
        super().queue_reply(reply)


class TestLossyProvider(ProviderConformance):
    provider = "openai"
    model = "gpt-4o-mini"
    upstream_type = UsageLosingFake
    supports_images = False
    supports_embeddings = True
    embedding_model = "text-embedding-3-small"
'''


def test_the_kit_fails_a_provider_that_loses_data(pytester: pytest.Pytester, monkeypatch) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_lossy=LOSSY_PROVIDER_TESTS)
    # A separate process, as a plugin package would run it: nothing leaks from this session.
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    result = pytester.runpytest_subprocess("--strict-markers", "-m", "conformance", "-p", "no:cacheprovider",
                                           "-rfs")
    result.assert_outcomes(passed=14, failed=2, skipped=2)
    result.stdout.fnmatch_lines(["*FAILED*test_usage *", "*FAILED*test_usage_in_stream*"])
    result.stdout.fnmatch_lines(["*SKIPPED*openai does not offer image input*"])


def test_importing_the_pytest_plugin_has_no_side_effects() -> None:
    import sys

    before = set(sys.modules)
    import junction.testing.pytest_plugin  # noqa: F401  (already imported by pytest; re-import is a no-op)

    assert "openai" not in set(sys.modules) - before
    assert "junction.testing.conformance" not in set(sys.modules) - before


def test_junction_server_fixture_and_an_installed_but_unconfigured_provider(
    junction_server, monkeypatch
) -> None:
    import openai

    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    server = junction_server("")
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.key, max_retries=0, timeout=10) as client:
        with pytest.raises(openai.BadRequestError) as raised:
            client.embeddings.create(model="gemini/gemini-embedding-001", input="x")
    assert raised.value.code == "provider_disabled"
