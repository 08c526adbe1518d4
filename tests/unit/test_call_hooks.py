"""``Call.when_answered`` / ``Call.when_ended``: work at a call's answer and at its end, without a
layer around the call (what the metrics, rate-limit and budget stages use). Each hook runs once,
at the moment its docstring names, whatever way the call went, and sees the final outcome."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from junction.errors import JunctionError, RateLimited
from junction.plugins import Call, Stage
from junction.schemas.stream import StreamStart
from tests.unit.pipeline_kit import ScriptedProvider, build_gateway, chat_call, embeddings_call


class Hooked(Stage):
    """Registers both hooks from ``enter``; logs when each runs and what the call looked like then."""

    def __init__(self, log: list[str], *, refuse: bool = False) -> None:
        self.log, self.refuse = log, refuse

    async def enter(self, call: Call) -> None:
        call.when_answered(self.answered)
        call.when_ended(self.ended)
        if self.refuse:
            raise RateLimited("no more today", headers={"Retry-After": "7"})

    def answered(self, call: Call, error: JunctionError | None) -> None:
        (call.response_headers if error is None else error.headers)["x-seen"] = "yes"
        self.log.append(f"answered:{None if error is None else error.status}")

    def ended(self, call: Call) -> None:
        self.log.append(f"ended:{call.outcome.status if call.outcome else None}")


class Wrapping(Stage):
    """A stream layer, so the gateway relays the stream itself (the other path)."""

    async def stream(self, call, next):
        async for event in next(call):
            yield event


@pytest.fixture
def log() -> list[str]:
    return []


async def test_a_json_answer_runs_the_answer_hook_then_the_end_hook(log):
    gateway = build_gateway([Hooked(log)], provider=ScriptedProvider(log))
    call = chat_call()
    reply = await gateway.complete(call)
    assert reply.choices[0].message.text() == "ok: hello world"
    assert log == ["provider:ok", "answered:None", "ended:200"]
    assert call.response_headers["x-seen"] == "yes"  # added before the ingress sends the headers


async def test_an_embedding_runs_both_hooks_too(log):
    gateway = build_gateway([Hooked(log)], provider=ScriptedProvider(log))
    await gateway.embed(embeddings_call())
    assert log == ["provider:ok", "answered:None", "ended:200"]


async def test_a_refused_call_hands_its_error_to_the_answer_hook_and_ends_with_its_status(log):
    gateway = build_gateway([Hooked(log, refuse=True)], provider=ScriptedProvider(log))
    with pytest.raises(RateLimited) as caught:
        await gateway.complete(chat_call())
    assert log == ["answered:429", "ended:429"]  # the provider was never called
    assert caught.value.headers == {"Retry-After": "7", "x-seen": "yes"}


async def test_an_upstream_failure_ends_the_call_with_the_upstreams_status(log):
    gateway = build_gateway([Hooked(log)], provider=ScriptedProvider(log))
    with pytest.raises(JunctionError):
        await gateway.complete(chat_call(model="scripted/down"))
    assert log == ["provider:down:failed", "answered:502", "ended:502"]


@pytest.mark.parametrize("layers", [[], [Wrapping()]], ids=["attempt-loop-only", "with-a-stream-layer"])
async def test_a_stream_is_answered_at_its_first_event_and_ends_when_it_ends(log, layers):
    gateway = build_gateway([Hooked(log), *layers], provider=ScriptedProvider(log))
    call = chat_call(stream=True)
    events = await gateway.open_stream(call)
    assert log == ["provider:ok", "answered:None"]  # the headers (first event) are about to go
    assert call.response_headers["x-seen"] == "yes"
    assert isinstance(await anext(events), StreamStart)
    rest = [event async for event in events]
    assert rest and log[-1] == "ended:200" and log.count("ended:200") == 1


@pytest.mark.parametrize("layers", [[], [Wrapping()]], ids=["attempt-loop-only", "with-a-stream-layer"])
async def test_a_client_leaving_mid_stream_ends_the_call_once_as_abandoned(log, layers):
    provider = ScriptedProvider(log)
    gateway = build_gateway([Hooked(log), *layers], provider=provider)
    events = await gateway.open_stream(chat_call(text="many words nobody reads", stream=True))
    await anext(events)
    assert not any(line.startswith("ended") for line in log)  # not before the stream is over
    await events.aclose()  # what the ingress does when the client disconnects
    assert provider.closed_streams == 1
    assert [line for line in log if line.startswith("ended")] == ["ended:499"]


async def test_a_stream_refused_before_its_first_event_runs_both_hooks_with_the_error(log):
    gateway = build_gateway([Hooked(log, refuse=True), Wrapping()], provider=ScriptedProvider(log))
    with pytest.raises(RateLimited) as caught:
        await gateway.open_stream(chat_call(stream=True))
    assert log == ["answered:429", "ended:429"]
    assert caught.value.headers["x-seen"] == "yes"


async def test_a_failing_hook_is_logged_and_neither_fails_the_call_nor_skips_the_others(log, caplog):
    class Broken(Stage):
        async def enter(self, call: Call) -> None:
            call.when_answered(lambda call, error: 1 / 0)
            call.when_ended(lambda call: {}["missing"])

    gateway = build_gateway([Broken(), Hooked(log)], provider=ScriptedProvider(log))
    with caplog.at_level(logging.ERROR, logger="junction.pipeline"):
        reply = await gateway.complete(chat_call())
    assert reply.choices[0].message.text() == "ok: hello world"
    assert log == ["provider:ok", "answered:None", "ended:200"]
    assert [record.exc_info[0] for record in caplog.records] == [ZeroDivisionError, KeyError]


@pytest.mark.parametrize("layers", [[], [Wrapping()]], ids=["attempt-loop-only", "with-a-stream-layer"])
async def test_a_stream_never_iterated_still_ends_when_closed_or_dropped(log, layers):
    """An ingress whose client left before the headers went may close the stream without reading
    it, or drop it: the call still ends (its usage row, its settles), once."""
    provider = ScriptedProvider(log)
    gateway = build_gateway([Hooked(log), *layers], provider=provider)
    events = await gateway.open_stream(chat_call(stream=True))
    await events.aclose()
    assert [line for line in log if line.startswith("ended")] == ["ended:499"]
    assert provider.closed_streams == 1  # and the upstream's stream is closed, not left to the collector

    log.clear()
    events = await gateway.open_stream(chat_call(stream=True))
    del events
    gc.collect()
    for _ in range(5):  # the loop's finalizer closes it on a later turn
        await asyncio.sleep(0)
    assert [line for line in log if line.startswith("ended")] == ["ended:499"]
    assert provider.closed_streams == 2


async def test_a_caller_that_ends_the_call_runs_the_end_hooks_itself_unless_the_call_failed(log):
    """``Gateway.complete(call, caller_ends=True)``: the reply comes back with the end hooks not
    yet run (the lean ingress runs them once the answer went out); a call that failed ends in the
    gateway either way, as its caller gets no reply to end it after."""
    gateway = build_gateway([Hooked(log)], provider=ScriptedProvider(log))
    call = chat_call()
    await gateway.complete(call, caller_ends=True)
    assert log == ["provider:ok", "answered:None"]
    call.run_ended()
    call.run_ended()  # once
    assert log == ["provider:ok", "answered:None", "ended:200"]

    log.clear()
    with pytest.raises(JunctionError):
        await gateway.complete(chat_call(model="scripted/down"), caller_ends=True)
    assert log[-2:] == ["answered:502", "ended:502"]


async def test_the_lean_ingress_ends_a_call_after_its_answer_went_out(log):
    """The lean ``POST /v1/chat/completions`` sends the answer, then runs the call's end hooks
    (settles, a cache store, the metrics' record): they are not between the reply and its client.
    They run when the send fails too."""
    from junction.ingress.lean import LeanChat
    from junction.settings import settings_from_mapping
    from tests.unit.pipeline_kit import USER

    gateway = build_gateway([Hooked(log)], provider=ScriptedProvider(log))

    async def authenticate(headers):
        return USER

    gateway.authenticate = authenticate  # type: ignore[method-assign]
    lean = LeanChat(gateway, settings_from_mapping({"auth": {"master_key": "unused"}}), lambda: 1)
    body = b'{"model": "scripted/ok", "messages": [{"role": "user", "content": "hello world"}]}'
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]}

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        log.append(message["type"])

    assert await lean.handle(scope, receive, send)
    assert log == ["provider:ok", "answered:None", "http.response.start", "http.response.body", "ended:200"]

    log.clear()

    async def broken(message):
        log.append(message["type"])
        raise OSError("the client went away")

    with pytest.raises(OSError):
        await lean.handle(scope, receive, broken)
    assert log == ["provider:ok", "answered:None", "http.response.start", "ended:200"]
