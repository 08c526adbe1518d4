"""The Anthropic provider plugin: the Messages API (``POST {base_url}/v1/messages``)."""

from app.plugins import ProviderSpec, hookimpl
from app.pricing import load_prices
from plugins.providers.anthropic.adapter import AnthropicAdapter, AnthropicConfig


@hookimpl
def register_providers(register):
    register(ProviderSpec(name="anthropic", config_type=AnthropicConfig, create=AnthropicAdapter,
                          api_key_env="ANTHROPIC_API_KEY", prices=load_prices(__name__)))
