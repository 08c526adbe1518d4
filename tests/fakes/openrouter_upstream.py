"""A fake OpenRouter API (``/api/v1``), from OpenRouter's API reference: model ids carry their
vendor (``openai/gpt-4o``), the ``provider`` routing object is validated, streams open with the
SSE comments OpenRouter sends while it routes, usage carries ``cost``, and scripted
``reasoning_details`` come with ``reasoning`` on the message or, streamed, in pieces per delta (text
first, the signature last), as OpenRouter relays Claude's and Gemini's signed reasoning."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from aiohttp import web

from tests.fakes.openai_compatible import OpenAICompatibleFake
from tests.fakes.openai_upstream import ScriptedReply

_PROVIDER_KEYS = {
    "order",
    "allow_fallbacks",
    "require_parameters",
    "data_collection",
    "zdr",
    "only",
    "ignore",
    "quantizations",
    "sort",
    "max_price",
    "enforce_distillable_text",
}


class FakeOpenRouter(OpenAICompatibleFake):
    prefix: ClassVar[str] = "/api/v1"
    serves_embeddings: ClassVar[bool] = False
    #: OpenRouter relays many upstreams' own parameters; it does not refuse unknown ones.
    known_request_fields: ClassVar[frozenset[str] | None] = None
    message_fields: ClassVar[frozenset[str]] = OpenAICompatibleFake.message_fields | {"reasoning",
                                                                                       "reasoning_details"}

    def __init__(self, api_key: str = "sk-or-v1-test", models: list[str] | None = None) -> None:
        super().__init__(
            api_key=api_key, models=models or ["anthropic/claude-sonnet-4.5", "openai/gpt-4o-mini"]
        )
        self.mid_stream_error = None
        self.out_of_credits = False

    def check_body(self, body: dict[str, Any]) -> web.Response | None:
        if self.out_of_credits:  # OpenRouter's answer when the account's balance cannot pay
            return web.json_response({"error": {"code": 402, "message": "Insufficient credits. Add more "
                                                "using https://openrouter.ai/settings/credits"}}, status=402)
        if "/" not in body.get("model", ""):
            return self.error(400, f"{body.get('model')} is not a valid model ID", "model")
        provider = body.get("provider")
        if provider is not None:
            if not isinstance(provider, dict) or set(provider) - _PROVIDER_KEYS:
                return self.error(400, "provider: invalid provider preferences", "provider")
        return None

    def reset(self) -> None:
        super().reset()
        #: When set, the next stream ends with OpenRouter's mid-stream error chunk instead of a finish.
        self.mid_stream_error: str | None = None
        #: When set, the next answers carry these reasoning details (``reasoning.text`` ones).
        self.reasoning_details: list[dict[str, Any]] | None = None
        #: When set, every request is refused with OpenRouter's 402 (no credits left).
        self.out_of_credits = False

    def message_extra(self) -> dict[str, Any]:
        if not self.reasoning_details:
            return {}
        text = "".join(detail.get("text") or "" for detail in self.reasoning_details)
        return {"reasoning": text, "reasoning_details": self.reasoning_details}

    def reasoning_deltas(self) -> Iterator[dict[str, Any]]:
        for detail in self.reasoning_details or ():
            text = detail.get("text") or ""
            for start in range(0, len(text), 5):
                piece = {**detail, "text": text[start:start + 5], "signature": None}
                yield {"role": "assistant", "content": "", "reasoning": piece["text"],
                       "reasoning_details": [piece]}
            yield {"role": "assistant", "content": "", "reasoning": "",
                   "reasoning_details": [{**detail, "text": ""}]}

    def finish_chunk_extra(self, reply: ScriptedReply) -> dict[str, Any]:
        if self.mid_stream_error is None:
            return {}
        message, self.mid_stream_error = self.mid_stream_error, None
        return {"error": {"code": 502, "message": message}}

    def stream_preamble(self) -> bytes:
        return b": OPENROUTER PROCESSING\n\n: OPENROUTER PROCESSING\n\n"

    def _usage(self, reply: ScriptedReply) -> dict[str, Any]:
        return {**super()._usage(reply), "cost": 0.000123, "is_byok": False}
