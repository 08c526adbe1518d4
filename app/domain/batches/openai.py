"""The OpenAI Files and Batch APIs over Junction's batches: ``POST /v1/files`` (``purpose=batch``,
JSONL), ``GET /v1/files/{id}`` and ``/content``, ``POST/GET /v1/batches``, ``GET /v1/batches/{id}``,
``POST /v1/batches/{id}/cancel``. Each input line's ``body.model`` may be any Junction model,
alias or bridge; output and error files use OpenAI's line format."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.handlers import HTTPRouteHandler

from junction.domain.batches.controllers import json_response, parse_jsonl
from junction.domain.batches.service import BatchService
from junction.domain.http import caller, check_length, decode_body
from junction.domain.jobs.records import Batch, StoredFile
from junction.domain.jobs.service import check_chat_body, owner_org, reader_org, unix
from junction.errors import InvalidRequest, PayloadTooLarge
from junction.pipeline import Gateway
from junction.stores.documents.common import new_id, utc_now

ENDPOINT = "/v1/chat/completions"
WINDOW_SECONDS = 24 * 3600


class NewBatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    input_file_id: str
    endpoint: str
    completion_window: str = "24h"
    metadata: dict[str, str] | None = None


def file_object(record: StoredFile) -> dict[str, Any]:
    return {"id": record.id, "object": "file", "bytes": record.bytes, "created_at": unix(record.created_at),
            "filename": record.filename, "purpose": record.purpose, "status": "processed",
            "status_details": None, "expires_at": unix(record.expires_at)}


def batch_lines(content: bytes) -> tuple[list[dict[str, Any]], list[str]]:
    """The bodies and custom ids of an input file; any bad line is a 400 naming its number."""
    bodies, custom_ids, seen = [], [], set()
    for number, line in enumerate(parse_jsonl(content, "input_file_id"), start=1):
        where = f"input_file_id: line {number}"
        custom_id, body = line.get("custom_id"), line.get("body")
        if not isinstance(custom_id, str) or not custom_id:
            raise InvalidRequest(f"{where}: custom_id must be a non-empty string", param="input_file_id",
                                 code="invalid_batch_line")
        if custom_id in seen:
            raise InvalidRequest(f"{where}: custom_id {custom_id!r} is used twice", param="input_file_id",
                                 code="duplicate_custom_id")
        seen.add(custom_id)
        if line.get("method", "POST") != "POST" or line.get("url") != ENDPOINT:
            raise InvalidRequest(f"{where}: method must be POST and url {ENDPOINT}", param="input_file_id",
                                 code="invalid_batch_line")
        if not isinstance(body, dict):
            raise InvalidRequest(f"{where}: body must be a JSON object", param="input_file_id",
                                 code="invalid_batch_line")
        try:
            check_chat_body(body, "body")
        except InvalidRequest as error:
            raise InvalidRequest(f"{where}: {error.message}", param="input_file_id",
                                 code="invalid_batch_line") from None
        bodies.append(body)
        custom_ids.append(custom_id)
    return bodies, custom_ids


def openai_batch_routes(gateway: Gateway, batches: BatchService) -> list[HTTPRouteHandler]:
    store = batches.store
    settings = batches.settings

    async def batch_object(batch: Batch) -> dict[str, Any]:
        counts = await batches.counts(batch)
        finished = unix(batch.finished_at)
        return {
            "id": batch.id, "object": "batch", "endpoint": batch.endpoint, "errors": None,
            "input_file_id": batch.input_file_id, "completion_window": batch.completion_window,
            "status": batch.status, "output_file_id": batch.output_file_id, "error_file_id": batch.error_file_id,
            "created_at": unix(batch.created_at), "in_progress_at": unix(batch.created_at),
            "expires_at": (unix(batch.created_at) or 0) + WINDOW_SECONDS, "finalizing_at": None,
            "completed_at": finished if batch.status == "completed" else None,
            "failed_at": None, "expired_at": None, "cancelling_at": unix(batch.cancelled_at),
            "cancelled_at": finished if batch.status == "cancelled" else None,
            "request_counts": {"total": batch.total, "completed": counts["succeeded"],
                               "failed": counts["failed"] + counts["cancelled"]},
            "metadata": batch.metadata,
        }

    @post("/v1/files", summary="Upload a batch input file (OpenAI Files API, purpose=batch)", status_code=200)
    async def upload_file(request: Request[Any, Any, Any]) -> Response[bytes]:
        principal = await caller(gateway, request, "chat")
        if request.content_type[0] != "multipart/form-data":
            raise InvalidRequest("expected a multipart/form-data upload with fields file and purpose",
                                 param="file", code="invalid_upload")
        form = await request.form()
        purpose, upload = form.get("purpose"), form.get("file")
        if purpose != "batch":
            raise InvalidRequest("purpose: only 'batch' files are accepted", param="purpose", code="invalid_value")
        if not isinstance(upload, UploadFile):
            raise InvalidRequest("file: missing the uploaded file", param="file", code="missing_file")
        content = await upload.read()
        if len(content) > settings.max_file_bytes:
            raise PayloadTooLarge(f"file: larger than {settings.max_file_bytes} bytes ([jobs] max_file_bytes)",
                                  param="file", code="file_too_large")
        record = StoredFile(id=new_id("file"), org_id=owner_org(principal), purpose="batch",
                            filename=check_length("file.filename", upload.filename or "batch.jsonl", 255),
                            bytes=len(content), created_at=utc_now())
        await batches.files.save(record, content)
        return json_response(file_object(record))

    @get("/v1/files/{file_id:str}", summary="A file's metadata (OpenAI Files API)")
    async def get_file(request: Request[Any, Any, Any], file_id: str) -> Response[bytes]:
        principal = await caller(gateway, request, "chat")
        return json_response(file_object(await store.get_file(reader_org(principal), file_id)))

    @get("/v1/files/{file_id:str}/content", summary="A file's bytes (OpenAI Files API)")
    async def file_content(request: Request[Any, Any, Any], file_id: str) -> Response[bytes]:
        principal = await caller(gateway, request, "chat")
        content = await batches.files.content(reader_org(principal), file_id)
        return Response(content, media_type="application/jsonl")

    @post("/v1/batches", summary="Create a batch from an uploaded JSONL file (OpenAI Batch API)", status_code=200)
    async def create_batch(request: Request[Any, Any, Any]) -> Response[bytes]:
        principal = await caller(gateway, request, "chat")
        body = decode_body(await request.body(), NewBatch)
        if body.endpoint != ENDPOINT:
            raise InvalidRequest(f"endpoint: only {ENDPOINT} is supported", param="endpoint", code="invalid_value")
        if body.completion_window != "24h":
            raise InvalidRequest("completion_window: must be 24h", param="completion_window", code="invalid_value")
        record = await store.get_file(reader_org(principal), body.input_file_id)
        if record.purpose != "batch":
            raise InvalidRequest("input_file_id: not a purpose=batch file", param="input_file_id",
                                 code="invalid_value")
        bodies, custom_ids = batch_lines(await batches.files.content(reader_org(principal), record.id))
        batch = await batches.create(principal, bodies, kind="openai", custom_ids=custom_ids,
                                     input_file_id=record.id, metadata=body.metadata, param="input_file_id")
        return json_response(await batch_object(batch))

    @get("/v1/batches", summary="Batches, newest first (OpenAI Batch API; ?limit, after)")
    async def list_batches(request: Request[Any, Any, Any]) -> Response[bytes]:
        principal = await caller(gateway, request, "chat")
        try:
            limit = int(request.query_params.get("limit", "20"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            raise InvalidRequest("limit: must be a whole number from 1 to 100", param="limit", code="invalid_value")
        found = await store.list_batches(reader_org(principal), "openai", limit + 1,
                                         request.query_params.get("after"))
        data = [await batch_object(batch) for batch in found[:limit]]
        return json_response({"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                              "last_id": data[-1]["id"] if data else None, "has_more": len(found) > limit})

    @get("/v1/batches/{batch_id:str}", summary="A batch (OpenAI Batch API)")
    async def get_batch(request: Request[Any, Any, Any], batch_id: str) -> Response[bytes]:
        principal = await caller(gateway, request, "chat")
        return json_response(await batch_object(await batches.get(principal, batch_id, "openai")))

    @post("/v1/batches/{batch_id:str}/cancel", summary="Cancel a batch (OpenAI Batch API)", status_code=200)
    async def cancel_batch(request: Request[Any, Any, Any], batch_id: str) -> Response[bytes]:
        principal = await caller(gateway, request, "chat")
        return json_response(await batch_object(await batches.cancel(principal, batch_id, "openai")))

    return [upload_file, get_file, file_content, create_batch, list_batches, get_batch, cancel_batch]
