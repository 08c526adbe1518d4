"""HTTP tools (and the bridges' agent fields), on every document store backend (conftest.BACKENDS)."""

from __future__ import annotations

import asyncio

import pytest

from junction.errors import Conflict, InvalidRequest, NotFound
from junction.stores.documents.bridges import BridgePatch, NewBridge
from junction.stores.documents.protocol import DocumentStore
from junction.stores.documents.tools import EnvRef, NewTool, ToolPatch, ToolView


def weather(**fields: object) -> NewTool:
    values: dict[str, object] = {
        "name": "weather",
        "url": "https://tools.example.com/weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "tenant": {"type": "string"}},
                       "required": ["city"]},
        "headers": {"authorization": "Bearer tool-secret", "x-env": EnvRef("JUNCTION_SECRET_WEATHER")},
        "bound": ["tenant"],
    }
    values.update(fields)
    return NewTool(**values)  # type: ignore[arg-type]


async def test_tool_crud_and_sealed_headers(store: DocumentStore, backend: object) -> None:
    org = await store.orgs.create("Tools")
    tool = await store.tools.create(org.id, weather())
    assert tool.secret_headers == ["authorization"] and tool.env_headers == {"x-env": "JUNCTION_SECRET_WEATHER"}
    assert tool.ciphertext is not None and b"tool-secret" not in tool.ciphertext
    fetched = await store.tools.get(org.id, tool.id)
    assert fetched == tool
    assert store.tools.reveal(fetched) == {"authorization": "Bearer tool-secret"}
    view = ToolView.of(fetched)
    assert "tool-secret" not in repr(view) and view.headers["authorization"].stored
    assert [t.id for t in await store.tools.list(org.id)] == [tool.id]
    assert [t.id for t in await store.tools.many(org.id, [tool.id, "tool_missing"])] == [tool.id]

    patched = await store.tools.update(org.id, tool.id, ToolPatch(timeout_seconds=2.5, description=None))
    assert patched.timeout_seconds == 2.5 and patched.description is None
    assert store.tools.reveal(patched) == {"authorization": "Bearer tool-secret"}  # headers untouched
    rekeyed = await store.tools.update(org.id, tool.id, ToolPatch(headers={"x-key": "k2"}))
    assert store.tools.reveal(await store.tools.get(org.id, tool.id)) == {"x-key": "k2"}
    assert rekeyed.env_headers == {}

    with pytest.raises(Conflict):
        await store.tools.create(org.id, weather())
    await store.tools.delete(org.id, tool.id)
    with pytest.raises(NotFound):
        await store.tools.get(org.id, tool.id)


async def test_tools_are_org_scoped(store: DocumentStore) -> None:
    mine, theirs = await store.orgs.create("Mine"), await store.orgs.create("Theirs")
    tool = await store.tools.create(mine.id, weather())
    with pytest.raises(NotFound):
        await store.tools.get(theirs.id, tool.id)
    with pytest.raises(NotFound):
        await store.tools.update(theirs.id, tool.id, ToolPatch(timeout_seconds=1))
    with pytest.raises(NotFound):
        await store.tools.delete(theirs.id, tool.id)
    assert await store.tools.many(theirs.id, [tool.id]) == []
    await store.orgs.delete(mine.id)  # the org's tools go with it
    assert await store.tools.many(mine.id, [tool.id]) == []


@pytest.mark.parametrize(("fields", "param"), [
    ({"name": "no spaces"}, "name"),
    ({"parameters": {"type": "string"}}, "parameters"),
    ({"bound": ["missing"]}, "bound"),
    ({"headers": {"x": EnvRef("JUNCTION_MASTER_KEY")}}, "headers.x"),
    ({"url": "ftp://example.com/"}, "url"),
])
async def test_bad_tools_are_refused_naming_the_field(store: DocumentStore, fields: dict, param: str) -> None:
    org = await store.orgs.create("Bad")
    with pytest.raises(InvalidRequest) as refused:
        await store.tools.create(org.id, weather(**fields))
    assert refused.value.param == param


async def test_bridge_agent_fields_round_trip(store: DocumentStore) -> None:
    org = await store.orgs.create("Agents")
    bridge = await store.bridges.create(org.id, NewBridge(slug="agent", name="Agent", model="openai/gpt-4o-mini"))
    assert bridge.server_tools is None and bridge.max_tool_rounds is None
    bridge = await store.bridges.update(org.id, bridge.id, BridgePatch(server_tools=["tool_a"], max_tool_rounds=5))
    assert bridge.server_tools == ["tool_a"] and bridge.max_tool_rounds == 5
    await store.bridges.create_version(org.id, bridge.id)
    await store.bridges.publish(org.id, bridge.id, 1)
    resolved = await store.bridges.resolve(org.id, "agent")
    assert resolved.config.server_tools == ["tool_a"] and resolved.config.max_tool_rounds == 5


async def test_chatbot_fields_and_an_end_users_latest_thread(store: DocumentStore) -> None:
    from junction.stores.documents.bridges import ChatbotSettings

    org = await store.orgs.create("Bots")
    bot = await store.bridges.create(org.id, NewBridge(
        slug="bot", name="Bot", model="openai/gpt-4o-mini", type="chatbot",
        chatbot=ChatbotSettings(allowed_origins=["https://shop.example"], rpm_per_end_user=5)))
    assert bot.type == "chatbot" and bot.chatbot.allowed_origins == ["https://shop.example"]
    assert (await store.bridges.get(org.id, "bot")).chatbot.rpm_per_end_user == 5
    assert await store.threads.latest_owned(org.id, bot.id, "chatbot:u1") is None
    first = await store.threads.create(org.id, bot.id, "chatbot:u1")
    await store.threads.create(org.id, bot.id, "chatbot:u2")
    await asyncio.sleep(0.01)  # created_at is in whole milliseconds
    second = await store.threads.create(org.id, bot.id, "chatbot:u1")
    latest = await store.threads.latest_owned(org.id, bot.id, "chatbot:u1")
    assert latest is not None and latest.id == second.id != first.id
