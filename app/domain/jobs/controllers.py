"""The jobs API: ``POST/GET /api/v1/jobs``, ``GET/DELETE /api/v1/jobs/{id}`` (scope ``chat``), and an
org's webhook signing secret, ``PUT/DELETE /api/v1/admin/orgs/{id}/webhook-secret`` (scope ``admin``).
``POST /v1/chat/completions`` with ``x-junction-async: true`` submits through :func:`submit_chat`,
``POST /api/v1/bridges/{id}/chat`` with it through :func:`submit_bridge_chat`."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, delete, get, post, put
from litestar.handlers import HTTPRouteHandler

from junction.domain.access import org_for
from junction.domain.bridges.chat import BridgeChatBody
from junction.domain.http import caller, decode_body
from junction.domain.jobs.records import JOB_STATUSES, JobFilter
from junction.domain.jobs.service import JobRequest, JobService, Webhook, job_view
from junction.errors import InvalidRequest
from junction.pipeline import Gateway
from junction.plugins.protocols import Principal

IDEMPOTENCY_HEADER = "idempotency-key"
ASYNC_HEADER = "x-junction-async"
MAX_LIST = 1000


class WebhookSecretBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    secret: str

    def __repr__(self) -> str:
        return "WebhookSecretBody(secret=<redacted>)"


def accepted(job: Any) -> Response[bytes]:
    return Response(msgspec.json.encode({"id": job.id, "status": job.status}), status_code=202,
                    media_type="application/json")


async def submit_chat(jobs: JobService, principal: Principal, request: Request[Any, Any, Any],
                      body: bytes) -> Response[bytes]:
    """``/v1/chat/completions`` with ``x-junction-async: true``: the body becomes a job's request."""
    chat = decode_body(body, dict[str, Any])
    webhook = request.headers.get("x-junction-webhook-url")
    submission = JobRequest(request=chat, webhook=None if webhook is None else Webhook(url=webhook))
    return accepted(await jobs.submit(principal, submission, request.headers.get(IDEMPOTENCY_HEADER),
                                      request.headers))


async def submit_bridge_chat(jobs: JobService, principal: Principal, request: Request[Any, Any, Any],
                             bridge_id: str, body: BridgeChatBody) -> Response[bytes]:
    """``/api/v1/bridges/{id}/chat`` with ``x-junction-async: true``: the turn becomes a job."""
    turn: dict[str, Any] = {"bridge": bridge_id, "user": body.user, "variables": body.variables}
    if body.thread_id is not None:
        turn["thread_id"] = body.thread_id
    if body.stream:
        turn["stream"] = True  # refused at submit, naming the field
    org = request.query_params.get("org_id")
    if org:
        turn["org_id"] = org
    webhook = request.headers.get("x-junction-webhook-url")
    submission = JobRequest(request=turn, webhook=None if webhook is None else Webhook(url=webhook))
    return accepted(await jobs.submit(principal, submission, request.headers.get(IDEMPOTENCY_HEADER),
                                      request.headers))


def _filter(query: Any) -> JobFilter:
    status = query.get("status")
    if status is not None and status not in JOB_STATUSES:
        raise InvalidRequest(f"status: must be one of {', '.join(JOB_STATUSES)}", param="status",
                             code="invalid_value")
    webhook_status = query.get("webhook_status")
    if webhook_status is not None and webhook_status not in ("pending", "delivered", "dead"):
        raise InvalidRequest("webhook_status: must be pending, delivered or dead", param="webhook_status",
                             code="invalid_value")
    dead = query.get("dead_letter")
    if dead is not None and dead not in ("true", "false"):
        raise InvalidRequest("dead_letter: must be true or false", param="dead_letter", code="invalid_value")
    try:
        limit = int(query.get("limit", "100"))
    except ValueError:
        limit = -1
    if not 1 <= limit <= MAX_LIST:
        raise InvalidRequest(f"limit: must be a whole number from 1 to {MAX_LIST}", param="limit",
                             code="invalid_value")
    return JobFilter(status=status, batch_id=query.get("batch_id"), webhook_status=webhook_status,
                     dead_letter=None if dead is None else dead == "true", before=query.get("before"),
                     limit=limit)


def job_routes(gateway: Gateway, jobs: JobService) -> list[HTTPRouteHandler]:
    @post("/api/v1/jobs", summary="Queue a chat completion as a job", status_code=202)
    async def create_job(request: Request[Any, Any, Any]) -> Response[bytes]:
        principal = await caller(gateway, request, "chat")
        body = decode_body(await request.body(), JobRequest)
        return accepted(await jobs.submit(principal, body, request.headers.get(IDEMPOTENCY_HEADER),
                                          request.headers))

    @get("/api/v1/jobs", summary="Jobs, newest first (?status, batch_id, dead_letter, webhook_status, "
                                 "limit, before)")
    async def list_jobs(request: Request[Any, Any, Any]) -> Response[bytes]:
        principal = await caller(gateway, request, "chat")
        where = _filter(request.query_params)
        found = await jobs.list(principal, where)
        return Response(msgspec.json.encode({"object": "list", "data": [job_view(job) for job in found],
                                             "has_more": len(found) == where.limit}),
                        media_type="application/json")

    @get("/api/v1/jobs/{job_id:str}", summary="A job: status, result or error, attempts, webhook deliveries")
    async def get_job(request: Request[Any, Any, Any], job_id: str) -> Response[bytes]:
        principal = await caller(gateway, request, "chat")
        return Response(msgspec.json.encode(job_view(await jobs.get(principal, job_id))),
                        media_type="application/json")

    @delete("/api/v1/jobs/{job_id:str}", summary="Cancel a queued or running job", status_code=200)
    async def cancel_job(request: Request[Any, Any, Any], job_id: str) -> Response[bytes]:
        principal = await caller(gateway, request, "chat")
        return Response(msgspec.json.encode(job_view(await jobs.cancel(principal, job_id))),
                        media_type="application/json")

    @put("/api/v1/admin/orgs/{org_id:str}/webhook-secret", summary="Set the org's webhook signing secret",
         status_code=204)
    async def put_webhook_secret(request: Request[Any, Any, Any], org_id: str) -> None:
        principal = await caller(gateway, request, "admin")
        target = org_for(principal, org_id, what="org") or org_id
        body = decode_body(await request.body(), WebhookSecretBody)
        if not 16 <= len(body.secret) <= 512:
            raise InvalidRequest("secret: must be 16 to 512 characters", param="secret", code="invalid_value")
        await jobs.store.set_webhook_secret(target, body.secret)

    @delete("/api/v1/admin/orgs/{org_id:str}/webhook-secret", summary="Sign the org's webhooks with the "
            "server-wide secret again", status_code=204)
    async def delete_webhook_secret(request: Request[Any, Any, Any], org_id: str) -> None:
        principal = await caller(gateway, request, "admin")
        await jobs.store.set_webhook_secret(org_for(principal, org_id, what="org") or org_id, None)

    return [create_job, list_jobs, get_job, cancel_job, put_webhook_secret, delete_webhook_secret]
