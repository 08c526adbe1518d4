"""The built-in Anthropic provider against the conformance kit."""

from junction.testing.conformance import ProviderConformance
from tests.fakes.anthropic_upstream import FakeAnthropic


class TestAnthropicConformance(ProviderConformance):
    provider = "anthropic"
    model = "claude-sonnet-4-5"
    upstream_type = FakeAnthropic
