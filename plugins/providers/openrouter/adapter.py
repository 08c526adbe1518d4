"""OpenRouter: OpenAI Chat Completions in front of many upstreams.

- Attribution: ``site_url`` and ``app_name`` become the ``HTTP-Referer`` and ``X-Title`` headers
  OpenRouter uses to credit an app in its rankings (both optional).
- OpenRouter's own request fields (``provider`` routing preferences, ``models`` fallbacks,
  ``transforms``, ``reasoning``...) are not modelled by Junction and reach OpenRouter verbatim as
  extra fields. Model ids keep their vendor prefix: ``openrouter/anthropic/claude-sonnet-4.5``.
- Everything else — SSE comments while it routes, ``error`` chunks mid-stream, ``reasoning`` deltas,
  usage with cached and reasoning tokens — is what the OpenAI format reader already handles.
"""

from __future__ import annotations

from typing import ClassVar

from app.plugins import ProviderConfig
from plugins.providers.openai.adapter import OpenAIAdapter


class OpenRouterConfig(ProviderConfig):
    base_url: str = "https://openrouter.ai/api/v1"
    #: Sent as ``HTTP-Referer``: the URL of the app, for OpenRouter's attribution.
    site_url: str | None = None
    #: Sent as ``X-Title``: the app's name, for OpenRouter's attribution.
    app_name: str | None = None


class OpenRouterAdapter(OpenAIAdapter):
    name: ClassVar[str] = "openrouter"

    def build_headers(self, api_key: str | None) -> dict[str, str]:
        headers = super().build_headers(api_key)
        config: OpenRouterConfig = self.config  # type: ignore[assignment]
        if config.site_url:
            headers["http-referer"] = config.site_url
        if config.app_name:
            headers["x-title"] = config.app_name
        return headers
