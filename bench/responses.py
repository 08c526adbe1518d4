"""What the Responses API costs on top of Chat Completions.

    python bench/responses.py [--calls 20000] [--requests 2000]

1. Translation CPU per request, in process: a multi-turn Responses request with function tools
   (decode, input items → unified messages, the unified request), and the answer back (output
   items, the response object, encoded), JSON and a 10-event stream.
2. Added p50 latency of a stateless ``POST /v1/responses`` (``store: false``) over
   ``POST /v1/chat/completions``: a real ``junction serve`` (one worker) in front of the fixed
   upstream of bench/upstream.py, one connection, the two routes alternated request by request so
   drift of a shared host falls on both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from junction.formats.responses.output import from_chat_response
from junction.formats.responses.request import (
    decode_responses_request,
    items_to_messages,
    normalize_items,
    to_chat_request,
)
from junction.formats.responses.stream import ResponseStreamWriter
from junction.schemas.chat import ChatResponse, Choice, Message, Usage
from junction.schemas.stream import Finish, StreamDone, StreamStart, TextDelta, UsageReport

HERE = Path(__file__).resolve().parent
KEY = "sk-bench-master"
TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
BODY = json.dumps(
    {
        "model": "openai/gpt-4o-mini",
        "instructions": "Be brief.",
        "tools": [TOOL, {**TOOL, "name": "get_time"}],
        "tool_choice": "auto",
        "max_output_tokens": 500,
        "temperature": 0.3,
        "store": False,
        "input": [
            {"role": "user", "content": "Weather and time in Oslo?"},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Two tools."}]},
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": '{"city":"Oslo"}',
            },
            {
                "type": "function_call",
                "call_id": "call_2",
                "name": "get_time",
                "arguments": '{"city":"Oslo"}',
            },
            {"type": "function_call_output", "call_id": "call_1", "output": '{"sky":"sunny","c":21}'},
            {"type": "function_call_output", "call_id": "call_2", "output": '{"time":"14:02"}'},
            {"role": "assistant", "content": "Sunny, 21°C, and 14:02."},
            {"role": "user", "content": [{"type": "input_text", "text": "And tomorrow?"}]},
        ],
    }
).encode()
ANSWER = ChatResponse(
    id="r",
    created=0,
    model="gpt-4o-mini",
    usage=Usage(prompt_tokens=120, completion_tokens=12, total_tokens=132),
    choices=[Choice(index=0, message=Message(role="assistant", content="Rain, 15°C."), finish_reason="stop")],
)
EVENTS = [
    StreamStart(id="r", model="gpt-4o-mini", created=0),
    *[TextDelta(text=f"tok{i} ") for i in range(10)],
    Finish(reason="stop"),
    UsageReport(usage=ANSWER.usage),
    StreamDone(),
]  # type: ignore[arg-type]


def translate_json() -> bytes:
    request = decode_responses_request(BODY)
    items = normalize_items(request)
    to_chat_request(request, items_to_messages(items))
    response, _ = from_chat_response(request, "resp_1", ANSWER)
    import msgspec

    return msgspec.json.encode(response)


def translate_stream() -> None:
    request = decode_responses_request(BODY)
    items = normalize_items(request)
    to_chat_request(request, items_to_messages(items))
    writer = ResponseStreamWriter(request, "resp_1", 0)
    for event in EVENTS:
        writer.write(event)
    writer.close_items()
    writer.completed(writer.result()[0])


def per_call(function: object, calls: int) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(calls):
            function()  # type: ignore[operator]
        best = min(best, (time.perf_counter() - started) / calls * 1e6)
    return best


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_up(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def added_p50(requests: int) -> tuple[float, float]:
    upstream_port, port = free_port(), free_port()
    workdir = Path(tempfile.mkdtemp(prefix="junction-responses-bench-"))
    (workdir / "junction.toml").write_text(
        f'[providers.openai]\napi_key = "sk-upstream"\nbase_url = "http://127.0.0.1:{upstream_port}/v1"\n'
    )
    processes = [
        subprocess.Popen([sys.executable, str(HERE / "upstream.py"), "--port", str(upstream_port)]),
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "junction.cli",
                "serve",
                "--config",
                "junction.toml",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            cwd=workdir,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "JUNCTION_MASTER_KEY": KEY},
        ),
    ]
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url)
        chat = json.dumps({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
        responses = json.dumps({"model": "openai/gpt-4o-mini", "input": "hi", "store": False})
        timings: dict[str, list[float]] = {"chat": [], "responses": []}
        with httpx.Client(
            base_url=url, headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"}
        ) as client:
            for index in range(requests + 200):
                for name, path, body in (
                    ("chat", "/v1/chat/completions", chat),
                    ("responses", "/v1/responses", responses),
                ):
                    started = time.perf_counter()
                    answer = client.post(path, content=body)
                    elapsed = (time.perf_counter() - started) * 1000
                    assert answer.status_code == 200, answer.text
                    if index >= 200:  # warm-up
                        timings[name].append(elapsed)
        return statistics.median(timings["chat"]), statistics.median(timings["responses"])
    finally:
        for process in processes:
            process.terminate()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=2_000)
    args = parser.parse_args()
    for label, function in (("JSON", translate_json), ("10-event SSE", translate_stream)):
        print(f"translation, multi-turn with tools, {label:12} {per_call(function, args.calls):7.1f} µs per request")
    chat, responses = added_p50(args.requests)
    print(
        f"p50 /v1/chat/completions {chat:.3f} ms, /v1/responses (store=false) {responses:.3f} ms, "
        f"added {responses - chat:+.3f} ms"
    )


if __name__ == "__main__":
    main()
