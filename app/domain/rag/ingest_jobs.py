"""Large documents are ingested as queued jobs: ``POST /api/v1/rag/collections/{id}/documents``
with a document above ``[knowledge] async_ingest_chars`` (or ``x-junction-async: true``) answers
202 with the job's id, after the checks a direct ingestion makes up front (collection in reach,
id, content, size). A worker then runs the ingestion as the caller, storing ``{"done", "total"}``
chunks embedded on the job after each embeddings batch (``GET /api/v1/jobs/{id}``); its result
is the direct route's answer, and the document is queryable once the job succeeded."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from junction.domain.rag.schemas import DocumentBody
from junction.domain.rag.service import KnowledgeService
from junction.plugins.protocols import Principal

#: The ``endpoint`` of an ingestion job.
INGEST_ENDPOINT = "rag.ingest"
#: Stores a running job's progress (the job store's ``record_progress`` bound to the job).
Report = Callable[[dict[str, Any]], Awaitable[None]]


class IngestJob(msgspec.Struct, kw_only=True):
    """An ingestion job's ``request``."""

    org_id: str
    collection_id: str
    document: DocumentBody


def ingest_request(org_id: str, collection_id: str, body: DocumentBody) -> dict[str, Any]:
    request: dict[str, Any] = msgspec.to_builtins(IngestJob(org_id=org_id, collection_id=collection_id,
                                                            document=body))
    return request


class IngestJobs:
    def __init__(self, knowledge: KnowledgeService) -> None:
        self._knowledge = knowledge

    async def run(self, principal: Principal, request: dict[str, Any], report: Report) -> dict[str, Any]:
        job = msgspec.convert(request, IngestJob)

        async def progress(done: int, total: int) -> None:
            await report({"done": done, "total": total, "unit": "chunks"})

        ingested = await self._knowledge.ingest(principal, job.org_id, job.collection_id, job.document,
                                                progress)
        result: dict[str, Any] = msgspec.to_builtins(ingested)
        return result
