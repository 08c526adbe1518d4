"""The Gemini provider: ``generateContent``, ``streamGenerateContent?alt=sse``,
``batchEmbedContents`` and the model list, against the Gemini Developer API."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import ClassVar
from urllib.parse import quote

from junction.errors import InvalidRequest
from junction.formats.json_body import decode_upstream
from junction.plugins import PluginContext, UpstreamTarget
from junction.providers.gemini.config import GeminiConfig
from junction.providers.gemini.errors import map_gemini_error
from junction.providers.gemini.stream import GeminiStreamReader
from junction.providers.gemini.translate import gemini_body, to_unified
from junction.providers.gemini.wire import (
    BatchEmbedContentsRequest,
    Content,
    EmbedContentRequest,
    Part,
    embeddings_decoder,
    encoder,
    model_page_decoder,
    response_decoder,
)
from junction.schemas.chat import ChatRequest, ChatResponse
from junction.schemas.embeddings import Embedding, EmbeddingRequest, EmbeddingResponse, encode_vector
from junction.schemas.stream import StreamEvent
from junction.upstream.http import ClientLifecycle, upstream_client

#: Model-list pages are read until this many, so a misbehaving endpoint cannot loop forever.
_MAX_MODEL_PAGES = 20


#: One Gemini model id: it becomes ``/models/{id}:{method}``, so a second path segment or a ``:``
#: would reach another resource or method of the upstream host (``tunedModels/...``,
#: ``x:streamGenerateContent``), with the gateway's key.
_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]*")


def model_path(model: str) -> str:
    """``models/{model}`` (an id given as ``models/{id}`` too); anything else is a 400."""
    name = model.removeprefix("models/")
    if not _MODEL_ID.fullmatch(name):
        raise InvalidRequest(f"model 'gemini/{model[:100]}': not a Gemini model id (one name of letters, "
                             "digits and . _ -, without '/' or ':')", param="model", code="invalid_model")
    return f"models/{name}"


class GeminiAdapter(ClientLifecycle):
    name: ClassVar[str] = "gemini"

    def __init__(self, config: GeminiConfig, context: PluginContext) -> None:
        self.config = config
        self.client = upstream_client(context, self.name, config, map_gemini_error)
        self._headers = self._build_headers(config.api_key)

    @staticmethod
    def _build_headers(api_key: str | None) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": "application/json"}
        if api_key:
            headers["x-goog-api-key"] = api_key
        return headers

    def _url(self, target: UpstreamTarget, method: str) -> tuple[str, dict[str, str]]:
        base = target.base_url.rstrip("/") if target.base_url else self.config.base_url
        headers = self._headers if target.api_key is None else self._build_headers(target.api_key)
        return f"{base}/{self.config.api_version}/{model_path(target.model)}:{method}", headers

    # --- chat -----------------------------------------------------------------------------------

    async def complete(self, request: ChatRequest, target: UpstreamTarget) -> ChatResponse:
        body = gemini_body(request, self.config)
        url, headers = self._url(target, "generateContent")
        payload = await self.client.post(url, body, headers)
        return to_unified(decode_upstream(response_decoder, payload, self.name, "a response"), target.model)

    async def stream(self, request: ChatRequest, target: UpstreamTarget) -> AsyncIterator[StreamEvent]:
        body = gemini_body(request, self.config)
        url, headers = self._url(target, "streamGenerateContent")
        reader = GeminiStreamReader(target.model)
        async for event in self.client.stream_events(f"{url}?alt=sse", body, headers, reader):
            yield event

    # --- embeddings -----------------------------------------------------------------------------

    async def embed(self, request: EmbeddingRequest, target: UpstreamTarget) -> EmbeddingResponse:
        if request.kind() == "tokens":
            raise InvalidRequest("input: gemini embeds text only, not token ids", param="input",
                                 code="unsupported_input")
        model = model_path(target.model)
        body = BatchEmbedContentsRequest(requests=[
            EmbedContentRequest(model=model, content=Content(parts=[Part(text=text)]),
                                output_dimensionality=request.dimensions)
            for text in request.texts()])
        url, headers = self._url(target, "batchEmbedContents")
        payload = await self.client.post(url, encoder.encode(body), headers)
        embeddings = decode_upstream(embeddings_decoder, payload, self.name, "embeddings").embeddings
        # Gemini reports no token counts for embeddings; usage stays zero rather than guessed.
        return EmbeddingResponse(
            model=target.model,
            data=[Embedding(index=index, embedding=encode_vector(item.values, request.encoding_format))
                  for index, item in enumerate(embeddings)])

    # --- models ---------------------------------------------------------------------------------

    async def list_models(self) -> list[str]:
        if self.config.models:
            return list(self.config.models)
        models: list[str] = []
        page_token: str | None = None
        for _ in range(_MAX_MODEL_PAGES):
            url = f"{self.config.base_url}/{self.config.api_version}/models?pageSize=1000"
            if page_token:
                url += f"&pageToken={quote(page_token)}"
            page = decode_upstream(model_page_decoder, await self.client.get(url, self._headers), self.name,
                                   "a model list")
            models.extend(info.name.removeprefix("models/") for info in page.models
                          if {"generateContent", "embedContent"} & set(info.supported_generation_methods))
            page_token = page.next_page_token
            if not page_token:
                break
        return sorted(models)
