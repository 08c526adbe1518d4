"""The Mistral provider against the conformance kit."""

from junction.testing.conformance import ProviderConformance
from tests.fakes.mistral_upstream import FakeMistral


class TestMistralConformance(ProviderConformance):
    provider = "mistral"
    model = "mistral-large-latest"
    upstream_type = FakeMistral
    # Mistral's usage has no cached or reasoning token details.
    reports_cached_tokens = False
    reports_reasoning_tokens = False
    supports_embeddings = True
    embedding_model = "mistral-embed"
