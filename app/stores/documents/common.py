"""Rules every document backend shares, so the backends differ only in how they store things."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec

from junction.errors import Conflict, InvalidRequest, NotFound
from junction.schemas.chat import Message
from junction.security.api_keys import generate_api_key, key_prefix, verify_api_key
from junction.security.crypto import Cipher, SealedBlob
from junction.stores.documents.bridges import Bridge, BridgePatch, BridgeVersion, NewBridge, ResolvedBridge
from junction.stores.documents.protocol import (
    ApiKey,
    IssuedApiKey,
    NewApiKey,
    OrgPatch,
    ProviderCredential,
    ProviderSecret,
    Thread,
)
from junction.stores.notify import ChangeBus, ChangeNotPublished

log = logging.getLogger("junction.stores.documents")

SLUG_SHAPE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
PROVIDER_SHAPE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_secret_encoder = msgspec.json.Encoder()
_secret_decoder = msgspec.json.Decoder(ProviderSecret)


def new_id(kind: str) -> str:
    """``org_…``, ``key_…``, ``br_…``, ``th_…``: the underscore keeps ids and slugs apart."""
    return f"{kind}_{secrets.token_hex(12)}"


def whole_milliseconds(value: datetime) -> datetime:
    # What every backend (MongoDB's BSON dates included) stores exactly, so a record handed back
    # from a write equals the same record read later.
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def utc_now() -> datetime:
    return whole_milliseconds(datetime.now(UTC))


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


def reseal(cipher: Cipher, credential: ProviderCredential) -> SealedBlob | None:
    """The credential sealed with the newest key; ``None`` when that key sealed it already."""
    if cipher.is_current(credential.key_id):
        return None
    org_id, provider = credential.org_id, credential.provider
    secret = open_secret(cipher, org_id, provider, credential.key_id, credential.ciphertext)
    return seal_secret(cipher, org_id, provider, secret)


def aware_utc(value: datetime | None, field: str) -> datetime | None:
    """A caller's datetime as stored: aware UTC, whole milliseconds. A naive one is refused: its
    zone would be a guess (and SQL and MongoDB used to guess differently)."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidRequest(f"{field} needs a time zone (e.g. a trailing 'Z')", param=field)
    return whole_milliseconds(value.astimezone(UTC))


# --- errors: one wording whichever backend finds the record missing -----------------------------


def org_not_found(org_id: str, param: str | None = None) -> NotFound:
    return NotFound(f"org {org_id!r} not found", param=param)


def key_not_found(key_id: str) -> NotFound:
    return NotFound(f"API key {key_id!r} not found")


def credential_not_found(provider: str) -> NotFound:
    return NotFound(f"no {provider!r} credential in this org")


def bridge_not_found(id_or_slug: str) -> NotFound:
    return NotFound(f"bridge {id_or_slug!r} not found")


def version_not_found(bridge: Bridge, version: int) -> NotFound:
    return NotFound(f"bridge {bridge.slug!r} has no version {version}", param="version")


def thread_not_found(thread_id: str) -> NotFound:
    return NotFound(f"thread {thread_id!r} not found")


def slug_taken(slug: str) -> Conflict:
    return Conflict(
        f"a bridge with slug {slug!r} already exists in this org", param="slug", code="slug_taken"
    )


# --- API keys ------------------------------------------------------------------------------------


def issue_api_key(org_id: str, spec: NewApiKey) -> IssuedApiKey:
    """A freshly generated key and the record to store for it (the plaintext only in the result)."""
    generated = generate_api_key()
    requested = msgspec.structs.asdict(spec)
    requested["scopes"] = list(spec.scopes)  # the record must not share the caller's list
    requested["expires_at"] = aware_utc(spec.expires_at, "expires_at")
    record = ApiKey(
        **requested,
        id=new_id("key"),
        org_id=org_id,
        prefix=generated.prefix,
        secret_hash=generated.secret_hash,
        created_at=utc_now(),
    )
    return IssuedApiKey(record=record, key=generated.key)


async def authenticate_api_key(
    presented: str, find_by_prefix: Callable[[str], Awaitable[ApiKey | None]]
) -> ApiKey | None:
    """The active key whose digest matches ``presented``, looked up by its public prefix."""
    prefix = key_prefix(presented)
    record = None if prefix is None else await find_by_prefix(prefix)
    if record is None or not verify_api_key(presented, record.secret_hash):
        return None
    return record if record.is_active(utc_now()) else None


# --- bridges -------------------------------------------------------------------------------------


def new_bridge_fields(org_id: str, spec: NewBridge) -> dict[str, Any]:
    """A new bridge's stored fields: the spec as builtins (JSON-ready nested values), unpublished."""
    check_slug(spec.slug)
    now = utc_now()
    return {
        **msgspec.to_builtins(spec),
        "id": new_id("br"),
        "org_id": org_id,
        "published_version": None,
        "latest_version": 0,
        "created_at": now,
        "updated_at": now,
    }


