"""The OpenAI provider plugin: Chat Completions and embeddings against api.openai.com."""

from junction.plugins import ProviderSpec, hookimpl
from junction.pricing import load_prices
from junction.providers.openai.adapter import OpenAIConfig, OpenAIProvider


@hookimpl
def register_providers(register):
    register(ProviderSpec(name="openai", config_type=OpenAIConfig, create=OpenAIProvider,
                          api_key_env="OPENAI_API_KEY", prices=load_prices(__name__)))
