"""The Groq provider plugin: Groq's OpenAI-compatible Chat Completions API."""

from junction.plugins import ProviderSpec, hookimpl
from junction.pricing import load_prices
from junction.providers.groq.adapter import GroqAdapter, GroqConfig


@hookimpl
def register_providers(register):
    register(ProviderSpec(name="groq", config_type=GroqConfig, create=GroqAdapter,
                          api_key_env="GROQ_API_KEY", prices=load_prices(__name__)))
