"""``/api/v1/rag/collections``: an org's collections (``admin`` scope), their documents
(``admin``) and queries (``chat``). Confined to the caller's org: another org's collection is a 404.
A large document is ingested as a queued job (:mod:`junction.domain.rag.ingest_jobs`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.handlers import HTTPRouteHandler

from junction.domain.access import org_required, requested_org
from junction.domain.http import caller, decode_body
from junction.domain.lookup import first_found, orgs_in_reach
from junction.domain.rag.ingest_jobs import INGEST_ENDPOINT, ingest_request
from junction.domain.rag.schemas import (
    CollectionBody,
    CollectionView,
    DocumentBody,
    IngestedDocument,
    QueryBody,
    QueryResults,
)
from junction.domain.rag.service import KnowledgeService
from junction.pipeline import Gateway
from junction.plugins.protocols import Principal
from junction.stores.documents.knowledge import Collection
from junction.stores.documents.protocol import OrgRepository

BASE = "/api/v1/rag/collections"
ASYNC_HEADER = "x-junction-async"
#: Queues a job: ``(principal, endpoint, request) -> job`` (the job service's ``submit_task``).
SubmitTask = Callable[[Principal, str, dict[str, Any]], Awaitable[Any]]


def rag_routes(gateway: Gateway, knowledge: KnowledgeService, orgs: OrgRepository,
               submit: SubmitTask | None = None) -> list[HTTPRouteHandler]:
    async def locate(request: Request[Any, Any, Any], principal: Principal, collection_id: str) -> Collection:
        org_ids = await orgs_in_reach(orgs, principal, requested_org(request.query_params, request.headers),
                                      what="collection")
        return await first_found(org_ids, lambda org_id: knowledge.get(org_id, collection_id), what="collection")

    @post(BASE, summary="Create a RAG collection", status_code=201)
    async def create_collection(request: Request[Any, Any, Any]) -> CollectionView:
        principal = await caller(gateway, request, "admin")
        body = decode_body(await request.body(), CollectionBody)
        org_id = org_required(principal, requested_org(request.query_params, request.headers, body.org_id),
                              what="org")
        await orgs.get(org_id)
        return CollectionView.of(await knowledge.create(org_id, body))

    @get(BASE, summary="The collections in the caller's reach")
    async def list_collections(request: Request[Any, Any, Any]) -> list[CollectionView]:
        principal = await caller(gateway, request, "admin")
        org_ids = await orgs_in_reach(orgs, principal, requested_org(request.query_params, request.headers),
                                      what="org")
        return [CollectionView.of(c) for org_id in org_ids for c in await knowledge.list(org_id)]

    @get(f"{BASE}/{{collection_id:str}}", summary="One collection")
    async def get_collection(request: Request[Any, Any, Any], collection_id: str) -> CollectionView:
        principal = await caller(gateway, request, "admin")
        return CollectionView.of(await locate(request, principal, collection_id))

    @delete(f"{BASE}/{{collection_id:str}}", summary="Delete a collection, its documents and chunks")
    async def delete_collection(request: Request[Any, Any, Any], collection_id: str) -> None:
        principal = await caller(gateway, request, "admin")
        collection = await locate(request, principal, collection_id)
        await knowledge.delete(collection.org_id, collection.id)

    @post(f"{BASE}/{{collection_id:str}}/documents", summary="Ingest (or replace) a document", status_code=201)
    async def ingest(request: Request[Any, Any, Any],
                     collection_id: str) -> IngestedDocument | Response[bytes]:
        principal = await caller(gateway, request, "admin")
        body = decode_body(await request.body(), DocumentBody)
        collection = await locate(request, principal, collection_id)
        if submit is not None and (request.headers.get(ASYNC_HEADER) == "true" or knowledge.is_large(body)):
            knowledge.check_document(body)  # a 400/413 now, not a failed job later
            job = await submit(principal, INGEST_ENDPOINT,
                               ingest_request(collection.org_id, collection.id, body))
            return Response(msgspec.json.encode({"id": job.id, "object": "job", "status": job.status}),
                            status_code=202, media_type="application/json")
        return await knowledge.ingest(principal, collection.org_id, collection.id, body)

    @delete(f"{BASE}/{{collection_id:str}}/documents/{{doc_id:str}}", summary="Delete a document and its chunks")
    async def delete_document(request: Request[Any, Any, Any], collection_id: str, doc_id: str) -> None:
        principal = await caller(gateway, request, "admin")
        collection = await locate(request, principal, collection_id)
        await knowledge.delete_document(collection.org_id, collection.id, doc_id)

    @post(f"{BASE}/{{collection_id:str}}/query", summary="The chunks nearest a query", status_code=200)
    async def query(request: Request[Any, Any, Any], collection_id: str) -> QueryResults:
        principal = await caller(gateway, request, "chat")
        body = decode_body(await request.body(), QueryBody)
        collection = await locate(request, principal, collection_id)
        return QueryResults(results=await knowledge.query(principal, collection.org_id, collection.id, body))

    return [create_collection, list_collections, get_collection, delete_collection, ingest, delete_document, query]
