"""``POST /api/v1/batches`` (a JSON ``{"requests": [...]}`` or JSONL, one chat body a line),
``GET /api/v1/batches/{id}`` (status, counts, per-item results) and ``DELETE`` (cancel)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.handlers import HTTPRouteHandler

from junction.domain.batches.service import BatchService
from junction.domain.http import caller, decode_body
from junction.domain.jobs.records import Batch
from junction.domain.jobs.service import Webhook, unix
from junction.errors import InvalidRequest
from junction.pipeline import Gateway

JSONL_TYPES = ("application/jsonl", "application/x-ndjson", "application/x-jsonlines", "text/jsonl")


class BatchRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    requests: list[dict[str, Any]]
    #: POSTed (signed, like a job's) when the batch completes or is cancelled.
    webhook: Webhook | None = None


def parse_jsonl(body: bytes, param: str) -> list[dict[str, Any]]:
    """One JSON object a line (blank lines skipped); a bad line is a 400 naming it (1-based)."""
    lines: list[dict[str, Any]] = []
    for number, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            value = msgspec.json.decode(line)
        except msgspec.DecodeError:
            raise InvalidRequest(f"{param}: line {number} is not valid JSON", param=param,
                                 code="invalid_jsonl") from None
        if not isinstance(value, dict):
            raise InvalidRequest(f"{param}: line {number} is not a JSON object", param=param, code="invalid_jsonl")
        lines.append(value)
    return lines


def json_response(value: Any, status: int = 200) -> Response[bytes]:
    return Response(msgspec.json.encode(value), status_code=status, media_type="application/json")


def batch_routes(gateway: Gateway, batches: BatchService) -> list[HTTPRouteHandler]:
    async def view(batch: Batch, with_results: bool) -> dict[str, Any]:
        counts = await batches.counts(batch)
        done = counts["succeeded"] + counts["failed"] + counts["cancelled"]
        status = batch.status
        shown: dict[str, Any] = {
            "id": batch.id, "object": "batch", "status": status, "counts": counts,
            "progress": round(done / batch.total, 4) if batch.total else 1.0,
            "created_at": unix(batch.created_at), "completed_at": unix(batch.finished_at),
            "expires_at": unix(batch.expires_at),
        }
        if with_results:
            shown["results"] = [{"index": job.batch_index, "job_id": job.id, "status": job.status,
                                 "result": job.result, "error": job.error} for job in await batches.results(batch)]
        return shown

    @post("/api/v1/batches", summary="Queue many chat requests as one batch (JSON or JSONL)", status_code=202)
    async def create_batch(request: Request[Any, Any, Any]) -> Response[bytes]:
        principal = await caller(gateway, request, "chat")
        body = await request.body()
        webhook = None
        if request.content_type[0] in JSONL_TYPES:
            requests = parse_jsonl(body, "body")
        else:
            decoded = decode_body(body, BatchRequest)
            requests, webhook = decoded.requests, decoded.webhook
        batch = await batches.create(principal, requests, kind="junction",
                                     webhook_url=webhook.url if webhook is not None else None)
        return json_response({"id": batch.id, "status": batch.status, "total": batch.total}, 202)

    @get("/api/v1/batches/{batch_id:str}", summary="A batch: status, counts, progress and per-item results "
                                                   "(?results=false for progress only)")
    async def get_batch(request: Request[Any, Any, Any], batch_id: str) -> Response[bytes]:
        principal = await caller(gateway, request, "chat")
        batch = await batches.get(principal, batch_id, "junction")
        return json_response(await view(batch, request.query_params.get("results") != "false"))

    @delete("/api/v1/batches/{batch_id:str}", summary="Cancel a batch's jobs not started yet", status_code=200)
    async def cancel_batch(request: Request[Any, Any, Any], batch_id: str) -> Response[bytes]:
        principal = await caller(gateway, request, "chat")
        return json_response(await view(await batches.cancel(principal, batch_id, "junction"), False))

    return [create_batch, get_batch, cancel_batch]
