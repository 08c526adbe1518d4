"""Mistral: OpenAI Chat Completions and embeddings with Mistral's differences.

- Request fields Mistral names differently: ``seed`` → ``random_seed``, ``max_completion_tokens`` →
  ``max_tokens``, ``tool_choice: "required"`` → ``"any"``, role ``developer`` → ``system``; for
  embeddings ``dimensions`` → ``output_dimension``.
- Mistral rejects fields it does not know, so ``stream_options`` (its streams always end with
  usage), ``user`` and ``metadata`` are dropped; ``logprobs``, ``top_logprobs`` and ``logit_bias``
  are refused with a 400 naming the field.
- Tool-call ids must be exactly 9 characters a-z, A-Z, 0-9. Ids Mistral issued already are and pass
  through unchanged both ways; any other id (from a conversation begun on another provider) is
  mapped to 9 base-62 characters of its SHA-256, so an assistant turn's call and its tool result
  map to the same id on every request.
- Finish reason ``model_length`` (the context window ran out, rather than ``max_tokens``) becomes
  OpenAI's ``length``: clients know no other name for a cut-off answer. Finish reason ``error``
  (generation failed upstream) is a 502 ``generation_failed``, an error event mid-stream: OpenAI
  has no finish reason for a failure, and any other would present a broken answer as a whole one.
- Reasoning models answer with ``content`` as a list of ``thinking`` and ``text`` chunks; they are
  read as reasoning and text (see :mod:`.wire`).
"""

from __future__ import annotations

import hashlib
import re
from typing import ClassVar

import msgspec

from junction.errors import InvalidRequest, UpstreamError
from junction.formats.embeddings import encode_embedding_request
from junction.formats.json_body import decode_upstream, option_fields, splice_fields
from junction.formats.openai import ChunkReader
from junction.plugins import ProviderConfig, UpstreamTarget
from junction.providers.mistral.wire import chunk_decoder, response_decoder
from junction.providers.openai.adapter import OpenAIAdapter
from junction.providers.openai.embeddings import OpenAIEmbeddings
from junction.schemas.chat import CHAT_REQUEST_FIELDS, ChatRequest, ChatResponse, Message
from junction.schemas.embeddings import EmbeddingRequest
from junction.schemas.stream import Finish, StreamEvent, ToolCallDelta


class MistralConfig(ProviderConfig):
    base_url: str = "https://api.mistral.ai/v1"


_VALID_ID = re.compile(r"[A-Za-z0-9]{9}")
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_REFUSED = ("logprobs", "top_logprobs", "logit_bias")
_FINISH_REASONS = {"model_length": "length"}
#: What the body gets from the unified request; ``provider_options.mistral`` may not set it twice.
_MODELLED = CHAT_REQUEST_FIELDS | {"random_seed"}
_encoder = msgspec.json.Encoder()


def _finish_reason(reason: str) -> str:
    if reason == "error":
        raise UpstreamError("mistral: the model failed while generating the answer", code="generation_failed")
    return _FINISH_REASONS.get(reason, reason)


def mistral_tool_call_id(call_id: str) -> str:
    """``call_id`` if Mistral accepts it, else a deterministic 9-character stand-in."""
    if _VALID_ID.fullmatch(call_id):
        return call_id
    number = int.from_bytes(hashlib.sha256(call_id.encode()).digest()[:8], "big")
    digits = []
    for _ in range(9):
        number, digit = divmod(number, 62)
        digits.append(_BASE62[digit])
    return "".join(digits)


def _mistral_message(message: Message) -> Message:
    changes: dict[str, object] = {}
    if message.role == "developer":
        changes["role"] = "system"
    if message.tool_calls and any(not _VALID_ID.fullmatch(call.id) for call in message.tool_calls):
        changes["tool_calls"] = [msgspec.structs.replace(call, id=mistral_tool_call_id(call.id))
                                 for call in message.tool_calls]
    if message.tool_call_id is not None and not _VALID_ID.fullmatch(message.tool_call_id):
        changes["tool_call_id"] = mistral_tool_call_id(message.tool_call_id)
    if message.reasoning is not None or message.provider_metadata is not None:
        changes["reasoning"] = None  # our own additions; Mistral rejects unknown members
        changes["provider_metadata"] = None
    return msgspec.structs.replace(message, **changes) if changes else message


class MistralChunkReader(ChunkReader):
    """Mistral streams each tool call whole, with its id, and its schema defaults ``index`` to 0,
    so parallel calls in one chunk may all say 0: a call with an id is a new call, numbered here,
    so that OpenAI clients (which join pieces by index) do not merge parallel calls."""

    __slots__ = ("_calls", "_slots")
    decoder = chunk_decoder

    def __init__(self, provider: str) -> None:
        super().__init__(provider)
        #: Per choice: how many calls it made, and upstream index → our index of its latest call.
        self._calls: dict[int, int] = {}
        self._slots: dict[tuple[int, int], int] = {}

    def read(self, data: str) -> list[StreamEvent]:
        events = super().read(data)
        for i, event in enumerate(events):
            if isinstance(event, ToolCallDelta):
                key = (event.choice, event.index)
                if event.id is not None:
                    slot = self._slots[key] = self._calls.get(event.choice, 0)
                    self._calls[event.choice] = slot + 1
                else:
                    slot = self._slots.get(key, event.index)
                if slot != event.index:
                    events[i] = msgspec.structs.replace(event, index=slot)
            elif isinstance(event, Finish) and (reason := _finish_reason(event.reason)) != event.reason:
                events[i] = msgspec.structs.replace(event, reason=reason)
        return events


class MistralAdapter(OpenAIEmbeddings, OpenAIAdapter):
    name: ClassVar[str] = "mistral"

    def chunk_reader(self) -> ChunkReader:
        return MistralChunkReader(self.name)

    def read_response(self, payload: bytes) -> ChatResponse:
        response = decode_upstream(response_decoder, payload, self.name, "a response")
        for choice in response.choices:
            if choice.finish_reason is not None:
                choice.finish_reason = _finish_reason(choice.finish_reason)
        return response

    def prepare(self, request: ChatRequest, target: UpstreamTarget, *, stream: bool) -> bytes:
        for field in _REFUSED:
            if getattr(request, field) not in (None, False):
                raise InvalidRequest(f"{field}: not supported by mistral", param=field,
                                     code="unsupported_parameter")
        tool_choice = "any" if request.tool_choice == "required" else request.tool_choice
        outgoing = msgspec.structs.replace(
            request, model=target.model, messages=[_mistral_message(m) for m in request.messages],
            stream=True if stream else None, stream_options=None, seed=None, max_completion_tokens=None,
            max_tokens=request.output_token_limit(), tool_choice=tool_choice, user=None, metadata=None,
            extra_fields=None, provider_options=None)
        extra = dict(request.extra_fields or {})
        if request.seed is not None:
            extra["random_seed"] = msgspec.Raw(_encoder.encode(request.seed))
        extra.update(option_fields(request.provider_options, self.name, _MODELLED))
        return splice_fields(_encoder.encode(outgoing), extra)

    def prepare_embeddings(self, request: EmbeddingRequest, target: UpstreamTarget) -> bytes:
        if request.kind() == "tokens":
            raise InvalidRequest("input: mistral embeds text only, not token ids", param="input",
                                 code="unsupported_input")
        outgoing = msgspec.structs.replace(request, dimensions=None, user=None)
        body = encode_embedding_request(outgoing, target.model)
        if request.dimensions is None:
            return body
        return splice_fields(body, {"output_dimension": msgspec.Raw(_encoder.encode(request.dimensions))})
