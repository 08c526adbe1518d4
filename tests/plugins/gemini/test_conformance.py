"""The Gemini provider against the conformance kit."""

from junction.testing.conformance import ProviderConformance
from tests.fakes.gemini_upstream import FakeGemini


class TestGeminiConformance(ProviderConformance):
    provider = "gemini"
    model = "gemini-2.5-flash"
    upstream_type = FakeGemini
    supports_embeddings = True
    embedding_model = "gemini-embedding-001"