def org_changes(patch: OrgPatch) -> dict[str, Any]:
    """The fields an org patch sets (``None`` kept: it clears a limit)."""
    return {name: getattr(patch, name) for name in patch.__struct_fields__
            if getattr(patch, name) is not msgspec.UNSET}


def patched_fields(patch: BridgePatch) -> dict[str, Any]:
    """The fields the patch sets, as builtins (``None`` kept: it clears a nullable field), and the
    new ``updated_at``."""
    changes: dict[str, Any] = {"updated_at": utc_now()}
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


def snapshot(bridge: Bridge) -> BridgeVersion:
    """Version ``latest_version`` of ``bridge`` (already incremented): its draft, as of its update."""
    return BridgeVersion(
        bridge_id=bridge.id,
        org_id=bridge.org_id,
        version=bridge.latest_version,
        config=bridge.draft(),
        created_at=bridge.updated_at,
    )


def version_fields(version: BridgeVersion) -> dict[str, Any]:
    """A version's stored fields, the config as builtins."""
    fields = msgspec.structs.asdict(version)
    fields["config"] = msgspec.to_builtins(version.config)
    return fields


def resolution(bridge: Bridge, published: BridgeVersion | None) -> ResolvedBridge:
    """What a call runs: the published version's config, or the draft while none is published."""
    if published is None:
        return ResolvedBridge(bridge=bridge, version=None, config=bridge.draft())
    return ResolvedBridge(bridge=bridge, version=published.version, config=published.config)


# --- threads -------------------------------------------------------------------------------------


def new_thread(org_id: str, bridge_id: str | None, owner: str | None) -> Thread:
    now = utc_now()
    return Thread(
        id=new_id("th"), org_id=org_id, bridge_id=bridge_id, owner=owner, created_at=now, updated_at=now
    )


def stored_thread(thread: Thread) -> dict[str, Any]:
    """A thread's own stored fields; its messages are stored one by one beside it."""
    fields = msgspec.structs.asdict(thread)
    del fields["messages"]
    return fields


def check_last(last: int | None) -> None:
    if last is not None and last < 0:
        raise InvalidRequest("last must be >= 0", param="last")


def first_wanted_seq(message_count: int, last: int | None) -> int:
    """The 1-based position of the first message to read: all of them, or only the ``last`` N."""
    return 1 if last is None else message_count - last + 1


def numbered_messages(messages: list[Message], total: int) -> list[tuple[int, Any]]:
    """``(seq, message as builtins)`` for messages that end a thread now ``total`` long."""
    start = total - len(messages) + 1
    return [(start + offset, without_nul(msgspec.to_builtins(message))) for offset, message in enumerate(messages)]


def without_nul(value: Any) -> Any:
    """``value`` with U+0000 replaced by U+FFFD in every string. PostgreSQL's JSONB cannot store
    U+0000, and a model's reply that contains one must not fail the thread write after the
    answer was already paid for; every backend applies the same rule so they stay alike."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {key: without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_nul(item) for item in value]
    return value


def check_limit(limit: int) -> int:
    # Backends disagree on 0 and negative limits (0 is "no limit" to MongoDB, an error to
    # PostgreSQL when negative), so only limits every backend reads the same way get through.
    if limit < 1:
        raise InvalidRequest("limit must be >= 1", param="limit")
    return limit


# --- change notifications ------------------------------------------------------------------------


class Notifier:
    """Publishes a change after a committed mutation, when the store has a bus.

    The data is already saved when this runs, so a failing bus must not turn the caller's success
    into an error (a freshly issued API key, shown only once, would be lost). The failure is
    logged; the bus's own recovery — every subscriber hears ``*`` ("drop every cache") once Redis
    is reachable again — covers the missed notification.
    """

    def __init__(self, changes: ChangeBus | None) -> None:
        self._changes = changes

    async def __call__(self, kind: str, id: str) -> None:
        if self._changes is None:
            return
        try:
            await self._changes.publish(kind, id)
        except ChangeNotPublished as error:
            log.error("saved %s %s, but %s; other workers' caches may be stale until then", kind, id, error)
        except Exception:  # a bus that breaks its contract must not undo the caller's success either
            log.exception("saved %s %s, but the change bus failed unexpectedly", kind, id)


# --- stored responses ----------------------------------------------------------------------------


def stored_values(record: Any) -> dict[str, Any]:
    """The record's fields as the backends store them (JSON builtins, no NUL characters)."""
    values = msgspec.structs.asdict(record)
    for name in ("response", "input_items", "context"):
        values[name] = without_nul(msgspec.to_builtins(values[name]))
    return values
