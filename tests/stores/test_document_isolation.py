"""Org A's records are invisible and untouchable from org B, on every backend.

Each repository call is made with org B's id and org A's record ids (and slugs): reads say
NotFound or return nothing, writes change nothing — checked by reading A's records afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from junction.errors import NotFound
from junction.schemas.chat import Message
from junction.stores.documents.bridges import Bridge, BridgePatch, NewBridge
from junction.stores.documents.protocol import (
    ApiKey,
    DocumentStore,
    IssuedApiKey,
    NewApiKey,
    Org,
    ProviderSecret,
    Thread,
)


@dataclass
class OrgA:
    org: Org
    key: IssuedApiKey
    bridge: Bridge
    thread: Thread


@pytest.fixture
async def two_orgs(store: DocumentStore) -> tuple[OrgA, Org]:
    org_a, org_b = await store.orgs.create("A"), await store.orgs.create("B")
    key = await store.keys.create(org_a.id, NewApiKey(name="a-key"))
    await store.credentials.put(org_a.id, "openai", ProviderSecret(api_key="sk-org-a"))
    bridge = await store.bridges.create(
        org_a.id, NewBridge(slug="shared-name", name="A's", model="openai/gpt-4o")
    )
    await store.bridges.create_version(org_a.id, bridge.id)
    thread = await store.threads.create(org_a.id, bridge.id)
    await store.threads.append(org_a.id, thread.id, [Message(role="user", content="A's secret question")])
    return OrgA(org_a, key, bridge, thread), org_b


def attempts(a: OrgA, b: str, store: DocumentStore) -> dict[str, Callable[[], Awaitable[Any]]]:
    """Every confined repository call, aimed at org A's records while confined to org B."""
    return {
        "keys.get": lambda: store.keys.get(b, a.key.record.id),
        "keys.revoke": lambda: store.keys.revoke(b, a.key.record.id),
        "keys.delete": lambda: store.keys.delete(b, a.key.record.id),
        "credentials.get": lambda: store.credentials.get(b, "openai"),
        "credentials.delete": lambda: store.credentials.delete(b, "openai"),
        "bridges.get(id)": lambda: store.bridges.get(b, a.bridge.id),
        "bridges.get(slug)": lambda: store.bridges.get(b, a.bridge.slug),
        "bridges.update": lambda: store.bridges.update(b, a.bridge.id, BridgePatch(prompt="pwned")),
        "bridges.delete": lambda: store.bridges.delete(b, a.bridge.id),
        "bridges.create_version": lambda: store.bridges.create_version(b, a.bridge.id),
        "bridges.get_version": lambda: store.bridges.get_version(b, a.bridge.id, 1),
        "bridges.list_versions": lambda: store.bridges.list_versions(b, a.bridge.id),
        "bridges.publish": lambda: store.bridges.publish(b, a.bridge.id, 1),
        "bridges.resolve": lambda: store.bridges.resolve(b, a.bridge.slug),
        "threads.create(on A's bridge)": lambda: store.threads.create(b, a.bridge.id),
        "threads.get": lambda: store.threads.get(b, a.thread.id),
        "threads.append": lambda: store.threads.append(b, a.thread.id, [Message(role="user", content="x")]),
        "threads.delete": lambda: store.threads.delete(b, a.thread.id),
        "threads.list(A's bridge)": lambda: store.threads.list(b, bridge_id=a.bridge.id),
    }


async def test_every_confined_call_refuses_another_orgs_record(
    store: DocumentStore, two_orgs: tuple[OrgA, Org]
) -> None:
    a, b = two_orgs
    allowed_through = []
    for name, call in attempts(a, b.id, store).items():
        try:
            await call()
        except NotFound:
            continue
        allowed_through.append(name)
    assert allowed_through == []


async def test_listings_and_reveal_show_only_the_callers_org(
    store: DocumentStore, two_orgs: tuple[OrgA, Org]
) -> None:
    a, b = two_orgs
    assert await store.keys.list(b.id) == []
    assert await store.credentials.list(b.id) == []
    assert await store.credentials.reveal(b.id, "openai") is None
    assert await store.bridges.list(b.id) == []
    assert await store.threads.list(b.id) == []
    assert await store.credentials.reencrypt(b.id) == 0


async def test_org_a_is_untouched_after_org_b_tried_everything(
    store: DocumentStore, two_orgs: tuple[OrgA, Org]
) -> None:
    a, b = two_orgs
    for call in attempts(a, b.id, store).values():
        with contextlib.suppress(NotFound):  # expected; what matters is A's state below
            await call()

    key: ApiKey | None = await store.keys.authenticate(a.key.key)
    assert key is not None and key.revoked_at is None
    assert await store.credentials.reveal(a.org.id, "openai") == ProviderSecret(api_key="sk-org-a")
    bridge = await store.bridges.get(a.org.id, a.bridge.id)
    assert (bridge.prompt, bridge.latest_version, bridge.published_version) == ("", 1, None)
    thread = await store.threads.get(a.org.id, a.thread.id)
    assert [message.text() for message in thread.messages] == ["A's secret question"]


async def test_same_slug_in_two_orgs_resolves_to_each_orgs_own_bridge(
    store: DocumentStore, two_orgs: tuple[OrgA, Org]
) -> None:
    a, b = two_orgs
    mine = await store.bridges.create(b.id, NewBridge(slug="shared-name", name="B's", model="groq/llama"))
    assert (await store.bridges.resolve(b.id, "shared-name")).bridge.id == mine.id
    assert (await store.bridges.resolve(a.org.id, "shared-name")).bridge.id == a.bridge.id
