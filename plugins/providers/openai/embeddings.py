"""``POST {base_url}/embeddings`` for OpenAI and the OpenAI-compatible dialects that have it."""

from __future__ import annotations

from junction.formats.embeddings import decode_embedding_response, encode_embedding_request
from junction.plugins import UpstreamTarget
from junction.schemas.embeddings import EmbeddingRequest, EmbeddingResponse


class OpenAIEmbeddings:
    """Mixin for an :class:`~junction.providers.openai.adapter.OpenAIAdapter` whose API serves
    OpenAI-shaped embeddings. Mixing it in is what makes a provider an ``EmbeddingsAdapter``, so
    a dialect without embeddings (Groq) simply does not."""

    def prepare_embeddings(self, request: EmbeddingRequest, target: UpstreamTarget) -> bytes:
        """The upstream body; dialects override to rename or refuse what their API differs on."""
        return encode_embedding_request(request, target.model)

    async def embed(self, request: EmbeddingRequest, target: UpstreamTarget) -> EmbeddingResponse:
        # self._endpoint, self.client and self.name come from the OpenAIAdapter this is mixed into.
        url, headers = self._endpoint(target, "/embeddings")  # type: ignore[attr-defined]
        body = self.prepare_embeddings(request, target)
        payload = await self.client.post(url, body, headers)  # type: ignore[attr-defined]
        return decode_embedding_response(payload, self.name)  # type: ignore[attr-defined]
