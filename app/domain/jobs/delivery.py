"""Delivering a signed webhook with retries: the secret an org's POSTs are signed with, and the
attempt loop (exponential backoff, then dead) shared by jobs and batches."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from junction.domain.jobs.records import JobRepository, WebhookAttempt, WebhookStatus
from junction.domain.jobs.webhooks import WebhookSender, signature_headers
from junction.errors import InvalidRequest
from junction.settings import JobsSettings
from junction.stores.documents.common import utc_now

log = logging.getLogger("junction.jobs.webhooks")

#: Told each attempt and the delivery's status after it.
AttemptRecorder = Callable[[WebhookAttempt, WebhookStatus], Awaitable[None]]


class WebhookDelivery:
    def __init__(self, settings: JobsSettings, store: JobRepository, sender: WebhookSender) -> None:
        self.settings = settings
        self.store = store
        self.sender = sender

    async def secret(self, org_id: str | None) -> str | None:
        """The org's own signing secret, else the server-wide one."""
        if org_id:
            secret = await self.store.webhook_secret(org_id)
            if secret is not None:
                return secret
        return self.settings.webhook_secret

    async def check(self, url: str, org_id: str | None) -> None:
        """At submit: the target passes the guard, and there is a secret to sign with."""
        await self.sender.check_target(url)
        if await self.secret(org_id) is None:
            raise InvalidRequest("webhook: no signing secret is configured; set [jobs] webhook_secret or the "
                                 "org's (PUT /api/v1/admin/orgs/{id}/webhook-secret)", param="webhook",
                                 code="webhook_secret_missing")

    async def deliver(self, message_id: str, org_id: str | None, url: str, body: bytes, *, made: int = 0,
                      record: AttemptRecorder | None = None) -> bool:
        """POST ``body`` until a 2xx, up to ``webhook_max_attempts`` (``made`` of them already
        made before a redelivery), with exponential backoff; ``False`` when the delivery is dead."""
        secret = await self.secret(org_id)
        settings = self.settings
        while made < settings.webhook_max_attempts:
            if made:
                await asyncio.sleep(settings.webhook_backoff_seconds * 2 ** (made - 1))
            headers = signature_headers(secret, message_id, body) if secret else {}
            started = time.perf_counter()
            status, problem = await self.sender.send(url, body, headers)
            made += 1
            delivered = problem is None
            outcome: WebhookStatus = ("delivered" if delivered else
                                      "dead" if made >= settings.webhook_max_attempts else "pending")
            if record is not None:
                await record(WebhookAttempt(at=utc_now(), status=status, error=problem,
                                            duration_ms=(time.perf_counter() - started) * 1000), outcome)
            if delivered:
                return True
            log.info("%s: webhook attempt %d failed: %s", message_id, made, problem)
        log.warning("%s: webhook dead after %d attempts", message_id, made)
        return False
