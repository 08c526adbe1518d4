"""Encryption key rotation across every org: the step between "add the new key first" and
"drop the old key" (see :mod:`junction.security.crypto`)."""

from __future__ import annotations

from junction.stores.documents.protocol import DocumentStore


async def reencrypt_all_credentials(store: DocumentStore) -> int:
    """Re-seal every org's credentials that the newest key did not seal; returns how many.

    Safe to run while serving and to re-run after an interruption: each credential is replaced
    only if it still holds what was read.
    """
    resealed = 0
    for org in await store.orgs.list():
        resealed += await store.credentials.reencrypt(org.id)
    return resealed
