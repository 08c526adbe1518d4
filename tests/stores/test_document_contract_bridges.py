"""The document store contract for bridges (with versions) and threads, on every backend."""

from __future__ import annotations

import asyncio

import pytest

from junction.errors import Conflict, InvalidRequest, NotFound
from junction.schemas.chat import FunctionCall, FunctionDefinition, Message, ResponseFormat, Tool, ToolCall
from junction.stores.documents.bridges import BridgePatch, BridgeVariable, NewBridge
from junction.stores.documents.protocol import DocumentStore


async def next_millisecond() -> None:
    """Stored times have millisecond precision; listings order by them, so step past one."""
    await asyncio.sleep(0.003)


WEATHER_TOOL = Tool(function=FunctionDefinition(name="weather", parameters={"type": "object"}))


def support_bridge(slug: str = "support") -> NewBridge:
    return NewBridge(
        slug=slug,
        name="Support",
        model="openai/gpt-4o-mini",
        prompt="You help {{customer}}.",
        variables=[
            BridgeVariable(name="customer", required=True),
            BridgeVariable(name="tone", default="kind"),
        ],
        params={"temperature": 0.2, "max_tokens": 300},
        response_format=ResponseFormat(type="json_object"),
        tools=[WEATHER_TOOL],
        fallback_model="anthropic/claude-haiku-4-5",
    )


# --- bridges -------------------------------------------------------------------------------------


async def test_bridge_crud_by_id_and_slug(store: DocumentStore) -> None:
    org = await store.orgs.create("bridges")
    bridge = await store.bridges.create(org.id, support_bridge())
    assert bridge.id.startswith("br_") and bridge.status == "active"
    assert (bridge.published_version, bridge.latest_version) == (None, 0)

    assert await store.bridges.get(org.id, bridge.id) == bridge
    assert await store.bridges.get(org.id, "support") == bridge
    assert bridge.draft().tools == [WEATHER_TOOL] and bridge.draft().params["max_tokens"] == 300

    await next_millisecond()
    other = await store.bridges.create(org.id, support_bridge("sales"))
    assert [item.slug for item in await store.bridges.list(org.id)] == ["support", "sales"]

    patched = await store.bridges.update(
        org.id, "support", BridgePatch(prompt="Be brief.", fallback_model=None, status="paused")
    )
    assert (patched.prompt, patched.fallback_model, patched.status) == ("Be brief.", None, "paused")
    assert patched.model == bridge.model and patched.variables == bridge.variables  # absent = unchanged
    assert await store.bridges.get(org.id, bridge.id) == patched

    await store.bridges.delete(org.id, bridge.id)
    with pytest.raises(NotFound):
        await store.bridges.get(org.id, "support")
    with pytest.raises(NotFound):
        await store.bridges.delete(org.id, bridge.id)
    assert [item.id for item in await store.bridges.list(org.id)] == [other.id]
    with pytest.raises(NotFound):
        await store.bridges.create("org_missing", support_bridge())


async def test_slug_is_unique_per_org_only(store: DocumentStore) -> None:
    first, second = await store.orgs.create("one"), await store.orgs.create("two")
    await store.bridges.create(first.id, support_bridge())
    with pytest.raises(Conflict) as raised:
        await store.bridges.create(first.id, support_bridge())
    assert raised.value.param == "slug"
    await store.bridges.create(second.id, support_bridge())  # another org may reuse it

    sales = await store.bridges.create(first.id, support_bridge("sales"))
    with pytest.raises(Conflict):
        await store.bridges.update(first.id, sales.id, BridgePatch(slug="support"))
    assert (await store.bridges.update(first.id, sales.id, BridgePatch(slug="sales-2"))).slug == "sales-2"


@pytest.mark.parametrize("slug", ["", "Upper", "with space", "-dash", "dash-", "under_score", "x" * 65])
async def test_malformed_slug_is_refused(store: DocumentStore, slug: str) -> None:
    org = await store.orgs.create("slugs")
    with pytest.raises(InvalidRequest) as raised:
        await store.bridges.create(org.id, support_bridge(slug))
    assert raised.value.param == "slug"


