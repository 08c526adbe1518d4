"""The fake OpenAI server, made scriptable by the conformance kit and reusable by dialects.

:class:`OpenAICompatibleFake` adds the :class:`~junction.testing.conformance.ConformanceUpstream`
controls to :class:`FakeOpenAI`, serves under a configurable path prefix, and gives dialect fakes
(Groq, Mistral, OpenRouter) one hook, :meth:`check_body`, to reject what their real API rejects.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import zlib
from typing import Any, ClassVar

from aiohttp import web

from junction.testing.conformance import Reply, SeenRequest, hold_until_disconnected
from tests.fakes.embedding_vectors import fake_vector
from tests.fakes.openai_upstream import FakeOpenAI, ScriptedReply, openai_error

_ERROR_TYPES = {400: ("invalid_request_error", None), 401: ("invalid_request_error", "invalid_api_key"),
                403: ("permission_error", None), 404: ("invalid_request_error", "model_not_found"),
                429: ("requests", "rate_limit_exceeded")}


class OpenAICompatibleFake(FakeOpenAI):
    """Serves ``{prefix}/chat/completions``, ``{prefix}/models`` and ``{prefix}/embeddings``."""

    prefix: ClassVar[str] = "/v1"
    #: Whether the API has ``POST {prefix}/embeddings``.
    serves_embeddings: ClassVar[bool] = True

    def __init__(self, api_key: str = "sk-upstream-test", models: list[str] | None = None) -> None:
        super().__init__(api_key=api_key, models=models)
        self._watchers: set[asyncio.Task[None]] = set()

    @property
    def base_url(self) -> str:
        return f"{self.url}{self.prefix}"

    def routes(self) -> list[web.RouteDef]:
        routes = [web.post(f"{self.prefix}/chat/completions", self.chat),
                  web.get(f"{self.prefix}/models", self.list_models)]
        if self.serves_embeddings:
            routes.append(web.post(f"{self.prefix}/embeddings", self.embeddings))
        return routes

    # --- embeddings ---------------------------------------------------------------------------

    def check_embeddings_body(self, body: dict[str, Any]) -> web.Response | None:
        """Like :meth:`check_body`, for embeddings requests (OpenAI's own rules here)."""
        for required in ("model", "input"):
            if required not in body:
                return self.error(400, f"Missing required parameter: '{required}'.", required)
        unknown = set(body) - {"model", "input", "dimensions", "encoding_format", "user"}
        if unknown:
            return self.error(400, f"Unrecognized request argument supplied: {sorted(unknown)[0]}")
        if body.get("encoding_format", "float") not in ("float", "base64"):
            return self.error(400, "encoding_format must be 'float' or 'base64'", "encoding_format")
        return None

    def embedding_dimensions(self, body: dict[str, Any]) -> int:
        return body.get("dimensions") or 8

    async def embeddings(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self.error(401, "Incorrect API key provided.")
        body = json.loads(await request.read())
        if (refused := self.check_embeddings_body(body)) is not None:
            return refused
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        if inputs and isinstance(inputs[0], int):
            inputs = [inputs]  # one token array
        dimensions = self.embedding_dimensions(body)
        data = []
        for index, item in enumerate(inputs):
            vector = fake_vector(item if isinstance(item, str) else json.dumps(item), dimensions)
            encoded: Any = vector
            if body.get("encoding_format") == "base64":
                encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(len(str(item).split()) for item in inputs)
        return web.json_response({"object": "list", "data": data, "model": body["model"],
                                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    # --- dialect hook -------------------------------------------------------------------------

    def check_body(self, body: dict[str, Any]) -> web.Response | None:
        """An error response for a body the real API would refuse, else ``None``."""
        return None

    def error(self, status: int, message: str, param: str | None = None) -> web.Response:
        type_, code = _ERROR_TYPES.get(status, ("server_error", None))
        return web.json_response(openai_error(message, type_, code, param), status=status)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") == f"Bearer {self.api_key}":
            try:
                body = json.loads(await request.read())
            except json.JSONDecodeError:
                body = None
            if isinstance(body, dict) and (refused := self.check_body(body)) is not None:
                return refused
        reply = self.replies[0] if self.replies else None
        if reply is not None and reply.hold is not None:
            watcher = asyncio.ensure_future(self._release_when_gone(request, reply.hold))
            self._watchers.add(watcher)
            watcher.add_done_callback(self._watchers.discard)
        return await super().chat(request)

    @staticmethod
    async def _release_when_gone(request: web.Request, hold: asyncio.Event) -> None:
        # The fake writes its next chunk once the client is gone; that write fails and is counted.
        await hold_until_disconnected(request)
        hold.set()

    # --- the conformance kit's controls --------------------------------------------------------

    def queue_reply(self, reply: Reply) -> None:
        calls = [{"id": self.new_tool_call_id(index, call.name), "name": call.name,
                  "arguments": json.dumps(call.arguments)} for index, call in enumerate(reply.tool_calls)]
        self.script(ScriptedReply(
            text=reply.text or None, tool_calls=calls, finish_reason=reply.finish_kind,
            prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
            cached_tokens=reply.cached_tokens, reasoning_tokens=reply.reasoning_tokens,
            chunk_size=reply.chunk_size, hold=asyncio.Event() if reply.hold else None))

    def new_tool_call_id(self, index: int, name: str) -> str:
        """The id the fake model gives its ``index``-th call (dialects have their own formats)."""
        return f"call_{index}{zlib.crc32(name.encode()):010d}"

    def queue_error(self, status: int, message: str, *, retry_after: int | None = None) -> None:
        type_, code = _ERROR_TYPES.get(status, ("server_error", None))
        headers = {"retry-after": str(retry_after)} if retry_after is not None else None
        self.fail_next(status, openai_error(message, type_, code), headers)

    def last_seen(self) -> SeenRequest:
        chats = [r for r in self.requests if r.path.endswith("/chat/completions")]
        return seen_in_openai_body(chats[-1].json())


def seen_in_openai_body(body: dict[str, Any]) -> SeenRequest:
    """What an OpenAI-shaped chat request carries, for the conformance kit."""
    seen = SeenRequest(model=body["model"], stream=bool(body.get("stream")))
    for message in body["messages"]:
        content = message.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else (content or [])
        if message["role"] == "tool":
            seen.tool_results.append("".join(p.get("text", "") for p in parts))
            continue
        for part in parts:
            if part["type"] == "text":
                seen.texts.append(part["text"])
            elif part["type"] == "image_url":
                seen.images.append(part["image_url"]["url"])
        for call in message.get("tool_calls") or ():
            seen.tool_calls.append((call["function"]["name"], json.loads(call["function"]["arguments"])))
    seen.tool_names = [tool["function"]["name"] for tool in body.get("tools") or ()]
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        seen.json_schema = response_format["json_schema"].get("schema")
    return seen
