"""Stages wrap every call like an onion: ``enter`` before, ``handle``/``stream`` around, ``attempt``
around each upstream attempt; every stage's ``finally`` runs exactly once, however the call ends,
and sees the call's outcome."""

from __future__ import annotations

from collections import Counter

import pytest

from junction.errors import AuthenticationFailed, PermissionDenied, RateLimited, UpstreamError
from junction.pipeline import AUTH_DISABLED_PRINCIPAL
from junction.plugins import Call, Principal, Stage
from junction.plugins.call import CallState
from junction.schemas.chat import ChatResponse, Choice, Message
from junction.schemas.stream import StreamDone, StreamStart, TextDelta
from tests.unit.pipeline_kit import USER, ScriptedProvider, build_gateway, chat_call, embeddings_call


class Wrapper(Stage):
    """Logs its before/after for JSON answers and streams; counts each ``finally``."""

    def __init__(self, name: str, log: list[str], finallies: Counter) -> None:
        self.name, self.log, self.finallies = name, log, finallies

    async def handle(self, call, next):
        self.log.append(f"{self.name}:before")
        try:
            reply = await next(call)
            self.log.append(f"{self.name}:after")
            return reply
        finally:
            self.finallies[self.name] += 1
            self.log.append(f"{self.name}:finally:{call.outcome.status if call.outcome else None}")

    async def stream(self, call, next):
        self.log.append(f"{self.name}:before")
        try:
            async for event in next(call):
                yield event
        finally:
            self.finallies[self.name] += 1
            self.log.append(f"{self.name}:finally:{call.outcome.status if call.outcome else None}")


class Refuser(Stage):
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def enter(self, call):
        self.log.append("refuser:enter")
        raise RateLimited("no more today", headers={"Retry-After": "7"})


class AttemptTimer(Stage):
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def attempt(self, call, deployment, next):
        self.log.append(f"attempt:{deployment.label}")
        return await next(call, deployment)


@pytest.fixture
def log() -> list[str]:
    return []


async def test_json_calls_pass_every_stage_in_order_and_back(log):
    finallies: Counter = Counter()
    provider = ScriptedProvider(log)
    gateway = build_gateway([Wrapper("outer", log, finallies), Wrapper("inner", log, finallies),
                             AttemptTimer(log)], provider=provider)
    call = chat_call()
    reply = await gateway.complete(call)
    assert reply.choices[0].message.content == "ok: hello world"
    assert log == ["outer:before", "inner:before", "attempt:scripted/ok", "provider:ok",
                   "inner:after", "inner:finally:200", "outer:after", "outer:finally:200"]
    assert finallies == {"outer": 1, "inner": 1}
    assert call.outcome.status == 200 and call.outcome.usage.total_tokens == 6
    assert call.response_headers == {"x-junction-deployment": "scripted/ok"}


async def test_a_refusal_stops_the_inner_layers_and_the_outer_finally_sees_it(log):
    finallies: Counter = Counter()
    provider = ScriptedProvider(log)
    gateway = build_gateway([Wrapper("outer", log, finallies), Refuser(log), Wrapper("inner", log, finallies)],
                            provider=provider)
    call = chat_call()
    with pytest.raises(RateLimited):
        await gateway.complete(call)
    assert log == ["outer:before", "refuser:enter", "outer:finally:429"]
    assert finallies == {"outer": 1}
    assert call.outcome.error_class == "rate_limit_error" and call.attempts == []


async def test_an_upstream_error_reaches_every_finally_once(log):
    finallies: Counter = Counter()
    gateway = build_gateway([Wrapper("outer", log, finallies), Wrapper("inner", log, finallies)],
                            provider=ScriptedProvider(log))
    call = chat_call("scripted/down")
    with pytest.raises(UpstreamError):
        await gateway.complete(call)
    assert finallies == {"outer": 1, "inner": 1}
    assert log[-2:] == ["inner:finally:502", "outer:finally:502"]
    assert [(a.deployment, a.status, a.error_class) for a in call.attempts] == [
        ("scripted/down", 502, "upstream_error")]


async def test_streams_pass_every_stage_and_each_finally_runs_once_at_the_end(log):
    finallies: Counter = Counter()
    provider = ScriptedProvider(log)
    gateway = build_gateway([Wrapper("outer", log, finallies), Wrapper("inner", log, finallies)], provider=provider)
    call = chat_call(text="one two three", stream=True)
    events = await gateway.open_stream(call)
    texts = [event.text async for event in events if isinstance(event, TextDelta)]
    assert texts == ["one ", "two ", "three "]
    assert log == ["outer:before", "inner:before", "provider:ok", "inner:finally:200", "outer:finally:200"]
    assert finallies == {"outer": 1, "inner": 1} and provider.closed_streams == 1
    assert call.outcome.usage.total_tokens == 5


