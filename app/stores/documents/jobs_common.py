"""What the SQL and MongoDB job repositories share: their errors and the webhook secret's sealing."""

from __future__ import annotations

from junction.errors import NotFound
from junction.security.crypto import Cipher, SealedBlob
from junction.stores.documents.common import seal_secret
from junction.stores.documents.protocol import ProviderSecret

#: What an org's webhook secret is sealed to (beside its org), so it can never be opened as a
#: provider credential or the other way round.
WEBHOOK_SECRET_BINDING = "junction-webhook-secret"


def job_not_found(job_id: str) -> NotFound:
    return NotFound(f"job {job_id!r} not found", param="job_id", code="job_not_found")


def batch_not_found(batch_id: str) -> NotFound:
    return NotFound(f"batch {batch_id!r} not found", param="batch_id", code="batch_not_found")


def file_not_found(file_id: str) -> NotFound:
    return NotFound(f"file {file_id!r} not found", param="file_id", code="file_not_found")


def seal_webhook_secret(cipher: Cipher, org_id: str, secret: str) -> SealedBlob:
    return seal_secret(cipher, org_id, WEBHOOK_SECRET_BINDING, ProviderSecret(api_key=secret))
