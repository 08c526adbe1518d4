"""A fake Mistral API (``/v1``), from Mistral's API reference: it rejects fields it does not know
(422 ``extra_forbidden``, as its validation does), tool-call ids that are not exactly 9 characters
a-z/A-Z/0-9, ``tool_choice`` values outside auto/none/any/required and roles it lacks; it issues
9-character ids, streams tool calls whole (all in one chunk, each with ``index`` 0), puts usage on
the last stream chunk, and serves embeddings with ``output_dimension``."""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from typing import Any, ClassVar

from aiohttp import web

from tests.fakes.openai_compatible import OpenAICompatibleFake
from tests.fakes.openai_upstream import ScriptedReply

_CHAT_FIELDS = {
    "model",
    "messages",
    "temperature",
    "top_p",
    "max_tokens",
    "stream",
    "stop",
    "random_seed",
    "response_format",
    "tools",
    "tool_choice",
    "presence_penalty",
    "frequency_penalty",
    "n",
    "prediction",
    "parallel_tool_calls",
    "prompt_mode",
    "safe_prompt",
    "reasoning_effort",
}
_EMBEDDING_FIELDS = {"model", "input", "output_dimension", "output_dtype", "encoding_format", "metadata"}
_VALID_ID = re.compile(r"[A-Za-z0-9]{9}")
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class FakeMistral(OpenAICompatibleFake):
    prefix: ClassVar[str] = "/v1"
    #: Mistral's own parameter list is checked in :meth:`check_body` (422, as Mistral answers).
    known_request_fields: ClassVar[frozenset[str] | None] = None

    def __init__(self, api_key: str = "mistral-test-key", models: list[str] | None = None) -> None:
        super().__init__(api_key=api_key, models=models or ["mistral-large-latest", "mistral-embed"])
        #: When set, answers are Magistral's: ``content`` is a list of chunks, a ``thinking`` chunk
        #: (itself a list of text chunks) with this text, then ``text`` chunks.
        self.thinking: str | None = None

    def reset(self) -> None:
        super().reset()
        self.thinking = None

    def message_content(self, reply: ScriptedReply) -> Any:
        if self.thinking is None:
            return reply.text
        return [{"type": "thinking", "thinking": [{"type": "text", "text": self.thinking}]},
                {"type": "text", "text": reply.text}]

    def content_delta(self, piece: str) -> Any:
        return piece if self.thinking is None else [{"type": "text", "text": piece}]

    def reasoning_deltas(self) -> Iterator[dict[str, Any]]:
        thinking = self.thinking or ""
        for start in range(0, len(thinking), 6):
            yield {"content": [{"type": "thinking", "thinking": [{"type": "text",
                                                                   "text": thinking[start:start + 6]}]}]}

    def error(
        self,
        status: int,
        message: Any,
        param: str | None = None,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
    ) -> web.Response:
        return web.json_response(
            {"object": "error", "message": message, "type": type_, "param": param, "code": code},
            status=status,
        )

    def queue_error(self, status: int, message: str, *, retry_after: int | None = None) -> None:
        headers = {"retry-after": str(retry_after)} if retry_after is not None else None
        self.fail_next(
            status,
            {
                "object": "error",
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            },
            headers,
        )

    def _extra_forbidden(self, names: set[str]) -> web.Response:
        return self.error(
            422,
            {
                "detail": [
                    {
                        "type": "extra_forbidden",
                        "loc": ["body", name],
                        "msg": "Extra inputs are not permitted",
                    }
                    for name in sorted(names)
                ]
            },
        )

    def check_body(self, body: dict[str, Any]) -> web.Response | None:
        if unknown := set(body) - _CHAT_FIELDS:
            return self._extra_forbidden(unknown)
        choice = body.get("tool_choice")
        if isinstance(choice, str) and choice not in ("auto", "none", "any", "required"):
            return self.error(400, f"Invalid tool_choice {choice!r}", "tool_choice")
        for message in body.get("messages", []):
            if message.get("role") not in ("system", "user", "assistant", "tool"):
                return self.error(422, f"Invalid role {message.get('role')!r}")
            ids = [call.get("id", "") for call in message.get("tool_calls") or ()]
            if message.get("role") == "tool":
                ids.append(message.get("tool_call_id", ""))
            for call_id in ids:
                if not _VALID_ID.fullmatch(call_id):
                    return self.error(
                        400,
                        f"Tool call id was {call_id} but must be a-z, A-Z, 0-9, with a length of 9.",
                        type_="invalid_function_call",
                        code="3280",
                    )
        return None

    def new_tool_call_id(self, index: int, name: str) -> str:
        number, digits = zlib.crc32(f"{index}{name}".encode()) * 7919 + index, []
        for _ in range(9):
            number, digit = divmod(number, 62)
            digits.append(_ALPHABET[digit])
        return "".join(digits)

    def tool_call_deltas(self, reply: ScriptedReply) -> Iterator[list[dict[str, Any]]]:
        # Mistral streams every call whole, all in one chunk, each ``index`` at its schema default 0.
        if reply.tool_calls:
            yield [{"id": call["id"], "type": "function", "index": 0,
                    "function": {"name": call["name"], "arguments": call["arguments"]}}
                   for call in reply.tool_calls]

    def _usage(self, reply: ScriptedReply) -> dict[str, Any]:
        return {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        }

    def finish_chunk_extra(self, reply: ScriptedReply) -> dict[str, Any]:
        return {"usage": self._usage(reply)}  # Mistral's last chunk carries the usage

    def check_embeddings_body(self, body: dict[str, Any]) -> web.Response | None:
        if unknown := set(body) - _EMBEDDING_FIELDS:
            return self._extra_forbidden(unknown)
        texts = body.get("input")
        if not (
            isinstance(texts, str) or (isinstance(texts, list) and all(isinstance(t, str) for t in texts))
        ):
            return self.error(422, "input must be a string or a list of strings", "input")
        return None

    def embedding_dimensions(self, body: dict[str, Any]) -> int:
        return body.get("output_dimension") or 8
