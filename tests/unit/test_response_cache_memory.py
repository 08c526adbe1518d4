"""The response cache on the embedded default (no Redis: the in-memory backend), and the
conversion of a whole answer between its JSON and stream forms that a hit replays through."""

from __future__ import annotations

import asyncio

from junction.formats.unified import events_response, response_events
from junction.middleware.response_cache.config import ResponseCacheConfig
from junction.middleware.response_cache.stage import ResponseCacheStage
from junction.plugins import PluginContext
from junction.schemas.chat import ChatResponse, Choice, FunctionCall, Message, ToolCall, Usage
from junction.settings import settings_from_mapping
from tests.unit.pipeline_kit import ScriptedProvider, build_gateway, chat_call


class Slow(ScriptedProvider):
    """Answers after a pause; ``down`` fails after it."""

    async def complete(self, request, target):
        await asyncio.sleep(0.05)
        return await super().complete(request, target)


def cache(**config) -> ResponseCacheStage:
    return ResponseCacheStage(ResponseCacheConfig(**config), PluginContext(settings=settings_from_mapping({})))


async def test_memory_cache_hit_miss_and_single_flight():
    provider = Slow()
    stage = cache()
    gateway = build_gateway([stage], provider=provider)
    calls = [chat_call(text="same question") for _ in range(6)]
    replies = await asyncio.gather(*(gateway.complete(call) for call in calls))
    assert provider.log == ["provider:ok"]  # six identical concurrent misses, one upstream call
    assert {reply.choices[0].message.content for reply in replies} == {"ok: same question"}
    assert sorted(call.response_headers["x-junction-cache"] for call in calls) == ["hit"] * 5 + ["miss"]
    assert sum(call.cache_hit for call in calls) == 5
    stream = chat_call(text="same question", stream=True)
    events = [event async for event in await gateway.open_stream(stream)]
    assert stream.cache_hit and stream.outcome.status == 200 and provider.log == ["provider:ok"]
    assert events_response(events).choices[0].message.content == "ok: same question"
    await stage.close()


async def test_memory_cache_releases_the_followers_of_a_failing_leader():
    provider = Slow()
    stage = cache()
    gateway = build_gateway([stage], provider=provider)
    calls = [chat_call("scripted/down", text="doomed") for _ in range(4)]
    results = await asyncio.gather(*(gateway.complete(call) for call in calls), return_exceptions=True)
    assert all(isinstance(result, Exception) for result in results)
    assert provider.log.count("provider:down:failed") == 4  # released, each tried for itself
    await stage.close()


def test_a_whole_answer_survives_the_round_trip_through_stream_events():
    response = ChatResponse(
        id="r-1", created=7, model="claude", system_fingerprint="fp",
        usage=Usage(prompt_tokens=5, completion_tokens=9, total_tokens=14),
        choices=[Choice(index=0, finish_reason="tool_calls", message=Message(
            role="assistant", content="Let me check.", reasoning="first thought",
            tool_calls=[ToolCall(id="t1", function=FunctionCall(name="weather", arguments='{"city":"Paris"}'))],
            provider_metadata={"anthropic": {"thinking_blocks": [
                {"type": "thinking", "thinking": "first thought", "signature": "sig"},
                {"type": "redacted_thinking", "data": "opaque"}]}, "gemini": {"thought_signature": "g"}}))])
    assert events_response(response_events(response)) == response
