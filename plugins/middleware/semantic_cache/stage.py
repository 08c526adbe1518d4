"""The semantic-cache stage: embed the question, compare it with the questions cached in its
scope, serve (or, in shadow mode, only record) the best one above the threshold that the
near-miss guard lets through, and store complete answers that call no tool."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgspec

from junction.errors import ConfigError, JunctionError
from junction.formats.unified import events_response, response_events
from junction.middleware.semantic_cache.config import SemanticCacheConfig
from junction.middleware.semantic_cache.guard import refusal
from junction.middleware.semantic_cache.store import Entry, MemoryEntries, RedisEntries, Sample
from junction.plugins import Call, Next, NextStream, PluginContext, Reply, Stage
from junction.plugins.background import BackgroundWork
from junction.plugins.store_guard import StoreGuard, StoreUnavailable
from junction.schemas.chat import ChatRequest, ChatResponse, Message
from junction.schemas.stream import Finish, StreamDone, StreamEvent, UsageReport

log = logging.getLogger("junction.semantic_cache")

HEADER = "x-junction-semantic-cache"
REFUSED_HEADER = "x-junction-semantic-cache-refused"
SIMILARITY_HEADER = "x-junction-semantic-cache-similarity"
#: Bumped when the scope's canonical form or the entry changes, so old entries are never misread.
KEY_VERSION = "s1"
_key_encoder = msgspec.json.Encoder()
_answers = msgspec.msgpack.Encoder()
_answer = msgspec.msgpack.Decoder(ChatResponse)


@dataclass(slots=True)
class Plan:
    scope: str
    question: str
    vector: bytes
    hit: Entry | None = None
    similarity: float = 0.0


def scope_key(call: Call, request: ChatRequest, question_index: int) -> str:
    """Everything about the rendered request but the question: org, bridge and version, model,
    system prompt, earlier turns, parameters. Only questions of one scope are compared."""
    messages = list(request.messages)
    messages[question_index] = Message(role="user", content="")
    canonical = msgspec.structs.replace(request, messages=messages, stream=None, stream_options=None, user=None,
                                        metadata=None)
    material = _key_encoder.encode((KEY_VERSION, call.org_id or "", call.bridge_id or "", call.bridge_version,
                                    canonical))
    return hashlib.sha256(material).hexdigest()


def calls_tools(request: ChatRequest) -> bool:
    return bool(request.tools) or any(message.role == "tool" or message.tool_calls for message in request.messages)


def answer_calls_tools(response: ChatResponse) -> bool:
    return any(choice.message.tool_calls for choice in response.choices)


class SemanticCacheStage(Stage):
    def __init__(self, config: SemanticCacheConfig, context: PluginContext) -> None:
        config.check()
        if context.embeddings is None:
            raise ConfigError("middleware.semantic-cache: needs the gateway's embeddings (a serving process)")
        self.config = config
        self._embeddings = context.embeddings
        self.guard = StoreGuard("semantic-cache", config)
        self.store: RedisEntries | MemoryEntries = (
            RedisEntries(context.redis, config.key_prefix, self.guard) if context.redis is not None
            else MemoryEntries(config.memory_max_scopes))
        #: Stores, counts and releases run after the answer went out.
        self.background = BackgroundWork(log, "semantic-cache: background work")

    async def close(self) -> None:
        await self.background.drain()

    # --- the two ways in ------------------------------------------------------------------------

    async def handle(self, call: Call, next: Next) -> Reply:
        plan = await self._plan(call)
        if plan is None:
            return await next(call)
        if plan.hit is not None and self.config.mode == "serve":
            response = _answer.decode(plan.hit.answer)
            call.cache_hit = True
            call.succeeded(response.usage)
            return response
        reply = await next(call)
        if isinstance(reply, ChatResponse):
            self._after(call, plan, reply)
        return reply

    async def stream(self, call: Call, next: NextStream) -> AsyncIterator[StreamEvent]:
        plan = await self._plan(call)
        if plan is None:
            async for event in next(call):
                yield event
            return
        if plan.hit is not None and self.config.mode == "serve":
            call.cache_hit = True
            usage, replayed = None, False
            try:
                for event in response_events(_answer.decode(plan.hit.answer)):
                    if isinstance(event, UsageReport):
                        usage = event.usage
                    yield event
                replayed = True
            finally:
                if replayed:
                    call.succeeded(usage)
                else:
                    call.abandoned(usage)
            return
        seen: list[StreamEvent] = []
        async for event in next(call):
            seen.append(event)
            yield event
        if seen and isinstance(seen[-1], StreamDone) and any(isinstance(event, Finish) for event in seen):
            self._after(call, plan, events_response(seen))

    # --- lookup ---------------------------------------------------------------------------------

    async def _plan(self, call: Call) -> Plan | None:
        request = call.request
        if not isinstance(request, ChatRequest):
            return None
        headers = call.response_headers
        if calls_tools(request):
            headers[HEADER] = "skip"  # a tool-calling turn is never served from or stored in the cache
            return None
        control = (call.headers.get("cache-control") or "").lower()
        if "no-store" in control or "no-cache" in control:
            headers[HEADER] = "bypass"
            return None
        index = next((i for i in range(len(request.messages) - 1, -1, -1) if request.messages[i].role == "user"), None)
        question = request.messages[index].text() if index is not None else ""
        if not question.strip() or len(question) > self.config.max_question_chars:
            headers[HEADER] = "skip"
            return None
        plan = Plan(scope=scope_key(call, request, index), question=question, vector=b"")  # type: ignore[arg-type]
        try:
            plan.vector = (await self._embeddings.embed(call.principal, call.org_id, self.config.embedding_model,
                                                        [question]))[0]
            entries = await self.store.entries(plan.scope)
        except StoreUnavailable:
            if self.guard.on_error == "closed":
                raise self.guard.refusal() from None
            headers[HEADER] = "bypass"
            return None
        except JunctionError as error:  # the cache must not fail a call the upstream can answer
            log.warning("semantic-cache: embedding the question failed (%s); the call goes upstream", error.message)
            headers[HEADER] = "bypass"
            return None
        refused = self._match(plan, entries)
        counts = {"lookups": 1}
        if plan.hit is not None:
            counts["shadow_hits" if self.config.mode == "shadow" else "hits"] = 1
            headers[HEADER] = "shadow-hit" if self.config.mode == "shadow" else "hit"
            headers[SIMILARITY_HEADER] = f"{plan.similarity:.3f}"
        else:
            counts["misses"] = 1
            headers[HEADER] = "miss"
        if refused is not None:
            counts["refused"] = 1
            headers[REFUSED_HEADER] = refused
        self.background.start(self.store.count(call.org_id or "-", counts))
        return plan

    def _match(self, plan: Plan, entries: list[Entry]) -> str | None:
        """Set ``plan.hit`` to the most similar fresh entry above the threshold that the guard lets
        through; returns the guard's reason when it refused a closer one."""
        import numpy as np  # here, not at import: every worker imports this module, few enable the stage

        if not entries:
            return None
        oldest = time.time() - self.config.ttl_seconds
        fresh = [entry for entry in entries if entry.stored_at >= oldest]
        if not fresh:
            return None
        matrix = np.frombuffer(b"".join(entry.vector for entry in fresh), dtype="<f4").reshape(len(fresh), -1)
        scores = matrix @ np.frombuffer(plan.vector, dtype="<f4")
        refused: str | None = None
        for position in np.argsort(-scores):
            if scores[position] < self.config.threshold:
                break
            entry = fresh[position]
            reason = refusal(plan.question, entry.question)
            if reason is None:
                plan.hit, plan.similarity = entry, float(scores[position])
                return refused
            refused = refused or reason
        return refused

    # --- after ----------------------------------------------------------------------------------

    def _after(self, call: Call, plan: Plan, response: ChatResponse) -> None:
        complete = bool(response.choices) and all(choice.finish_reason for choice in response.choices)
        if not complete or answer_calls_tools(response):
            return
        if plan.hit is not None:  # shadow mode: measure, keep the entry that was (nearly) served
            self.background.start(self._measure(call, plan, response))
            return
        answer = _answers.encode(response)
        if len(answer) > self.config.max_entry_bytes:
            return
        entry = Entry(stored_at=time.time(), question=plan.question, vector=plan.vector, answer=answer)
        self.background.start(self.store.add(plan.scope, entry, self.config.ttl_seconds,
                                        self.config.max_entries_per_scope))

    async def _measure(self, call: Call, plan: Plan, fresh: ChatResponse) -> None:
        """Would the shadow hit have been right? Compare the cached answer with the fresh one."""
        import numpy as np

        assert plan.hit is not None
        cached_text, fresh_text = _text(_answer.decode(plan.hit.answer)), _text(fresh)
        if cached_text == fresh_text:
            similarity = 1.0
        else:
            vectors = await self._embeddings.embed(call.principal, call.org_id, self.config.embedding_model,
                                                   [cached_text or " ", fresh_text or " "])
            similarity = float(np.frombuffer(vectors[0], dtype="<f4") @ np.frombuffer(vectors[1], dtype="<f4"))
        agreed = similarity >= self.config.agreement
        org = call.org_id or "-"
        await self.store.count(org, {"shadow_agreed": int(agreed)})
        await self.store.sample(org, Sample(at=time.time(), question=plan.question,
                                            cached_question=plan.hit.question, similarity=round(plan.similarity, 4),
                                            agreed=agreed, answer_similarity=round(similarity, 4)),
                                self.config.samples_kept)



def _text(response: ChatResponse) -> str:
    return "\n".join(choice.message.text() for choice in response.choices)
