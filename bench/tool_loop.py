"""The tool loop's own cost per round, without the model's or the tool's time.

The loop (``junction.agents.loop.ToolLoop``) runs in process against a model that answers at once
(a canned ``ChatResponse`` asking for N parallel tool calls, then a text answer) and the HTTP
tool with its network call replaced by an instant answer, so what is timed is the loop: reading the calls, decoding arguments,
gathering the tools, recording the transcript, building the next request, summing usage.
JSON and streamed (events of a 3-chunk round) are both measured.

    .venv/bin/python bench/tool_loop.py [--calls 2000] [--rounds 3] [--parallel 2]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator

from junction.agents.http_tools import HttpToolClient, ToolResult
from junction.agents.loop import ToolLoop
from junction.agents.toolbox import HttpServerTool, LoadedTool, Toolbox
from junction.plugins.call import Call
from junction.plugins.protocols import Principal
from junction.schemas.chat import ChatRequest, ChatResponse, Choice, FunctionCall, Message, ToolCall, Usage
from junction.schemas.stream import Finish, StreamDone, StreamStart, TextDelta, ToolCallDelta, UsageReport
from junction.stores.documents.common import utc_now
from junction.stores.documents.tools import HttpTool

PRINCIPAL = Principal(id="bench", kind="master", scopes=frozenset({"chat"}))
USAGE = Usage(prompt_tokens=100, completion_tokens=20, total_tokens=120)


class InstantClient(HttpToolClient):
    """The HTTP tool client minus the network: answers at once."""

    async def call(self, tool: HttpTool, secrets: dict[str, str], arguments: dict) -> ToolResult:
        return ToolResult(content='{"temperature": 21, "sky": "clear"}', latency_ms=0.0)


def toolbox(rounds: int) -> Toolbox:
    now = utc_now()
    tool = HttpTool(id="tool_1", org_id="org_1", name="weather", url="https://tools.example.com/weather",
                    method="POST", timeout_seconds=5, created_at=now, updated_at=now,
                    parameters={"type": "object", "properties": {"city": {"type": "string"}}})
    client = InstantClient(allow_private=False, max_result_chars=100_000)
    return Toolbox({"weather": HttpServerTool(LoadedTool(tool, {"authorization": "x"}), {}, client)}, rounds)


def calls(parallel: int) -> list[ToolCall]:
    return [ToolCall(id=f"call_{i}", function=FunctionCall(name="weather", arguments='{"city": "Paris"}'))
            for i in range(parallel)]


def new_call() -> Call:
    request = ChatRequest(model="openai/gpt-4o-mini", messages=[Message(role="user", content="Weather?")])
    return Call(request_id="r", endpoint="chat.completions", principal=PRINCIPAL, request=request)


async def json_model(call: Call, rounds: int, parallel: int) -> ChatResponse:
    asked = sum(1 for m in call.request.messages if m.role == "assistant")
    wanted = calls(parallel) if asked < rounds else None
    message = Message(role="assistant", content=None if wanted else "Clear.", tool_calls=wanted)
    return ChatResponse(id="c", created=0, model="gpt-4o-mini", usage=USAGE,
                        choices=[Choice(index=0, message=message, finish_reason="tool_calls" if wanted else "stop")])


async def stream_model(call: Call, rounds: int, parallel: int) -> AsyncIterator:
    asked = sum(1 for m in call.request.messages if m.role == "assistant")
    yield StreamStart(id="c", model="gpt-4o-mini", created=0)
    if asked < rounds:
        for i in range(parallel):
            yield ToolCallDelta(index=i, id=f"call_{i}", name="weather", arguments='{"city": ')
            yield ToolCallDelta(index=i, arguments='"Paris"}')
        yield Finish(reason="tool_calls")
    else:
        yield TextDelta(text="Clear.")
        yield Finish(reason="stop")
    yield UsageReport(usage=USAGE)
    yield StreamDone()


async def timed(n: int, run) -> float:
    started = time.perf_counter()
    for _ in range(n):
        await run()
    return (time.perf_counter() - started) / n


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    loop = ToolLoop(keepalive_seconds=10)
    box, no_tools = toolbox(args.rounds), toolbox(0)
    rounds, parallel = args.rounds, args.parallel

    async def json_with(box: Toolbox, model_rounds: int) -> None:
        await loop.handle(new_call(), lambda call: json_model(call, model_rounds, parallel), box)

    async def stream_with(box: Toolbox, model_rounds: int) -> None:
        async for _ in loop.stream(new_call(), lambda call: stream_model(call, model_rounds, parallel), box):
            pass

    for kind, run in (("json", json_with), ("stream", stream_with)):
        await timed(200, lambda run=run: run(box, rounds))  # warm-up
        base = await timed(args.calls, lambda run=run: run(no_tools, 0))
        looped = await timed(args.calls, lambda run=run: run(box, rounds))
        per_round = (looped - base) / rounds
        print(f"{kind}: one model call {base * 1e6:.1f} µs; {rounds} tool rounds of {parallel} parallel calls "
              f"{looped * 1e6:.1f} µs → {per_round * 1e6:.1f} µs per round (loop overhead, fake model/tool "
              f"time included once per round)")


if __name__ == "__main__":
    asyncio.run(main())
