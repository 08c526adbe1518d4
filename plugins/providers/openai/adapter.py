"""OpenAI Chat Completions adapter. Also the base of OpenAI-compatible dialects (Groq, Mistral,
OpenRouter): they subclass it and override what differs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

import msgspec

from junction.formats.json_body import decode_upstream
from junction.formats.openai import ChunkReader, decode_chat_response, encode_chat_request
from junction.plugins import PluginContext, ProviderConfig, UpstreamTarget
from junction.providers.openai.embeddings import OpenAIEmbeddings
from junction.schemas.chat import ChatRequest, ChatResponse
from junction.schemas.stream import StreamEvent
from junction.upstream.http import ClientLifecycle, ErrorMapper, error_for_status, upstream_client


class OpenAIConfig(ProviderConfig):
    base_url: str = "https://api.openai.com/v1"
    organization: str | None = None
    project: str | None = None


class _ModelList(msgspec.Struct):
    class Entry(msgspec.Struct):
        id: str

    data: list[Entry]


_model_list_decoder = msgspec.json.Decoder(_ModelList)


class OpenAIAdapter(ClientLifecycle):
    """Speaks ``POST {base_url}/chat/completions`` and ``GET {base_url}/models``."""

    name: ClassVar[str] = "openai"
    #: Maps the upstream's HTTP errors; a dialect with statuses of its own replaces it.
    map_error: ClassVar[ErrorMapper] = staticmethod(error_for_status)

    def __init__(self, config: OpenAIConfig, context: PluginContext) -> None:
        self.config = config
        self.client = upstream_client(context, self.name, config, self.map_error)
        self._chat_url = f"{config.base_url}/chat/completions"
        self._headers = self.build_headers(config.api_key)

    def build_headers(self, api_key: str | None) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": "application/json"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        if getattr(self.config, "organization", None):
            headers["openai-organization"] = self.config.organization  # type: ignore[attr-defined]
        if getattr(self.config, "project", None):
            headers["openai-project"] = self.config.project  # type: ignore[attr-defined]
        return headers

    def _endpoint(self, target: UpstreamTarget,
                  path: str = "/chat/completions") -> tuple[str, dict[str, str]]:
        """URL and headers for one attempt: a deployment may override the base URL and key."""
        if target.base_url:
            url = f"{target.base_url.rstrip('/')}{path}"
        else:
            url = self._chat_url if path == "/chat/completions" else f"{self.config.base_url}{path}"
        headers = self._headers if target.api_key is None else self.build_headers(target.api_key)
        return url, headers

    def prepare(self, request: ChatRequest, target: UpstreamTarget, *, stream: bool) -> bytes:
        """The upstream body; dialects override to drop or rename what their API differs on."""
        return encode_chat_request(request, target.model, stream=stream, provider=self.name)

    def chunk_reader(self) -> ChunkReader:
        """The reader of one upstream stream; dialects override to pick up their extras."""
        return ChunkReader(self.name)

    async def complete(self, request: ChatRequest, target: UpstreamTarget) -> ChatResponse:
        url, headers = self._endpoint(target)
        payload = await self.client.post(url, self.prepare(request, target, stream=False), headers)
        return self.read_response(payload)

    def read_response(self, payload: bytes) -> ChatResponse:
        """The unified response; dialects override to pick up their extras."""
        return decode_chat_response(payload, self.name)

    async def stream(self, request: ChatRequest, target: UpstreamTarget) -> AsyncIterator[StreamEvent]:
        url, headers = self._endpoint(target)
        body = self.prepare(request, target, stream=True)
        async for event in self.client.stream_events(url, body, headers, self.chunk_reader()):
            yield event

    async def list_models(self) -> list[str]:
        if self.config.models:
            return list(self.config.models)
        payload = await self.client.get(f"{self.config.base_url}/models", self._headers)
        models = decode_upstream(_model_list_decoder, payload, self.name, "a model list")
        return sorted(entry.id for entry in models.data)


class OpenAIProvider(OpenAIEmbeddings, OpenAIAdapter):
    """The ``openai`` provider: Chat Completions plus embeddings."""
