"""The OpenRouter provider against the conformance kit."""

from junction.testing.conformance import ProviderConformance
from tests.fakes.openrouter_upstream import FakeOpenRouter


class TestOpenRouterConformance(ProviderConformance):
    provider = "openrouter"
    model = "openai/gpt-4o-mini"
    upstream_type = FakeOpenRouter
    extra_provider_keys = {"app_name": "Junction conformance"}
