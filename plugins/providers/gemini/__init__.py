"""The Gemini provider plugin: chat (JSON and SSE), embeddings and the model list of the Gemini
Developer API (generativelanguage.googleapis.com)."""

from junction.plugins import ProviderSpec, created_on_demand, hookimpl
from junction.pricing import load_prices
from junction.providers.gemini.config import GeminiConfig


@hookimpl
def register_providers(register):
    register(ProviderSpec(name="gemini", config_type=GeminiConfig,
                          create=created_on_demand("junction.providers.gemini.adapter:GeminiAdapter"),
                          api_key_env="GEMINI_API_KEY", prices=load_prices(__name__)))
