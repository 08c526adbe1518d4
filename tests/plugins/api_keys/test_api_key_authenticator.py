"""The ``api-keys`` authenticator on a real SQLite document store and the in-process change bus:
keys verify, stay cached (no store read per request), and revocation/expiry apply at once."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from junction.errors import AuthenticationFailed
from junction.middleware.api_keys.authenticator import ApiKeyAuthenticator
from junction.middleware.api_keys.config import ApiKeysConfig
from junction.middleware.master_key.authenticator import MasterKeyAuthenticator
from junction.plugins import PluginContext
from junction.security.crypto import Cipher, EncryptionKey
from junction.settings import AuthSettings, Settings
from junction.stores.documents import open_document_store
from junction.stores.documents.protocol import ApiKey, ApiKeyRepository, DocumentStore, NewApiKey
from junction.stores.notify import MemoryChangeBus


class CountingKeys:
    """The real repository, counting the lookups the authenticator makes (and optionally holding
    them until released, to stage a race)."""

    def __init__(self, inner: ApiKeyRepository) -> None:
        self.inner = inner
        self.lookups = 0
        self.hold: asyncio.Event | None = None

    async def find_by_prefix(self, prefix: str) -> ApiKey | None:
        self.lookups += 1
        found = await self.inner.find_by_prefix(prefix)
        if self.hold is not None:
            await self.hold.wait()
        return found


@dataclass
class Documents:
    keys: CountingKeys


@dataclass
class Rig:
    store: DocumentStore
    changes: MemoryChangeBus
    keys: CountingKeys
    auth: ApiKeyAuthenticator
    org_id: str

    async def issue(self, **spec: object) -> str:
        issued = await self.store.keys.create(self.org_id, NewApiKey(name="k", **spec))
        return issued.key


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    changes = MemoryChangeBus()
    cipher = Cipher([EncryptionKey(id="t", material=os.urandom(32))])
    store = open_document_store(f"sqlite+aiosqlite:///{tmp_path}/docs.db", cipher=cipher, changes=changes)
    await changes.start()
    await store.start()
    keys = CountingKeys(store.keys)
    context = PluginContext(settings=Settings(), documents=Documents(keys), changes=changes)  # type: ignore[arg-type]
    auth = ApiKeyAuthenticator(ApiKeysConfig(), context)
    await auth.start()
    org = await store.orgs.create("Acme")
    yield Rig(store, changes, keys, auth, org.id)
    await auth.close()
    await store.close()
    await changes.close()


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def refused(rig: Rig, key: str) -> str:
    with pytest.raises(AuthenticationFailed) as caught:
        await rig.auth.authenticate(bearer(key))
    assert key not in caught.value.message
    return caught.value.code or ""


async def test_key_gives_its_org_scopes_and_models(rig: Rig) -> None:
    key = await rig.issue(scopes=["chat", "admin"], models=["openai/gpt-4o-mini"])
    principal = await rig.auth.authenticate(bearer(key))
    assert principal is not None
    assert (principal.kind, principal.org_id) == ("key", rig.org_id)
    assert principal.scopes == {"chat", "admin"} and principal.models == {"openai/gpt-4o-mini"}
    assert (await rig.auth.authenticate({"x-api-key": key})) == principal


async def test_the_principal_carries_the_keys_expiry_and_limits(rig: Rig) -> None:
    """Keys this caller issues may not outlive or out-spend it (see check_within_issuer)."""
    expires_at = datetime(2099, 1, 2, 3, 4, 5, tzinfo=UTC)
    key = await rig.issue(expires_at=expires_at, rpm=60, tpm=1000, budget_usd=2.5, budget_period="day")
    principal = await rig.auth.authenticate(bearer(key))
    assert principal is not None and principal.expires_at == expires_at
    limits = (principal.rpm, principal.tpm, principal.budget_usd, principal.budget_period)
    assert limits == (60, 1000, 2.5, "day")
    plain = await rig.auth.authenticate(bearer(await rig.issue()))
    assert plain is not None
    assert (plain.expires_at, plain.rpm, plain.tpm, plain.budget_usd, plain.budget_period) == (None,) * 5


async def test_cached_key_needs_no_store_read(rig: Rig) -> None:
    key = await rig.issue()
    for _ in range(50):
        assert await rig.auth.authenticate(bearer(key)) is not None
    assert rig.keys.lookups == 1


async def test_concurrent_first_requests_share_one_lookup(rig: Rig) -> None:
    key = await rig.issue()
    results = await asyncio.gather(*(rig.auth.authenticate(bearer(key)) for _ in range(20)))
    assert all(r is not None for r in results) and rig.keys.lookups == 1


async def test_wrong_secret_with_a_real_prefix_is_refused(rig: Rig) -> None:
    key = await rig.issue()
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    assert await refused(rig, forged) == "invalid_api_key"


async def test_unknown_prefixes_are_remembered(rig: Rig) -> None:
    made_up = "sk-jn-0123456789ab-" + "A" * 43
    for _ in range(5):
        assert await refused(rig, made_up) == "invalid_api_key"
    assert rig.keys.lookups == 1


async def test_other_credentials_are_left_to_other_authenticators(rig: Rig) -> None:
    for headers in (
        {},
        bearer("sk-test-master"),
        bearer("eyJhbGciOi.eyJzdWIi.sig"),
        {"x-api-key": "sk-jn-short"},
    ):
        assert await rig.auth.authenticate(headers) is None
    assert rig.keys.lookups == 0


async def test_revocation_applies_to_the_next_request(rig: Rig) -> None:
    key = await rig.issue()
    principal = await rig.auth.authenticate(bearer(key))
    assert principal is not None
    await rig.store.keys.revoke(rig.org_id, principal.id.removeprefix("key:"))
    assert await refused(rig, key) == "revoked_api_key"


async def test_deleting_the_org_drops_its_keys(rig: Rig) -> None:
    key = await rig.issue()
    assert await rig.auth.authenticate(bearer(key)) is not None
    await rig.store.orgs.delete(rig.org_id)
    assert await refused(rig, key) == "invalid_api_key"


async def test_expired_key_is_refused_even_when_cached(rig: Rig) -> None:
    key = await rig.issue(expires_at=datetime.now(UTC) + timedelta(seconds=0.4))
    assert await rig.auth.authenticate(bearer(key)) is not None
    await asyncio.sleep(0.5)
    assert await refused(rig, key) == "expired_api_key"


async def test_a_lookup_racing_a_revocation_is_not_cached(rig: Rig) -> None:
    """The read started before the revocation returns the old, active record: it may serve that
    one request, but must not be cached, or the revoked key would live on."""
    key = await rig.issue()
    rig.keys.hold = asyncio.Event()
    pending = asyncio.ensure_future(rig.auth.authenticate(bearer(key)))
    while rig.keys.lookups == 0:
        await asyncio.sleep(0.001)
    key_id = (await rig.store.keys.list(rig.org_id))[0].id
    await rig.store.keys.revoke(rig.org_id, key_id)  # published while the read is in flight
    rig.keys.hold.set()
    await pending
    rig.keys.hold = None
    assert await refused(rig, key) == "revoked_api_key"


async def test_cached_key_auth_costs_at_most_a_tenth_of_a_millisecond_over_the_master_key(rig: Rig) -> None:
    """The issue's budget: key auth adds ≤ 0.1 ms p50 over master-key auth (in-process part)."""
    key = await rig.issue()
    settings = Settings(auth=AuthSettings(master_key="sk-test-master"))
    master = MasterKeyAuthenticator(None, PluginContext(settings=settings))  # type: ignore[arg-type]
    await rig.auth.authenticate(bearer(key))

    async def p50(authenticate, headers) -> float:
        samples = []
        for _ in range(2000):
            started = time.perf_counter()
            await authenticate(headers)
            samples.append(time.perf_counter() - started)
        return statistics.median(samples)

    key_p50 = await p50(rig.auth.authenticate, bearer(key))
    master_p50 = await p50(master.authenticate, bearer("sk-test-master"))
    print(f"\nauth p50: api key {key_p50 * 1e6:.1f} µs, master key {master_p50 * 1e6:.1f} µs")
    assert key_p50 - master_p50 < 0.0001, (key_p50, master_p50)
