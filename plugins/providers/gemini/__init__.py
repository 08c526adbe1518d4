"""The Gemini provider plugin: chat (JSON and SSE), embeddings and the model list of the Gemini
Developer API (generativelanguage.googleapis.com)."""

from app.plugins import ProviderSpec, hookimpl
from app.pricing import load_prices
from plugins.providers.gemini.adapter import GeminiAdapter
from plugins.providers.gemini.config import GeminiConfig


@hookimpl
def register_providers(register):
    register(ProviderSpec(name="gemini", config_type=GeminiConfig, create=GeminiAdapter,
                          api_key_env="GEMINI_API_KEY", prices=load_prices(__name__)))
