"""Configuration of the ``gemini`` provider (``[providers.gemini]``)."""

from __future__ import annotations

from junction.plugins import ProviderConfig


class GeminiConfig(ProviderConfig):
    #: The Gemini Developer API, as in Google's SDKs; paths below it are ``/{api_version}/models/...``.
    base_url: str = "https://generativelanguage.googleapis.com"
    api_version: str = "v1beta"
    #: Gemini reads images by value (``data:`` URLs become ``inlineData``) or by Files API / ``gs://``
    #: URI. Other ``http(s)`` image URLs are refused with a 400 unless this is true, in which case
    #: they are sent as ``fileData`` for models that fetch public URLs themselves.
    pass_image_urls: bool = False
