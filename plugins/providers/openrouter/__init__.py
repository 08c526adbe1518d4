"""The OpenRouter provider plugin: OpenRouter's OpenAI-compatible Chat Completions API."""

from junction.plugins import ProviderSpec, hookimpl
from junction.pricing import load_prices
from junction.providers.openrouter.adapter import OpenRouterAdapter, OpenRouterConfig


@hookimpl
def register_providers(register):
    register(ProviderSpec(name="openrouter", config_type=OpenRouterConfig, create=OpenRouterAdapter,
                          api_key_env="OPENROUTER_API_KEY", prices=load_prices(__name__)))
