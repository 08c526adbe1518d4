"""The pipeline runs its stages in order: authenticate → authorize → limits → cache → route →
provider → after (cache fill, limit accounting, observers)."""

from __future__ import annotations

import pytest

from app.errors import AuthenticationFailed, PermissionDenied, RateLimited
from app.plugins.manager import LoadedPlugins
from app.plugins.protocols import CallContext, Principal
from app.pipeline import Gateway
from app.routing.router import Router
from app.schemas.chat import ChatRequest, Message
from app.settings import settings_from_mapping
from tests.unit.sample_plugins import EchoAdapter, EchoConfig


class Recorder:
    def __init__(self) -> None:
        self.steps: list[str] = []


class Auth:
    def __init__(self, recorder: Recorder, token: str, principal: Principal) -> None:
        self.recorder, self.token, self.principal = recorder, token, principal

    async def authenticate(self, headers):
        self.recorder.steps.append(f"auth:{self.token}")
        return self.principal if headers.get("authorization") == self.token else None


class Limiter:
    def __init__(self, recorder: Recorder, refuse: bool = False) -> None:
        self.recorder, self.refuse = recorder, refuse

    async def check(self, call, request):
        self.recorder.steps.append("limit")
        call.response_headers["x-ratelimit-remaining-requests"] = "9"
        if self.refuse:
            raise RateLimited("slow down", headers={"Retry-After": "3"})

    async def record(self, call, usage):
        self.recorder.steps.append("limit:record")


class Cache:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder, self.saved = recorder, {}

    async def lookup(self, call, request):
        self.recorder.steps.append("cache:lookup")
        return self.saved.get(request.messages[-1].text())

    async def store(self, call, request, response):
        self.recorder.steps.append("cache:store")
        self.saved[request.messages[-1].text()] = response


class Observer:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder, self.outcomes = recorder, []

    async def observe(self, call, request, outcome):
        self.recorder.steps.append("observe")
        self.outcomes.append(outcome)


class RecordingEcho(EchoAdapter):
    def __init__(self, recorder: Recorder) -> None:
        super().__init__(EchoConfig(), None)
        self.recorder = recorder

    async def complete(self, request, target):
        self.recorder.steps.append("provider")
        return await super().complete(request, target)


USER = Principal(id="u", kind="key", scopes=frozenset({"chat"}), models=frozenset({"echo/one"}))


def build(recorder: Recorder, *, refuse: bool = False):
    settings = settings_from_mapping({"auth": {"master_key": "unused"}})
    echo = RecordingEcho(recorder)
    observer = Observer(recorder)
    plugins = LoadedPlugins(
        infos=[], providers={"echo": echo},
        authenticators=[Auth(recorder, "a", USER), Auth(recorder, "b", USER)],
        rate_limiters=[Limiter(recorder, refuse)], caches=[Cache(recorder)], observers=[observer])
    return Gateway(settings, plugins, Router(plugins.providers, {"echo"}, {})), observer


def request(model: str = "echo/one", text: str = "hi") -> ChatRequest:
    return ChatRequest(model=model, messages=[Message(role="user", content=text)])


async def test_stages_run_in_order_and_cache_short_circuits():
    recorder = Recorder()
    gateway, observer = build(recorder)
    call = CallContext(request_id="r", endpoint="chat", headers={"authorization": "b"})
    call.principal = await gateway.authenticate(call.headers)
    response = await gateway.complete(call, request())
    assert response.choices[0].message.content == "echo: hi"
    assert recorder.steps == ["auth:a", "auth:b", "limit", "cache:lookup", "provider", "cache:store",
                              "limit:record", "observe"]
    assert call.response_headers == {"x-ratelimit-remaining-requests": "9", "x-junction-deployment": "echo/one"}

    recorder.steps.clear()
    again = CallContext(request_id="r2", endpoint="chat", headers={}, principal=USER)
    cached = await gateway.complete(again, request())
    assert cached is response and again.cache_hit
    assert recorder.steps == ["limit", "cache:lookup", "limit:record", "observe"]
    assert [o.status for o in observer.outcomes] == [200, 200]


async def test_unknown_caller_is_refused_before_anything_else():
    recorder = Recorder()
    gateway, _ = build(recorder)
    with pytest.raises(AuthenticationFailed):
        await gateway.authenticate({"authorization": "zzz"})
    assert recorder.steps == ["auth:a", "auth:b"]


async def test_model_outside_the_principals_list_is_forbidden_before_limits():
    recorder = Recorder()
    gateway, observer = build(recorder)
    call = CallContext(request_id="r", endpoint="chat", headers={}, principal=USER)
    with pytest.raises(PermissionDenied):
        await gateway.complete(call, request(model="echo/two"))
    assert "limit" not in recorder.steps and "provider" not in recorder.steps
    assert observer.outcomes[0].status == 403


async def test_rate_limited_request_never_reaches_the_provider():
    recorder = Recorder()
    gateway, observer = build(recorder, refuse=True)
    call = CallContext(request_id="r", endpoint="chat", headers={}, principal=USER)
    with pytest.raises(RateLimited) as caught:
        await gateway.complete(call, request())
    assert caught.value.headers == {"Retry-After": "3"}
    assert "provider" not in recorder.steps
    assert observer.outcomes[0].status == 429 and observer.outcomes[0].error_type == "rate_limit_error"


async def test_stream_reports_usage_to_observers_when_it_ends():
    recorder = Recorder()
    gateway, observer = build(recorder)
    call = CallContext(request_id="r", endpoint="chat", headers={}, principal=USER)
    events = await gateway.open_stream(call, request(text="streamed"))
    kinds = [type(event).__name__ async for event in events]
    assert kinds == ["StreamStart", "TextDelta", "StreamDone"]
    assert recorder.steps[-2:] == ["limit:record", "observe"]
    assert observer.outcomes[-1].status == 200


async def test_a_provider_whose_model_listing_crashes_hides_only_its_own_models():
    from app.routing.catalog import ModelCatalog

    class Crashing(EchoAdapter):
        async def list_models(self):
            raise KeyError("a bug in a third-party plugin")

    catalog = ModelCatalog({"echo": EchoAdapter(EchoConfig(), None), "bad": Crashing(EchoConfig(), None)}, ["fast"])
    await catalog.warm_up()
    listed = [entry.id for entry in (await catalog.list()).data]
    assert listed == ["fast", "echo/one"]
