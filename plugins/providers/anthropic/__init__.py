"""The Anthropic provider plugin: the Messages API (``POST {base_url}/v1/messages``)."""

from junction.plugins import ProviderSpec, hookimpl
from junction.pricing import load_prices
from junction.providers.anthropic.adapter import AnthropicAdapter, AnthropicConfig


@hookimpl
def register_providers(register):
    register(ProviderSpec(name="anthropic", config_type=AnthropicConfig, create=AnthropicAdapter,
                          api_key_env="ANTHROPIC_API_KEY", prices=load_prices(__name__)))
