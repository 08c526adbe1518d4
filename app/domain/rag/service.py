"""RAG collections: create, ingest (extract → chunk → embed → store → index), delete and query.

Every method is confined to one org (the store's isolation); embeddings run through the
gateway's own embeddings path on behalf of the caller (see :mod:`junction.domain.rag.embedder`).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Awaitable, Callable

from junction.domain.http import check_length
from junction.domain.rag.chunking import chunk_text
from junction.domain.rag.context import format_context, tool_query
from junction.domain.rag.extract import extract_text
from junction.domain.rag.schemas import CollectionBody, DocumentBody, IngestedDocument, QueryBody, QueryResult
from junction.errors import InvalidRequest, NotFound, PayloadTooLarge
from junction.plugins.protocols import Principal
from junction.plugins.services import Embedder
from junction.plugins.vectors import IndexedVector, VectorIndex, VectorQuery
from junction.settings import KnowledgeSettings
from junction.stores.documents.bridges import BridgeKnowledge
from junction.stores.documents.common import new_id, utc_now
from junction.stores.documents.knowledge import (
    Chunk,
    Collection,
    KnowledgeDocument,
    KnowledgeRepository,
    NewCollection,
)

MAX_CHUNK_TOKENS = 8192
#: Told ``(chunks embedded, chunks in all)`` as an ingestion goes.
Progress = Callable[[int, int], Awaitable[None]]
PLACEHOLDER_PATTERN = re.compile(r"\{\{\s*context\s*\}\}")


class KnowledgeService:
    def __init__(self, repository: KnowledgeRepository, index: VectorIndex, embedder: Embedder,
                 settings: KnowledgeSettings) -> None:
        self._repository = repository
        self.index = index
        self._embedder = embedder
        self._settings = settings

    # --- collections ----------------------------------------------------------------------------

    async def create(self, org_id: str, body: CollectionBody) -> Collection:
        check_length("name", body.name)
        check_length("embedding_model", body.embedding_model)
        if "/" not in body.embedding_model:
            raise InvalidRequest("embedding_model: name a model as 'provider/model' (or 'local/<name>')",
                                 param="embedding_model", code="invalid_value")
        if not 1 <= body.chunk_tokens <= MAX_CHUNK_TOKENS:
            raise InvalidRequest(f"chunk_tokens: must be between 1 and {MAX_CHUNK_TOKENS}", param="chunk_tokens",
                                 code="invalid_value")
        if not 0 <= body.chunk_overlap < body.chunk_tokens:
            raise InvalidRequest("chunk_overlap: must be at least 0 and less than chunk_tokens",
                                 param="chunk_overlap", code="invalid_value")
        spec = NewCollection(name=body.name, embedding_model=body.embedding_model, chunk_tokens=body.chunk_tokens,
                             chunk_overlap=body.chunk_overlap)
        return await self._repository.create_collection(org_id, spec)

    async def get(self, org_id: str, collection_id: str) -> Collection:
        return await self._repository.get_collection(org_id, collection_id)

    async def list(self, org_id: str) -> list[Collection]:
        return await self._repository.list_collections(org_id)

    async def delete(self, org_id: str, collection_id: str) -> None:
        collection = await self._repository.get_collection(org_id, collection_id)
        await self._repository.delete_collection(org_id, collection_id)
        await self.index.remove_collection(collection)

    # --- documents ------------------------------------------------------------------------------

    def check_document(self, body: DocumentBody) -> str | bytes:
        """The document's content, when its id and content are acceptable (400/413 otherwise)."""
        check_length("id", body.id)
        if not body.id:
            raise InvalidRequest("id: must not be empty", param="id", code="invalid_value")
        return self._content(body)

    def is_large(self, body: DocumentBody) -> bool:
        """Whether ``body`` is ingested as a queued job (``knowledge.async_ingest_chars``)."""
        size = len(body.text) if body.text is not None else len(body.content_base64 or "") * 3 // 4
        return size > self._settings.async_ingest_chars

    async def ingest(self, principal: Principal, org_id: str, collection_id: str, body: DocumentBody,
                     progress: Progress | None = None) -> IngestedDocument:
        """``progress(done, total)`` is told the chunks embedded after each embeddings batch."""
        content = self.check_document(body)
        collection = await self._repository.get_collection(org_id, collection_id)
        text = extract_text(content, body.content_type)
        pieces = chunk_text(text, collection.chunk_tokens, collection.chunk_overlap)
        if not pieces:
            raise InvalidRequest("the document has no text to index", param="text", code="empty_document")
        if len(pieces) > self._settings.max_document_chunks:
            raise PayloadTooLarge(f"the document makes {len(pieces)} chunks, more than "
                                  f"knowledge.max_document_chunks ({self._settings.max_document_chunks})",
                                  code="document_too_large")
        vectors: list[bytes] = []
        batch = self._settings.embed_batch
        for start in range(0, len(pieces), batch):
            vectors += await self._embedder.embed(principal, org_id, collection.embedding_model,
                                                  pieces[start:start + batch])
            if progress is not None:
                await progress(len(vectors), len(pieces))
        now = utc_now()
        document = KnowledgeDocument(id=body.id, collection_id=collection.id, org_id=org_id, metadata=body.metadata,
                                     chunks=len(pieces), created_at=now, updated_at=now)
        chunks = [Chunk(id=new_id("ch"), collection_id=collection.id, document_id=body.id, org_id=org_id,
                        position=position, text=piece, metadata=body.metadata, embedding=vector)
                  for position, (piece, vector) in enumerate(zip(pieces, vectors, strict=True))]
        stored = await self._repository.replace_document(document, chunks, len(vectors[0]) // 4)
        await self.index.add(stored, body.id, [
            IndexedVector(chunk_id=chunk.id, document_id=body.id, metadata=body.metadata, vector=chunk.embedding)
            for chunk in chunks])
        return IngestedDocument(id=body.id, chunks=len(chunks), collection_revision=stored.revision)

    def _content(self, body: DocumentBody) -> str | bytes:
        if (body.text is None) == (body.content_base64 is None):
            raise InvalidRequest("give the document as text or as content_base64 (one of them)", param="text",
                                 code="invalid_value")
        limit = self._settings.max_document_bytes
        if body.text is not None:
            if len(body.text) > limit:
                raise PayloadTooLarge(f"text: more than knowledge.max_document_bytes ({limit})",
                                      code="document_too_large")
            return body.text
        try:
            content = base64.b64decode(body.content_base64 or "", validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest("content_base64: not valid base64", param="content_base64",
                                 code="invalid_value") from None
        if len(content) > limit:
            raise PayloadTooLarge(f"content_base64: more than knowledge.max_document_bytes ({limit})",
                                  code="document_too_large")
        return content

    async def delete_document(self, org_id: str, collection_id: str, document_id: str) -> None:
        collection = await self._repository.delete_document(org_id, collection_id, document_id)
        await self.index.remove_document(collection, document_id)

    # --- search ---------------------------------------------------------------------------------

    def check_top_k(self, top_k: int, param: str = "top_k") -> None:
        if not 1 <= top_k <= self._settings.max_top_k:
            raise InvalidRequest(f"{param}: must be between 1 and {self._settings.max_top_k} "
                                 "(knowledge.max_top_k)", param=param, code="invalid_value")

    async def query(self, principal: Principal, org_id: str, collection_id: str, body: QueryBody) -> list[QueryResult]:
        self.check_top_k(body.top_k)
        if not body.query.strip():
            raise InvalidRequest("query: must not be empty", param="query", code="invalid_value")
        collection = await self._repository.get_collection(org_id, collection_id)
        return await self.search([collection], principal, body.query, body.top_k, body.min_score, body.filter)

    async def search(self, collections: list[Collection], principal: Principal, text: str, top_k: int,
                     min_score: float | None = None, filter: dict | None = None) -> list[QueryResult]:
        """The best ``top_k`` chunks of ``collections`` for ``text``, best first."""
        vectors: dict[str, bytes] = {}
        scored: list[tuple[float, Collection, str]] = []
        for collection in collections:
            if not collection.chunks:
                continue
            model = collection.embedding_model
            if model not in vectors:
                vectors[model] = (await self._embedder.embed(principal, collection.org_id, model, [text]))[0]
            query = VectorQuery(vector=vectors[model], top_k=top_k,
                                min_score=-1.0 if min_score is None else min_score, filter=filter or {})
            scored += [(hit.score, collection, hit.chunk_id) for hit in await self.index.search(collection, query)]
        scored.sort(key=lambda item: -item[0])
        scored = scored[:top_k]
        chunks: dict[str, Chunk] = {}
        for collection in {id(c): c for _, c, _ in scored}.values():
            wanted = [chunk_id for _, c, chunk_id in scored if c is collection]
            chunks.update((chunk.id, chunk) for chunk in
                          await self._repository.chunks(collection.org_id, collection.id, wanted))
        return [QueryResult(document_id=chunks[chunk_id].document_id, chunk_id=chunk_id, text=chunks[chunk_id].text,
                            score=round(score, 6), metadata=chunks[chunk_id].metadata)
                for score, _, chunk_id in scored if chunk_id in chunks]

    # --- bridges --------------------------------------------------------------------------------

    async def context(self, principal: Principal, org_id: str, knowledge: BridgeKnowledge,
                      question: str) -> tuple[str, list[str]]:
        """Prompt mode: the ``{{context}}`` text for ``question`` and the chunk ids it cites."""
        results = await self._bridge_search(principal, org_id, knowledge, question)
        return format_context(results), [result.chunk_id for result in results]

    async def run_tool(self, principal: Principal, org_id: str, knowledge: BridgeKnowledge, arguments: str) -> str:
        """Tool mode: the result of one ``search_knowledge`` call (its JSON arguments), as the tool
        message's content. The server-side tool loop calls this for the bridge's calls of the tool
        :func:`junction.domain.rag.context.tool_definition` describes."""
        results = await self._bridge_search(principal, org_id, knowledge, tool_query(arguments))
        return format_context(results) or "No passage matches."

    async def _bridge_search(self, principal: Principal, org_id: str, knowledge: BridgeKnowledge,
                             question: str) -> list[QueryResult]:
        if not question.strip():
            return []
        collections = [await self._repository.get_collection(org_id, collection_id)
                       for collection_id in knowledge.collections]
        return await self.search(collections, principal, question, knowledge.top_k, knowledge.min_score)

    async def check_knowledge(self, org_id: str, knowledge: BridgeKnowledge | None, prompt: str) -> None:
        """A bridge's ``knowledge`` names collections of its org, asks for a bounded ``top_k``, and
        in prompt mode has a ``{{context}}`` to fill (tool mode: the ``agents`` middleware offers the
        model ``search_knowledge``, see :mod:`junction.agents.knowledge_tool`)."""
        if knowledge is None:
            return
        self.check_top_k(knowledge.top_k, "knowledge.top_k")
        if not knowledge.collections:
            raise InvalidRequest("knowledge.collections: name at least one collection",
                                 param="knowledge.collections", code="invalid_value")
        for index, collection_id in enumerate(knowledge.collections):
            try:
                await self._repository.get_collection(org_id, collection_id)
            except NotFound:
                param = f"knowledge.collections[{index}]"
                raise InvalidRequest(f"{param}: no collection {collection_id!r} in this org", param=param,
                                     code="collection_not_found") from None
        if knowledge.mode == "prompt" and not PLACEHOLDER_PATTERN.search(prompt):
            raise InvalidRequest("prompt: knowledge in prompt mode needs a {{context}} placeholder to fill",
                                 param="prompt", code="missing_context_placeholder")