async def test_a_stream_cut_off_mid_way_reaches_every_finally_once_with_the_error(log):
    finallies: Counter = Counter()
    provider = ScriptedProvider(log)
    gateway = build_gateway([Wrapper("outer", log, finallies), Wrapper("inner", log, finallies)], provider=provider)
    call = chat_call("scripted/cut", text="half an", stream=True)
    events = await gateway.open_stream(call)
    received = []
    with pytest.raises(UpstreamError, match="broke off"):
        async for event in events:
            received.append(event)
    assert [type(e).__name__ for e in received] == ["StreamStart", "TextDelta", "TextDelta"]
    assert log[-2:] == ["inner:finally:502", "outer:finally:502"] and finallies == {"outer": 1, "inner": 1}
    assert provider.closed_streams == 1 and call.outcome.error_class == "upstream_error"


async def test_a_stream_refused_before_its_first_event_is_an_error_not_a_stream(log):
    finallies: Counter = Counter()
    gateway = build_gateway([Wrapper("outer", log, finallies), Refuser(log)], provider=ScriptedProvider(log))
    with pytest.raises(RateLimited) as caught:
        await gateway.open_stream(chat_call(stream=True))
    assert caught.value.headers == {"Retry-After": "7"}
    assert log == ["outer:before", "refuser:enter", "outer:finally:429"] and finallies == {"outer": 1}


async def test_a_client_leaving_mid_stream_closes_every_layer_innermost_first(log):
    finallies: Counter = Counter()
    provider = ScriptedProvider(log)
    gateway = build_gateway([Wrapper("outer", log, finallies), Wrapper("inner", log, finallies)], provider=provider)
    call = chat_call(text="many words that nobody reads", stream=True)
    events = await gateway.open_stream(call)
    assert isinstance(await anext(events), StreamStart)
    await anext(events)
    await events.aclose()  # what the ingress does when the client disconnects
    assert provider.closed_streams == 1
    assert log[-2:] == ["inner:finally:499", "outer:finally:499"]
    assert finallies == {"outer": 1, "inner": 1}
    assert call.outcome.error_class == "client_closed"


async def test_a_stage_can_transform_count_and_end_a_stream(log):
    class Shout(Stage):
        seen = 0

        async def stream(self, call, next):
            async for event in next(call):
                if isinstance(event, TextDelta):
                    Shout.seen += 1
                    if Shout.seen == 2:
                        yield StreamDone()  # end cleanly after two deltas
                        return
                    event = TextDelta(text=event.text.upper())
                yield event

    provider = ScriptedProvider(log)
    gateway = build_gateway([Shout()], provider=provider)
    events = await gateway.open_stream(chat_call(text="a b c d", stream=True))
    kinds = [type(e).__name__ if not isinstance(e, TextDelta) else e.text async for e in events]
    assert kinds == ["StreamStart", "A ", "StreamDone"]
    assert provider.closed_streams == 1  # the layers it stopped reading were closed too


async def test_a_stage_may_answer_without_the_inner_layers(log):
    class Canned(Stage):
        async def handle(self, call, next):
            call.cache_hit = True
            return ChatResponse(id="c", created=0, model="canned",
                                choices=[Choice(index=0, message=Message(role="assistant", content="canned"))])

        async def stream(self, call, next):
            yield StreamStart(id="c", model="canned", created=0)
            yield TextDelta(text="replayed")
            yield StreamDone()

    finallies: Counter = Counter()
    provider = ScriptedProvider(log)
    gateway = build_gateway([Wrapper("outer", log, finallies), Canned()], provider=provider)
    call = chat_call()
    assert (await gateway.complete(call)).choices[0].message.content == "canned"
    assert call.outcome.status == 200 and call.attempts == [] and "provider:ok" not in log
    streamed = chat_call(stream=True)
    texts = [e.text async for e in await gateway.open_stream(streamed) if isinstance(e, TextDelta)]
    assert texts == ["replayed"] and streamed.outcome.status == 200 and provider.closed_streams == 0


