"""The Mistral provider plugin: Mistral's Chat Completions and embeddings APIs."""

from junction.plugins import ProviderSpec, hookimpl
from junction.pricing import load_prices
from junction.providers.mistral.adapter import MistralAdapter, MistralConfig


@hookimpl
def register_providers(register):
    register(ProviderSpec(name="mistral", config_type=MistralConfig, create=MistralAdapter,
                          api_key_env="MISTRAL_API_KEY", prices=load_prices(__name__)))
