"""The built-in OpenAI provider against the conformance kit."""

from junction.testing.conformance import ProviderConformance
from tests.fakes.openai_compatible import OpenAICompatibleFake


class TestOpenAIConformance(ProviderConformance):
    provider = "openai"
    model = "gpt-4o-mini"
    upstream_type = OpenAICompatibleFake
    supports_embeddings = True
    embedding_model = "text-embedding-3-small"