async def test_embeddings_go_through_the_same_stages(log):
    finallies: Counter = Counter()
    gateway = build_gateway([Wrapper("outer", log, finallies), AttemptTimer(log)], provider=ScriptedProvider(log))
    call = embeddings_call()
    response = await gateway.embed(call)
    assert response.data[0].embedding == [0.5, 0.25]
    assert log == ["outer:before", "attempt:scripted/ok", "provider:ok", "outer:after", "outer:finally:200"]
    assert call.outcome.usage.prompt_tokens == 2


async def test_an_attempt_stage_can_swap_the_target_of_each_attempt(log):
    from msgspec.structs import replace

    class OwnKey(Stage):
        async def attempt(self, call, deployment, next):
            import dataclasses

            swapped = dataclasses.replace(deployment, target=replace(deployment.target, api_key="sk-org"))
            return await next(call, swapped)

    seen = []

    class KeyEcho(ScriptedProvider):
        async def complete(self, request, target):
            seen.append(target.api_key)
            return await super().complete(request, target)

    gateway = build_gateway([OwnKey()], provider=KeyEcho(log))
    await gateway.complete(chat_call())
    assert seen == ["sk-org"]


# --- the call ---------------------------------------------------------------------------------


async def test_a_call_without_a_principal_is_refused():
    with pytest.raises(AuthenticationFailed) as caught:
        chat_call(principal=None)  # type: ignore[arg-type]
    assert caught.value.code == "missing_principal"
    gateway = build_gateway()
    call = chat_call()
    call.principal = None  # type: ignore[assignment]
    with pytest.raises(AuthenticationFailed):
        await gateway.complete(call)
    with pytest.raises(AuthenticationFailed):
        await gateway.open_stream(call)


async def test_the_attempt_loop_enforces_the_allow_list_whatever_the_stages():
    limited = Principal(id="key:l", kind="key", scopes=frozenset({"chat"}), models=frozenset({"scripted/ok"}))
    provider = ScriptedProvider()
    gateway = build_gateway(provider=provider)  # no authorize stage at all
    with pytest.raises(PermissionDenied) as caught:
        await gateway.complete(chat_call("scripted/other", principal=limited))
    assert caught.value.code == "model_not_allowed" and provider.log == []


async def test_auth_disabled_callers_act_as_the_documented_principal():
    from junction.middleware.weighted.policy import WeightedConfig, WeightedPolicy
    from junction.pipeline import Gateway
    from junction.plugins.manager import LoadedPlugins
    from junction.routing.router import Router
    from junction.settings import settings_from_mapping

    settings = settings_from_mapping({"auth": {"disabled": True}})
    gateway = Gateway(settings, LoadedPlugins(infos=[]), Router({}, set(), {}), WeightedPolicy(WeightedConfig()))
    principal = await gateway.authenticate({})
    assert principal is AUTH_DISABLED_PRINCIPAL
    assert (principal.id, principal.kind, principal.scopes, principal.models) == (
        "auth-disabled", "anonymous", frozenset({"chat", "admin"}), None)


def test_call_state_is_keyed_by_the_plugins_own_types():
    class Reservation:
        def __init__(self, tokens: int) -> None:
            self.tokens = tokens

    state = CallState()
    state[Reservation] = Reservation(120)
    assert state[Reservation].tokens == 120 and Reservation in state
    assert state.get(int) is None
    with pytest.raises(TypeError, match="must hold a Reservation"):
        state[Reservation] = "120"  # type: ignore[assignment]
    with pytest.raises(KeyError, match="holds no int"):
        state[int]


def test_the_call_keeps_the_request_as_received_and_the_callers_org():
    call = chat_call()
    assert call.received is call.request and call.org_id == "org-1"
    assert "authorization" not in repr(Call(request_id="r", endpoint="chat", principal=USER, request=call.request,
                                            headers={"authorization": "Bearer sk-secret"}))


async def test_a_provider_whose_model_listing_crashes_hides_only_its_own_models():
    from junction.routing.catalog import ModelCatalog
    from tests.unit.sample_plugins import EchoAdapter, EchoConfig

    class Crashing(EchoAdapter):
        async def list_models(self):
            raise KeyError("a bug in a third-party plugin")

    catalog = ModelCatalog({"echo": EchoAdapter(EchoConfig(), None), "bad": Crashing(EchoConfig(), None)}, ["fast"])
    await catalog.warm_up()
    listed = [entry.id for entry in (await catalog.list()).data]
    assert listed == ["fast", "echo/one"]
