"""The limits orgs and bridges carry (``rpm``, ``tpm``, ``budget_usd``, ``budget_period``), on
every document backend: absent by default, set, read back, cleared with ``None``."""

from __future__ import annotations

from junction.stores.documents.bridges import BridgePatch, NewBridge
from junction.stores.documents.protocol import DocumentStore, OrgPatch


async def test_org_limits_are_set_read_back_and_cleared(store: DocumentStore) -> None:
    org = await store.orgs.create("Limited")
    assert (org.rpm, org.tpm, org.budget_usd, org.budget_period) == (None, None, None, None)

    limited = await store.orgs.update(org.id, OrgPatch(rpm=60, tpm=90_000, budget_usd=12.5, budget_period="day"))
    assert (limited.rpm, limited.tpm, limited.budget_usd, limited.budget_period) == (60, 90_000, 12.5, "day")
    assert limited.name == "Limited"
    assert await store.orgs.get(org.id) == limited
    assert [o for o in await store.orgs.list() if o.id == org.id] == [limited]

    renamed = await store.orgs.update(org.id, OrgPatch(name="Renamed"))
    assert (renamed.rpm, renamed.budget_usd) == (60, 12.5)  # a patch leaves what it does not name
    cleared = await store.orgs.update(org.id, OrgPatch(rpm=None, budget_usd=None, budget_period=None))
    assert (cleared.rpm, cleared.tpm, cleared.budget_usd, cleared.budget_period) == (None, 90_000, None, None)
    assert await store.orgs.get(org.id) == cleared


async def test_bridge_limits_are_set_read_back_and_cleared(store: DocumentStore) -> None:
    org = await store.orgs.create("Bridged")
    created = await store.bridges.create(org.id, NewBridge(slug="limited", name="Limited", model="openai/gpt-4o",
                                                           rpm=10, budget_usd=3.0, budget_period="month"))
    assert (created.rpm, created.tpm, created.budget_usd, created.budget_period) == (10, None, 3.0, "month")
    assert await store.bridges.get(org.id, created.id) == created
    assert (await store.bridges.resolve(org.id, "limited")).bridge.rpm == 10

    changed = await store.bridges.update(org.id, created.id, BridgePatch(tpm=5000, rpm=None))
    assert (changed.rpm, changed.tpm, changed.budget_usd) == (None, 5000, 3.0)
    assert await store.bridges.get(org.id, created.id) == changed
