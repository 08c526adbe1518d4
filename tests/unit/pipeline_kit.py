"""A gateway built from hand-made stages and a scripted provider, for the pipeline unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from junction.errors import InvalidRequest, RateLimited, UpstreamError, UpstreamTimeout
from junction.middleware.weighted.policy import WeightedConfig, WeightedPolicy
from junction.pipeline import Gateway
from junction.plugins import Call, Principal, RoutingPolicy
from junction.plugins.manager import LoadedPlugins
from junction.routing.router import Router
from junction.schemas.chat import ChatRequest, ChatResponse, Choice, Message, Usage
from junction.schemas.embeddings import Embedding, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage
from junction.schemas.stream import Finish, StreamDone, StreamStart, TextDelta, UsageReport
from junction.settings import settings_from_mapping

USER = Principal(id="key:u", kind="key", scopes=frozenset({"chat"}), org_id="org-1")

#: Models of the scripted provider and how they fail.
FAILURES = {
    "down": lambda: UpstreamError("scripted: down", code="scripted_down"),
    "slow": lambda: UpstreamTimeout("scripted: timed out"),
    "limited": lambda: RateLimited("scripted: slow down", headers={"Retry-After": "0.05"}),
    "bad": lambda: InvalidRequest("scripted: bad request", param="messages"),
}


class ScriptedProvider:
    """``scripted/<model>``: ``ok``-like models answer "<model>: <text>" (JSON, or a stream of
    one delta per word); the models in FAILURES raise; ``cut`` breaks its stream off after the
    deltas. Records every call and closed stream."""

    name = "scripted"

    def __init__(self, log: list[str] | None = None) -> None:
        self.log = log if log is not None else []
        self.closed_streams = 0

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def _fail(self, model: str) -> None:
        if model in FAILURES:
            self.log.append(f"provider:{model}:failed")
            raise FAILURES[model]()
        self.log.append(f"provider:{model}")

    async def complete(self, request: ChatRequest, target) -> ChatResponse:
        self._fail(target.model)
        text = f"{target.model}: {request.messages[-1].text()}"
        return ChatResponse(id="r-1", created=0, model=target.model,
                            usage=Usage(prompt_tokens=3, completion_tokens=len(text.split()),
                                        total_tokens=3 + len(text.split())),
                            choices=[Choice(index=0, message=Message(role="assistant", content=text),
                                            finish_reason="stop")])

    async def stream(self, request: ChatRequest, target) -> AsyncIterator:
        self._fail(target.model)
        try:
            yield StreamStart(id="r-1", model=target.model, created=0)
            for word in request.messages[-1].text().split():
                yield TextDelta(text=word + " ")
            if target.model == "cut":
                raise UpstreamError("scripted: the upstream stream broke off", code="scripted_cut")
            yield Finish(reason="stop")
            yield UsageReport(usage=Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5))
            yield StreamDone()
        finally:
            self.closed_streams += 1

    async def embed(self, request: EmbeddingRequest, target) -> EmbeddingResponse:
        self._fail(target.model)
        return EmbeddingResponse(data=[Embedding(index=0, embedding=[0.5, 0.25])], model=target.model,
                                 usage=EmbeddingUsage(prompt_tokens=2, total_tokens=2))

    async def list_models(self) -> list[str]:
        return ["ok"]


def build_gateway(stages: Sequence[object] = (), *, provider: ScriptedProvider | None = None,
                  policy: RoutingPolicy | None = None, aliases: dict | None = None,
                  retry: dict | None = None) -> Gateway:
    settings = settings_from_mapping({"auth": {"master_key": "unused"}, "models": aliases or {}})
    providers = {"scripted": provider or ScriptedProvider()}
    plugins = LoadedPlugins(infos=[], providers=providers,  # type: ignore[dict-item]
                            stages=[(type(stage).__name__, stage) for stage in stages])
    router = Router(providers, set(providers), settings.models)  # type: ignore[arg-type]
    return Gateway(settings, plugins, router, policy or WeightedPolicy(WeightedConfig(**(retry or {}))))


def chat_call(model: str = "scripted/ok", text: str = "hello world", *, stream: bool = False,
              principal: Principal = USER) -> Call:
    request = ChatRequest(model=model, messages=[Message(role="user", content=text)], stream=stream or None)
    return Call(request_id="req-1", endpoint="chat.completions", principal=principal, request=request)


def embeddings_call(model: str = "scripted/ok") -> Call:
    return Call(request_id="req-1", endpoint="embeddings", principal=USER,
                request=EmbeddingRequest(model=model, input="hi"))
