"""Anthropic Messages adapter: unified requests out, Messages JSON and SSE back in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, ClassVar

import msgspec

from junction.formats.anthropic.upstream_request import encode_messages_request
from junction.formats.anthropic.upstream_response import EventReader, decode_message_response, map_error
from junction.formats.json_body import decode_upstream
from junction.plugins import PluginContext, ProviderConfig, UpstreamTarget
from junction.schemas.chat import ChatRequest, ChatResponse
from junction.schemas.stream import StreamEvent
from junction.upstream.http import ClientLifecycle, upstream_client


class AnthropicConfig(ProviderConfig):
    base_url: str = "https://api.anthropic.com"
    #: Anthropic requires ``max_tokens``; this is sent when the client set none.
    default_max_tokens: Annotated[int, msgspec.Meta(ge=1)] = 4096
    anthropic_version: str = "2023-06-01"
    #: Values for the ``anthropic-beta`` header (e.g. ``["context-1m-2025-08-07"]``).
    beta: list[str] = []


class _ModelList(msgspec.Struct):
    class Entry(msgspec.Struct):
        id: str

    data: list[Entry]
    has_more: bool = False
    last_id: str | None = None


_model_list_decoder = msgspec.json.Decoder(_ModelList)


class AnthropicAdapter(ClientLifecycle):
    """Speaks ``POST {base_url}/v1/messages`` and ``GET {base_url}/v1/models``."""

    name: ClassVar[str] = "anthropic"

    def __init__(self, config: AnthropicConfig, context: PluginContext) -> None:
        self.config = config
        self.client = upstream_client(context, self.name, config, map_error)
        self._messages_url = f"{config.base_url}/v1/messages"
        self._headers = self._build_headers(config.api_key)

    def _build_headers(self, api_key: str | None) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": "application/json",
                   "anthropic-version": self.config.anthropic_version}
        if api_key:
            headers["x-api-key"] = api_key
        if self.config.beta:
            headers["anthropic-beta"] = ",".join(self.config.beta)
        return headers

    def _endpoint(self, target: UpstreamTarget) -> tuple[str, dict[str, str]]:
        url = self._messages_url
        if target.base_url:
            url = f"{target.base_url.rstrip('/')}/v1/messages"
        headers = self._headers if target.api_key is None else self._build_headers(target.api_key)
        return url, headers

    async def complete(self, request: ChatRequest, target: UpstreamTarget) -> ChatResponse:
        url, headers = self._endpoint(target)
        prepared = encode_messages_request(request, target.model, stream=False,
                                           default_max_tokens=self.config.default_max_tokens)
        payload = await self.client.post(url, prepared.body, headers)
        return decode_message_response(payload, self.name, prepared.response_tool)

    async def stream(self, request: ChatRequest, target: UpstreamTarget) -> AsyncIterator[StreamEvent]:
        url, headers = self._endpoint(target)
        prepared = encode_messages_request(request, target.model, stream=True,
                                           default_max_tokens=self.config.default_max_tokens)
        reader = EventReader(self.name, prepared.response_tool)
        async for event in self.client.stream_events(url, prepared.body, headers, reader):
            yield event

    async def list_models(self) -> list[str]:
        if self.config.models:
            return list(self.config.models)
        models: list[str] = []
        url = f"{self.config.base_url}/v1/models?limit=1000"
        while True:
            payload = await self.client.get(url, self._headers)
            page = decode_upstream(_model_list_decoder, payload, self.name, "a model list")
            models.extend(entry.id for entry in page.data)
            if not page.has_more or not page.last_id:
                return sorted(models)
            url = f"{self.config.base_url}/v1/models?limit=1000&after_id={page.last_id}"
