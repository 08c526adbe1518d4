"""The Gemini provider plugin: chat (JSON and SSE), embeddings and the model list of the Gemini
Developer API (generativelanguage.googleapis.com)."""

from junction.plugins import ProviderSpec, hookimpl
from junction.pricing import load_prices
from junction.providers.gemini.config import GeminiConfig


@hookimpl
def register_providers(register):
    register(ProviderSpec(name="gemini", config_type=GeminiConfig, create=_create,
                          api_key_env="GEMINI_API_KEY", prices=load_prices(__name__)))


def _create(config, context):
    # The adapter's modules (its wire format, stream and translation) only once Gemini is
    # configured, not in every serving worker (issue 17: idle RSS per worker).
    from junction.providers.gemini.adapter import GeminiAdapter

    return GeminiAdapter(config, context)
