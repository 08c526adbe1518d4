"""Rules every document backend shares, so the backends differ only in how they store things."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any

import msgspec

from app.errors import InvalidRequest
from app.security.crypto import Cipher, SealedBlob
from app.stores.documents.protocol import Bridge, BridgePatch, NewBridge, ProviderSecret
from app.stores.notify import ChangeBus

SLUG_SHAPE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
PROVIDER_SHAPE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_secret_encoder = msgspec.json.Encoder()
_secret_decoder = msgspec.json.Decoder(ProviderSecret)


def new_id(kind: str) -> str:
    """``org_…``, ``key_…``, ``br_…``, ``th_…``: the underscore keeps ids and slugs apart."""
    return f"{kind}_{secrets.token_hex(12)}"


def utc_now() -> datetime:
    # Whole milliseconds: what every backend (MongoDB's BSON dates included) stores exactly.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def as_utc(value: datetime | None) -> datetime | None:
    """Backends that store naive UTC (SQLite, BSON) hand it back naive: make it aware again."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def check_slug(slug: str) -> str:
    if not SLUG_SHAPE.match(slug):
        raise InvalidRequest(
            "slug must be 1-64 lowercase letters, digits or '-', not starting or ending with '-'",
            param="slug",
            code="invalid_slug",
        )
    return slug


def check_provider(provider: str) -> str:
    if not PROVIDER_SHAPE.match(provider):
        raise InvalidRequest(f"unknown provider name {provider!r}", param="provider")
    return provider


def is_bridge_id(id_or_slug: str) -> bool:
    return id_or_slug.startswith("br_")


def credential_binding(org_id: str, provider: str) -> bytes:
    """AES-GCM associated data: a blob opens only on the row of the org and provider it sealed."""
    return f"junction-credential\x00{org_id}\x00{provider}".encode()


def seal_secret(cipher: Cipher, org_id: str, provider: str, secret: ProviderSecret) -> SealedBlob:
    return cipher.seal(_secret_encoder.encode(secret), credential_binding(org_id, provider))


def open_secret(cipher: Cipher, org_id: str, provider: str, key_id: str, blob: bytes) -> ProviderSecret:
    plaintext = cipher.open(SealedBlob(key_id=key_id, blob=blob), credential_binding(org_id, provider))
    return _secret_decoder.decode(plaintext)


def bridge_fields(spec: NewBridge) -> dict[str, Any]:
    """A new bridge's stored fields as builtins (JSON-ready nested values)."""
    check_slug(spec.slug)
    return msgspec.to_builtins(spec)


def patched_fields(patch: BridgePatch) -> dict[str, Any]:
    """Only the fields the patch sets, as builtins; ``None`` kept (it clears a nullable field)."""
    changes: dict[str, Any] = {}
    for name in patch.__struct_fields__:
        value = getattr(patch, name)
        if value is msgspec.UNSET:
            continue
        changes[name] = msgspec.to_builtins(value) if value is not None else None
    if "slug" in changes:
        check_slug(changes["slug"])
    for required in ("slug", "name", "model", "prompt", "variables", "params", "tools", "status"):
        if required in changes and changes[required] is None:
            raise InvalidRequest(f"{required} cannot be null", param=required)
    return changes


def bridge_config_builtins(bridge: Bridge) -> dict[str, Any]:
    return msgspec.to_builtins(bridge.draft())


class Notifier:
    """Publishes a change when the store has a bus; a store without one stays silent."""

    def __init__(self, changes: ChangeBus | None) -> None:
        self._changes = changes

    async def __call__(self, kind: str, id: str) -> None:
        if self._changes is not None:
            await self._changes.publish(kind, id)
