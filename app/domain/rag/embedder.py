"""Embeddings through the gateway's own ``/v1/embeddings`` path, for RAG and the semantic cache.

Built with the Runtime before the gateway exists (plugins receive it in their context) and bound
to the gateway once that is built: every embedding then runs the pipeline like a client's call —
limits, usage rows, org credentials, routing and fallbacks, the ``local`` provider included.
"""

from __future__ import annotations

import secrets

import msgspec

from junction.errors import InvalidRequest, UpstreamError
from junction.pipeline.gateway import Gateway
from junction.plugins.call import Call
from junction.plugins.protocols import Principal
from junction.schemas.embeddings import EmbeddingRequest


class GatewayEmbedder:
    def __init__(self) -> None:
        self._gateway: Gateway | None = None

    def bind(self, gateway: Gateway) -> None:
        self._gateway = gateway

    async def embed(self, principal: Principal, org_id: str | None, model: str, texts: list[str]) -> list[bytes]:
        if self._gateway is None:
            raise RuntimeError("the embedder is not bound to a gateway")
        if not texts:
            return []
        # The embedding model is the collection's (chosen by the org's admin), not the caller's
        # pick, so a key's model allow-list does not apply to it.
        internal = msgspec.structs.replace(principal, models=None)
        call = Call(request_id=f"emb-{secrets.token_hex(8)}", endpoint="embeddings", principal=internal,
                    request=EmbeddingRequest(model=model, input=texts), org_id=org_id)
        try:
            response = await self._gateway.embed(call)
        except InvalidRequest as error:
            raise InvalidRequest(f"embedding_model {model!r}: {error.message}", param="embedding_model",
                                 code=error.code) from None
        data = sorted(response.data, key=lambda item: item.index)
        if len(data) != len(texts) or any(isinstance(item.embedding, str) for item in data):
            raise UpstreamError(f"embedding model {model!r} returned {len(data)} vectors for {len(texts)} texts",
                             code="bad_embeddings")
        return [unit_vector(item.embedding) for item in data]  # type: ignore[arg-type]


def unit_vector(values: list[float]) -> bytes:
    import numpy as np  # here: a serving worker that embeds nothing never loads numpy

    vector = np.asarray(values, dtype="<f4")
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm > 0 else vector).astype("<f4").tobytes()
