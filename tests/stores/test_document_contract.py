"""The document store contract, run against every backend (see conftest.BACKENDS).

Orgs, API keys and provider credentials here; bridges and threads in
test_document_contract_bridges.py; cross-org isolation in test_document_isolation.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from junction.errors import InvalidRequest, NotFound
from junction.security.api_keys import KEY_MARKER
from junction.security.crypto import Cipher, CredentialUnreadable
from junction.stores.documents.bridges import NewBridge
from junction.stores.documents.protocol import DocumentStore, NewApiKey, OrgPatch, ProviderSecret
from junction.stores.documents.rotation import reencrypt_all_credentials
from junction.stores.notify import Change, MemoryChangeBus
from tests.stores.conftest import NEW_KEY, OLD_KEY, Backend
from tests.stores.test_document_contract_bridges import next_millisecond

# --- orgs ----------------------------------------------------------------------------------------


async def test_a_started_store_answers_ping(store: DocumentStore) -> None:
    await store.ping()


async def test_org_lifecycle(store: DocumentStore) -> None:
    created = await store.orgs.create("Acme")
    assert created.id.startswith("org_") and created.created_at.tzinfo is not None

    assert await store.orgs.get(created.id) == created
    assert created.id in [org.id for org in await store.orgs.list()]

    renamed = await store.orgs.update(created.id, OrgPatch(name="Acme Corp"))
    assert renamed.name == "Acme Corp" and renamed.created_at == created.created_at
    assert renamed.updated_at >= created.updated_at
    assert (await store.orgs.get(created.id)).name == "Acme Corp"

    await store.orgs.delete(created.id)
    with pytest.raises(NotFound):
        await store.orgs.get(created.id)
    with pytest.raises(NotFound):
        await store.orgs.delete(created.id)
    with pytest.raises(NotFound):
        await store.orgs.update(created.id, OrgPatch(name="ghost"))


async def test_deleting_an_org_removes_everything_it_owned(store: DocumentStore) -> None:
    org = await store.orgs.create("doomed")
    issued = await store.keys.create(org.id, NewApiKey(name="k"))
    await store.credentials.put(org.id, "openai", ProviderSecret(api_key="sk-org-secret"))
    bridge = await store.bridges.create(
        org.id, NewBridge(slug="helper", name="Helper", model="openai/gpt-4o")
    )
    await store.bridges.create_version(org.id, bridge.id)
    thread = await store.threads.create(org.id, bridge.id)

    await store.orgs.delete(org.id)

    assert await store.keys.authenticate(issued.key) is None
    assert await store.keys.find_by_prefix(issued.record.prefix) is None
    assert await store.keys.list(org.id) == []
    assert await store.credentials.reveal(org.id, "openai") is None
    assert await store.bridges.list(org.id) == []
    with pytest.raises(NotFound):
        await store.threads.get(org.id, thread.id)
    with pytest.raises(NotFound):
        await store.keys.create(org.id, NewApiKey(name="after"))


# --- API keys ------------------------------------------------------------------------------------


async def test_key_is_shown_once_and_stored_only_as_prefix_and_hash(store: DocumentStore) -> None:
    org = await store.orgs.create("keys")
    issued = await store.keys.create(org.id, NewApiKey(name="ci"))

    head = f"{KEY_MARKER}{issued.record.prefix}-"
    assert issued.key.startswith(head)
    secret_part = issued.key[len(head):]  # the secret is URL-safe base64: it may contain "-" itself
    stored = await store.keys.get(org.id, issued.record.id)
    for value in (stored.secret_hash, stored.prefix, stored.name, stored.id):
        assert issued.key not in value and secret_part not in value
    assert stored.scopes == ["chat"] and stored.revoked_at is None


async def test_key_lookup_by_prefix_and_hash_verification(store: DocumentStore) -> None:
    org = await store.orgs.create("auth")
    issued = await store.keys.create(org.id, NewApiKey(name="svc"))

    found = await store.keys.authenticate(issued.key)
    assert found is not None and found.id == issued.record.id and found.org_id == org.id
    assert (await store.keys.find_by_prefix(issued.record.prefix)) == found

    tampered = issued.key[:-1] + ("A" if issued.key[-1] != "A" else "B")
    assert await store.keys.authenticate(tampered) is None  # right prefix, wrong secret
    assert await store.keys.authenticate("sk-jn-000000000000-" + "x" * 43) is None
    assert await store.keys.authenticate("not a key") is None
    assert await store.keys.authenticate("") is None


async def test_key_fields_round_trip(store: DocumentStore) -> None:
    org = await store.orgs.create("fields")
    expires = datetime(2031, 5, 17, 12, 30, tzinfo=UTC)
    spec = NewApiKey(
        name="limited",
        scopes=["chat", "admin"],
        models=["openai/gpt-4o-mini"],
        rpm=60,
        tpm=10_000,
        budget_usd=12.5,
        budget_period="month",
        expires_at=expires,
    )
    issued = await store.keys.create(org.id, spec)

    stored = await store.keys.get(org.id, issued.record.id)
    assert stored == issued.record
    assert (stored.scopes, stored.models, stored.rpm, stored.tpm) == (
        ["chat", "admin"],
        ["openai/gpt-4o-mini"],
        60,
        10_000,
    )
    assert (stored.budget_usd, stored.budget_period, stored.expires_at) == (12.5, "month", expires)


async def test_revoked_key_stops_authenticating_and_keeps_its_revocation_time(store: DocumentStore) -> None:
    org = await store.orgs.create("revoke")
    issued = await store.keys.create(org.id, NewApiKey(name="leaked"))
    await next_millisecond()
    other = await store.keys.create(org.id, NewApiKey(name="fine"))

    revoked = await store.keys.revoke(org.id, issued.record.id)
    assert revoked.revoked_at is not None
    assert await store.keys.authenticate(issued.key) is None
    assert await store.keys.authenticate(other.key) is not None

    again = await store.keys.revoke(org.id, issued.record.id)
    assert again.revoked_at == revoked.revoked_at
    listed = {key.id: key for key in await store.keys.list(org.id)}
    assert listed[issued.record.id].revoked_at == revoked.revoked_at  # listing shows revoked keys
    assert [key.id for key in await store.keys.list(org.id)] == [issued.record.id, other.record.id]


async def test_expired_key_does_not_authenticate(store: DocumentStore) -> None:
    org = await store.orgs.create("expiry")
    past = await store.keys.create(
        org.id, NewApiKey(name="old", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    future = await store.keys.create(
        org.id, NewApiKey(name="new", expires_at=datetime.now(UTC) + timedelta(days=1))
    )
    assert await store.keys.authenticate(past.key) is None
    assert await store.keys.authenticate(future.key) is not None


async def test_deleted_key_is_gone(store: DocumentStore) -> None:
    org = await store.orgs.create("delete-key")
    issued = await store.keys.create(org.id, NewApiKey(name="tmp"))
    await store.keys.delete(org.id, issued.record.id)
    assert await store.keys.authenticate(issued.key) is None
    with pytest.raises(NotFound):
        await store.keys.get(org.id, issued.record.id)
    with pytest.raises(NotFound):
        await store.keys.delete(org.id, issued.record.id)


# --- provider credentials ------------------------------------------------------------------------


async def test_credential_put_reveal_replace_delete(store: DocumentStore) -> None:
    org = await store.orgs.create("creds")
    assert await store.credentials.reveal(org.id, "openai") is None

    first = await store.credentials.put(
        org.id, "openai", ProviderSecret(api_key="sk-first", base_url="http://a")
    )
    assert first.key_id == OLD_KEY.id and first.provider == "openai"
    assert await store.credentials.reveal(org.id, "openai") == ProviderSecret(
        api_key="sk-first", base_url="http://a"
    )

    await store.credentials.put(org.id, "anthropic", ProviderSecret(api_key="sk-ant"))
    second = await store.credentials.put(org.id, "openai", ProviderSecret(api_key="sk-second"))
    assert second.created_at == first.created_at and second.updated_at >= first.updated_at
    assert await store.credentials.reveal(org.id, "openai") == ProviderSecret(api_key="sk-second")
    assert [item.provider for item in await store.credentials.list(org.id)] == ["anthropic", "openai"]
    assert (await store.credentials.get(org.id, "anthropic")).org_id == org.id

    await store.credentials.delete(org.id, "openai")
    assert await store.credentials.reveal(org.id, "openai") is None
    with pytest.raises(NotFound):
        await store.credentials.get(org.id, "openai")
    with pytest.raises(NotFound):
        await store.credentials.delete(org.id, "openai")
    with pytest.raises(NotFound):
        await store.credentials.put("org_missing", "openai", ProviderSecret(api_key="x"))
    with pytest.raises(InvalidRequest):
        await store.credentials.put(org.id, "Bad Name!", ProviderSecret(api_key="x"))


async def test_credentials_are_encrypted_at_rest(backend: Backend, store: DocumentStore) -> None:
    org = await store.orgs.create("at-rest")
    api_key, base_url = "sk-live-PLAINTEXT-4242", "https://tenant.example.invalid/v1"
    credential = await store.credentials.put(
        org.id, "openai", ProviderSecret(api_key=api_key, base_url=base_url)
    )

    rows = await backend.raw_credential_rows(org.id)
    assert len(rows) == 1
    raw = repr(rows[0]).encode() + b"".join(
        bytes(value) for value in rows[0].values() if isinstance(value, bytes)
    )
    for plaintext in (api_key, base_url, "PLAINTEXT"):
        assert plaintext.encode() not in raw
    assert bytes(rows[0]["ciphertext"]) == credential.ciphertext
    assert api_key not in repr(await store.credentials.reveal(org.id, "openai"))  # repr is redacted


async def test_key_rotation_reencrypts_and_old_key_can_then_be_dropped(backend: Backend) -> None:
    old_store = await backend.open(Cipher([OLD_KEY]))
    org = await old_store.orgs.create("rotation")
    await old_store.credentials.put(org.id, "openai", ProviderSecret(api_key="sk-rotate-me"))
    await old_store.credentials.put(org.id, "groq", ProviderSecret(api_key="sk-groq"))

    other_org = await old_store.orgs.create("rotation-2")
    await old_store.credentials.put(other_org.id, "openai", ProviderSecret(api_key="sk-other"))

    rotated = await backend.open(Cipher([NEW_KEY, OLD_KEY]))  # newest first: k2 seals, both open
    assert await rotated.credentials.reveal(org.id, "openai") == ProviderSecret(api_key="sk-rotate-me")
    assert await rotated.credentials.reencrypt(org.id) == 2
    assert await rotated.credentials.reencrypt(org.id) == 0
    assert await reencrypt_all_credentials(rotated) >= 1  # the other org (PostgreSQL holds others too)
    assert (await rotated.credentials.get(other_org.id, "openai")).key_id == NEW_KEY.id
    assert {item.key_id for item in await rotated.credentials.list(org.id)} == {NEW_KEY.id}

    new_only = await backend.open(Cipher([NEW_KEY]))
    assert await new_only.credentials.reveal(org.id, "openai") == ProviderSecret(api_key="sk-rotate-me")
    with pytest.raises(CredentialUnreadable):
        await old_store.credentials.reveal(org.id, "openai")  # k1 alone cannot open k2's blobs


# --- change notifications ------------------------------------------------------------------------


async def test_mutations_publish_changes_for_hot_reload(backend: Backend) -> None:
    bus = MemoryChangeBus()
    heard: list[Change] = []
    bus.subscribe(heard.append)
    store = await backend.open(changes=bus)

    org = await store.orgs.create("notify")
    issued = await store.keys.create(org.id, NewApiKey(name="k"))
    await store.keys.revoke(org.id, issued.record.id)
    await store.credentials.put(org.id, "openai", ProviderSecret(api_key="sk"))
    bridge = await store.bridges.create(org.id, NewBridge(slug="b", name="B", model="m"))
    await store.bridges.create_version(org.id, bridge.id)
    await store.bridges.publish(org.id, bridge.id, 1)

    assert heard == [
        Change("org", org.id),
        Change("key", issued.record.id),
        Change("key", issued.record.id),
        Change("credential", f"{org.id}/openai"),
        Change("bridge", bridge.id),
        Change("bridge", bridge.id),
        Change("bridge", bridge.id),
    ]
    with pytest.raises(NotFound):
        await store.keys.revoke(org.id, "key_missing")
    assert len(heard) == 7  # a failed mutation announces nothing
