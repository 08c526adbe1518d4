"""The Groq provider against the conformance kit."""

from junction.testing.conformance import ProviderConformance
from tests.fakes.groq_upstream import FakeGroq


class TestGroqConformance(ProviderConformance):
    provider = "groq"
    model = "llama-3.3-70b-versatile"
    upstream_type = FakeGroq