async def test_versions_snapshot_the_draft_and_publish_rolls_back(store: DocumentStore) -> None:
    org = await store.orgs.create("versions")
    bridge = await store.bridges.create(org.id, support_bridge())

    unpublished = await store.bridges.resolve(org.id, "support")
    assert unpublished.version is None and unpublished.config == bridge.draft()

    first = await store.bridges.create_version(org.id, bridge.id)
    assert first.version == 1 and first.config == bridge.draft()
    await store.bridges.update(
        org.id, bridge.id, BridgePatch(prompt="Version two.", params={"temperature": 1.0})
    )
    second = await store.bridges.create_version(org.id, "support")
    assert second.version == 2 and second.config.prompt == "Version two."
    assert (await store.bridges.get_version(org.id, bridge.id, 1)).config.prompt == "You help {{customer}}."

    await store.bridges.update(org.id, bridge.id, BridgePatch(prompt="Draft three, unpublished."))
    published = await store.bridges.publish(org.id, bridge.id, 2)
    assert (published.published_version, published.latest_version) == (2, 2)
    resolved = await store.bridges.resolve(org.id, "support")
    assert resolved.version == 2 and resolved.config.prompt == "Version two."
    assert resolved.bridge.prompt == "Draft three, unpublished."

    await store.bridges.publish(org.id, "support", 1)  # roll back
    rolled_back = await store.bridges.resolve(org.id, bridge.id)
    assert rolled_back.version == 1 and rolled_back.config == first.config

    assert [item.version for item in await store.bridges.list_versions(org.id, bridge.id)] == [1, 2]
    with pytest.raises(NotFound):
        await store.bridges.publish(org.id, bridge.id, 7)
    with pytest.raises(NotFound):
        await store.bridges.get_version(org.id, bridge.id, 7)
    assert (await store.bridges.get(org.id, bridge.id)).published_version == 1


async def test_concurrent_snapshots_get_distinct_version_numbers(store: DocumentStore) -> None:
    org = await store.orgs.create("race")
    bridge = await store.bridges.create(org.id, support_bridge())
    versions = await asyncio.gather(*(store.bridges.create_version(org.id, bridge.id) for _ in range(6)))
    assert sorted(item.version for item in versions) == [1, 2, 3, 4, 5, 6]
    assert (await store.bridges.get(org.id, bridge.id)).latest_version == 6


# --- threads -------------------------------------------------------------------------------------


def turn(number: int) -> list[Message]:
    return [
        Message(role="user", content=f"question {number}"),
        Message(role="assistant", content=f"answer {number}"),
    ]


async def test_thread_append_and_last_n(store: DocumentStore) -> None:
    org = await store.orgs.create("threads")
    bridge = await store.bridges.create(org.id, support_bridge())
    thread = await store.threads.create(org.id, "support")
    assert thread.id.startswith("th_") and thread.bridge_id == bridge.id and thread.message_count == 0

    for number in range(1, 4):
        total = await store.threads.append(org.id, thread.id, turn(number))
    assert total == 6

    everything = await store.threads.get(org.id, thread.id)
    assert [message.text() for message in everything.messages] == [
        "question 1",
        "answer 1",
        "question 2",
        "answer 2",
        "question 3",
        "answer 3",
    ]
    assert everything.message_count == 6 and everything.updated_at >= thread.created_at

    last_three = await store.threads.get(org.id, thread.id, last=3)
    assert [message.text() for message in last_three.messages] == ["answer 2", "question 3", "answer 3"]
    assert last_three.message_count == 6
    assert (await store.threads.get(org.id, thread.id, last=0)).messages == []
    assert len((await store.threads.get(org.id, thread.id, last=50)).messages) == 6
    with pytest.raises(InvalidRequest):
        await store.threads.get(org.id, thread.id, last=-1)


