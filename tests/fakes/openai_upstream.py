"""A fake OpenAI Chat Completions server, built from OpenAI's API reference.

It checks what it is sent (auth header, JSON body, required fields, stream options) the way the real
API does, answers with realistic JSON or SSE chunks, and records every request. Tests script the
next answers with :meth:`FakeOpenAI.script`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aiohttp import web

from junction.testing.upstream import FakeUpstream


@dataclass
class ScriptedReply:
    text: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int = 11
    completion_tokens: int = 7
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    #: Stream the text in pieces of this many characters.
    chunk_size: int = 4
    #: Seconds between stream chunks, or before a JSON answer.
    delay: float = 0.0
    #: When set, the stream stops after the first content chunk until the event is set.
    hold: asyncio.Event | None = None
    #: Seconds between ``data: [DONE]`` and the end of the body (the network may split them).
    tail_delay: float = 0.0
    #: End the stream cleanly after the text, with no finish chunk and no ``[DONE]`` (a cut answer).
    truncate: bool = False


#: OpenAI's reasoning models take ``max_completion_tokens`` only.
REASONING_MODEL_PREFIXES = ("o1", "o3", "o4", "gpt-5")


def openai_error(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class FakeOpenAI(FakeUpstream):
    """Serves ``/v1/chat/completions`` and ``/v1/models`` at ``fake.url + "/v1"``."""

    #: The members a message may have; any other is refused, as OpenAI does.
    message_fields: ClassVar[frozenset[str]] = frozenset(
        {"role", "content", "name", "tool_calls", "tool_call_id", "refusal", "audio", "function_call"})
    #: The top-level request parameters of Chat Completions; any other is refused, as OpenAI does
    #: ("Unrecognized request argument supplied"). ``None`` accepts any (dialects with their own).
    known_request_fields: ClassVar[frozenset[str] | None] = frozenset({
        "model", "messages", "audio", "frequency_penalty", "function_call", "functions", "logit_bias",
        "logprobs", "max_completion_tokens", "max_tokens", "metadata", "modalities", "n",
        "parallel_tool_calls", "prediction", "presence_penalty", "prompt_cache_key",
        "prompt_cache_retention", "reasoning_effort", "response_format", "safety_identifier", "seed",
        "service_tier", "stop", "store", "stream", "stream_options", "temperature", "tool_choice", "tools",
        "top_logprobs", "top_p", "user", "verbosity", "web_search_options"})

    def __init__(self, api_key: str = "sk-upstream-test", models: list[str] | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.models = models or ["gpt-4o", "gpt-4o-mini"]
        self.replies: list[ScriptedReply] = []
        self.streams_completed = 0
        #: A test may add a parameter to stand for one the real API gained after this fake was written.
        self.request_fields = self.known_request_fields

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def script(self, reply: ScriptedReply | None = None, **fields: Any) -> ScriptedReply:
        """Queue the answer to the next chat request."""
        reply = reply or ScriptedReply(**fields)
        self.replies.append(reply)
        return reply

    def reset(self) -> None:
        super().reset()
        self.replies.clear()
        self.streams_completed = 0
        self.request_fields = self.known_request_fields

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/chat/completions", self.chat), web.get("/v1/models", self.list_models)]

    def tool_call_deltas(self, reply: ScriptedReply) -> Iterator[list[dict[str, Any]]]:
        """The ``delta.tool_calls`` of each stream chunk: OpenAI opens a call with its id and name,
        then sends its argument JSON in many pieces."""
        for index, call in enumerate(reply.tool_calls):
            yield [{"index": index, "id": call["id"], "type": "function",
                    "function": {"name": call["name"], "arguments": ""}}]
            arguments = call["arguments"]
            for start in range(0, len(arguments), 5):
                yield [{"index": index, "function": {"arguments": arguments[start:start + 5]}}]

    # --- checks the real API makes ------------------------------------------------------------

    def _check_auth(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response(
                openai_error("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"), status=401)
        return None

    async def list_models(self, request: web.Request) -> web.StreamResponse:
        if (denied := self._check_auth(request)) is not None:
            return denied
        return web.json_response({"object": "list", "data": [
            {"id": m, "object": "model", "created": 1715367049, "owned_by": "system"} for m in self.models]})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        if (denied := self._check_auth(request)) is not None:
            return denied
        if not request.content_type.startswith("application/json"):
            return web.json_response(openai_error("Expected JSON body", "invalid_request_error"), status=400)
        try:
            body = json.loads(await request.read())
        except json.JSONDecodeError:
            return web.json_response(openai_error("We could not parse the JSON body of your request.",
                                                  "invalid_request_error"), status=400)
        for required in ("model", "messages"):
            if required not in body:
                return web.json_response(openai_error(f"Missing required parameter: '{required}'.",
                                                      "invalid_request_error", "missing_required_parameter",
                                                      required), status=400)
        if self.request_fields is not None and (unknown_fields := set(body) - self.request_fields):
            return web.json_response(openai_error(
                f"Unrecognized request argument supplied: {sorted(unknown_fields)[0]}",
                "invalid_request_error"), status=400)
        for index, message in enumerate(body["messages"]):
            unknown = set(message) - self.message_fields
            if unknown:
                return web.json_response(openai_error(
                    f"Unrecognized request argument supplied: messages[{index}].{sorted(unknown)[0]}",
                    "invalid_request_error"), status=400)
        if "max_tokens" in body and body["model"].startswith(REASONING_MODEL_PREFIXES):
            return web.json_response(openai_error(
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.", "invalid_request_error", "unsupported_parameter",
                "max_tokens"), status=400)
        if body.get("stream_options") and not body.get("stream"):
            return web.json_response(openai_error(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                "invalid_request_error", param="stream_options"), status=400)
        reply = self.replies.pop(0) if self.replies else ScriptedReply()
        if reply.text is None and not reply.tool_calls:
            last = body["messages"][-1].get("content")
            reply.text = f"echo: {last if isinstance(last, str) else json.dumps(last)}"
        if body.get("stream"):
            return await self._stream(request, body, reply)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return web.json_response(self._completion(body, reply))

    # --- answers ------------------------------------------------------------------------------

    def stream_preamble(self) -> bytes:
        """Bytes sent before the first chunk (OpenRouter sends SSE comments while it routes)."""
        return b""

    def message_extra(self) -> dict[str, Any]:
        """Extra members of the answer's message (dialects add their own)."""
        return {}

    def message_content(self, reply: ScriptedReply) -> Any:
        """The answer message's ``content`` (dialects that answer in parts shape it their way)."""
        return reply.text

    def content_delta(self, piece: str) -> Any:
        """A stream delta's ``content`` for a piece of the answer's text."""
        return piece

    def reasoning_deltas(self) -> Iterator[dict[str, Any]]:
        """Deltas streamed before the answer's text (dialects that stream reasoning add them)."""
        return iter(())

    def finish_chunk_extra(self, reply: ScriptedReply) -> dict[str, Any]:
        """Extra top-level members of the stream's finish chunk (dialects add their own)."""
        return {}

    def _usage(self, reply: ScriptedReply) -> dict[str, Any]:
        return {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": reply.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": reply.reasoning_tokens, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
        }

    def _completion(self, body: dict[str, Any], reply: ScriptedReply) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.message_content(reply),
                                   "refusal": None,
                                   "annotations": [], **self.message_extra()}
        if reply.tool_calls:
            message["tool_calls"] = [
                {"id": call["id"], "type": "function",
                 "function": {"name": call["name"], "arguments": call["arguments"]}}
                for call in reply.tool_calls]
        finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
        return {
            "id": "chatcmpl-fake123", "object": "chat.completion", "created": int(time.time()),
            "model": body["model"], "choices": [{"index": 0, "message": message, "logprobs": None,
                                                 "finish_reason": finish}],
            "usage": self._usage(reply), "service_tier": "default", "system_fingerprint": "fp_fake",
        }

    async def _stream(self, request: web.Request, body: dict[str, Any], reply: ScriptedReply) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)
        if preamble := self.stream_preamble():
            await response.write(preamble)
        base = {"id": "chatcmpl-fake123", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": body["model"], "system_fingerprint": "fp_fake", "service_tier": "default"}

        async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
            await response.write(f"data: {json.dumps({**base, 'choices': choices, **extra})}\n\n".encode())
            if reply.delay:
                await asyncio.sleep(reply.delay)

        try:
            await send([{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": None},
                         "logprobs": None, "finish_reason": None}])
            for delta in self.reasoning_deltas():
                await send([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}])
            text = reply.text or ""
            for start in range(0, len(text), reply.chunk_size):
                piece = self.content_delta(text[start:start + reply.chunk_size])
                await send([{"index": 0, "delta": {"content": piece},
                             "logprobs": None, "finish_reason": None}])
                if reply.hold is not None and start == 0:
                    await reply.hold.wait()
            if reply.truncate:
                await response.write_eof()
                return response
            for tool_calls in self.tool_call_deltas(reply):
                await send([{"index": 0, "delta": {"tool_calls": tool_calls}, "logprobs": None,
                             "finish_reason": None}])
            finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
            await send([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}],
                       **self.finish_chunk_extra(reply))
            if (body.get("stream_options") or {}).get("include_usage"):
                await send([], usage=self._usage(reply))
            await response.write(b"data: [DONE]\n\n")
            if reply.tail_delay:
                await asyncio.sleep(reply.tail_delay)
            await response.write_eof()
            self.streams_completed += 1
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnects += 1
            raise
        return response
