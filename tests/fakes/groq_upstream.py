"""A fake Groq API (``/openai/v1``), from Groq's OpenAI-compatibility documentation: it refuses
what Groq refuses (``logprobs``, ``top_logprobs``, ``logit_bias``, ``n`` > 1, ``messages[].name``)
and streams usage in ``x_groq`` on the finish chunk, plus the trailing usage chunk when asked."""

from __future__ import annotations

from typing import Any, ClassVar

from aiohttp import web

from tests.fakes.openai_compatible import OpenAICompatibleFake
from tests.fakes.openai_upstream import ScriptedReply, openai_error


class FakeGroq(OpenAICompatibleFake):
    prefix: ClassVar[str] = "/openai/v1"
    serves_embeddings: ClassVar[bool] = False
    #: Groq has parameters of its own (``reasoning_format``, ``search_settings``...) beyond OpenAI's.
    known_request_fields: ClassVar[frozenset[str] | None] = None

    def __init__(self, api_key: str = "gsk_test", models: list[str] | None = None) -> None:
        super().__init__(
            api_key=api_key, models=models or ["llama-3.1-8b-instant", "llama-3.3-70b-versatile"]
        )
        #: Models whose flex tier is at capacity: flex requests for them fail fast with Groq's 498.
        self.flex_exhausted: set[str] = set()

    def reset(self) -> None:
        super().reset()
        self.flex_exhausted.clear()

    def check_body(self, body: dict[str, Any]) -> web.Response | None:
        if body.get("service_tier") == "flex" and body.get("model") in self.flex_exhausted:
            return web.json_response(openai_error("Flex tier capacity exceeded. Please try again later.",
                                                  "capacity_exceeded", "capacity_exceeded"), status=498)
        for field in ("logprobs", "top_logprobs", "logit_bias"):
            if body.get(field) not in (None, False):
                return self.error(400, f"'{field}' : property '{field}' is unsupported", field)
        if body.get("n", 1) != 1:
            return self.error(400, "'n' : number must be at most 1", "n")
        for index, message in enumerate(body.get("messages", [])):
            if "name" in message:
                return self.error(
                    400,
                    f"'messages.{index}' : for 'role:{message['role']}' the following must be "
                    f"satisfied[('messages.{index}.name' : property 'name' is unsupported)]",
                )
        return None

    def finish_chunk_extra(self, reply: ScriptedReply) -> dict[str, Any]:
        usage = self._usage(reply)
        return {
            "x_groq": {
                "id": "req_01jfakegroq",
                "usage": {
                    "queue_time": 0.021,
                    "prompt_tokens": usage["prompt_tokens"],
                    "prompt_time": 0.004,
                    "completion_tokens": usage["completion_tokens"],
                    "completion_time": 0.03,
                    "total_tokens": usage["total_tokens"],
                    "total_time": 0.034,
                },
            }
        }