async def test_thread_messages_keep_tool_calls_and_provider_metadata(store: DocumentStore) -> None:
    org = await store.orgs.create("rich")
    thread = await store.threads.create(org.id)
    messages = [
        Message(
            role="assistant",
            content=None,
            provider_metadata={"signature": "opaque=="},
            tool_calls=[
                ToolCall(id="call_1", function=FunctionCall(name="weather", arguments='{"city":"Oslo"}'))
            ],
        ),
        Message(role="tool", tool_call_id="call_1", content="-3C"),
    ]
    await store.threads.append(org.id, thread.id, messages)
    assert (await store.threads.get(org.id, thread.id)).messages == messages


async def test_concurrent_appends_lose_nothing(store: DocumentStore) -> None:
    org = await store.orgs.create("busy")
    thread = await store.threads.create(org.id)
    totals = await asyncio.gather(
        *(
            store.threads.append(org.id, thread.id, [Message(role="user", content=str(number))])
            for number in range(10)
        )
    )
    assert sorted(totals) == list(range(1, 11))
    stored = await store.threads.get(org.id, thread.id)
    assert sorted(message.text() for message in stored.messages) == sorted(
        str(number) for number in range(10)
    )


async def test_thread_listing_and_deletion(store: DocumentStore) -> None:
    org = await store.orgs.create("listing")
    bridge = await store.bridges.create(org.id, support_bridge())
    older = await store.threads.create(org.id, bridge.id)
    await next_millisecond()
    loose = await store.threads.create(org.id)
    await next_millisecond()
    await store.threads.append(org.id, older.id, turn(1))  # now the most recently updated

    listed = await store.threads.list(org.id)
    assert [item.id for item in listed] == [older.id, loose.id]
    assert listed[0].messages == [] and listed[0].message_count == 2
    assert [item.id for item in await store.threads.list(org.id, bridge_id="support")] == [older.id]
    assert len(await store.threads.list(org.id, limit=1)) == 1

    await store.threads.delete(org.id, loose.id)
    with pytest.raises(NotFound):
        await store.threads.get(org.id, loose.id)
    with pytest.raises(NotFound):
        await store.threads.append(org.id, loose.id, turn(2))
    with pytest.raises(NotFound):
        await store.threads.delete(org.id, loose.id)

    await store.bridges.delete(org.id, bridge.id)  # a bridge takes its threads with it
    with pytest.raises(NotFound):
        await store.threads.get(org.id, older.id)
    with pytest.raises(NotFound):
        await store.threads.create(org.id, bridge.id)


async def test_a_nul_character_in_a_message_is_stored_as_a_replacement_character(store: DocumentStore) -> None:
    # PostgreSQL's JSONB cannot hold U+0000; a model reply containing one must still be kept.
    org = await store.orgs.create("Nul")
    thread = await store.threads.create(org.id)
    await store.threads.append(org.id, thread.id, [Message(role="assistant", content="a\x00b")])
    kept = await store.threads.get(org.id, thread.id)
    assert kept.messages[-1].content == "a\ufffdb"


async def test_a_thread_records_who_created_it(store: DocumentStore) -> None:
    org = await store.orgs.create("Owners")
    bridge = await store.bridges.create(org.id, support_bridge())
    owned = await store.threads.create(org.id, bridge.id, owner="key:k_1")
    unowned = await store.threads.create(org.id)
    assert owned.owner == "key:k_1" and unowned.owner is None
    assert (await store.threads.get(org.id, owned.id)).owner == "key:k_1"
    assert (await store.threads.get(org.id, unowned.id, last=0)).owner is None
    assert {item.id: item.owner for item in await store.threads.list(org.id)} == {
        owned.id: "key:k_1",
        unowned.id: None,
    }


async def test_a_threads_org_is_found_by_its_id_alone(store: DocumentStore) -> None:
    """The master key's lookup of a thread by id (#16): one read by the unique id, any backend."""
    first, second = await store.orgs.create("one"), await store.orgs.create("two")
    thread = await store.threads.create(second.id)
    assert await store.threads.org_of(thread.id) == second.id
    assert await store.threads.org_of("th_" + "0" * 24) is None
    await store.threads.delete(second.id, thread.id)
    assert await store.threads.org_of(thread.id) is None
    assert first.id != second.id
