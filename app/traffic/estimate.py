"""What a call will use, before it runs: its prompt tokens (estimated) and its output cap.

No tokenizer loads fully offline here (tiktoken fetches its BPE files at first use), and the
prompt's real size arrives with the answer anyway, so the estimate is a documented
approximation: **one token per four bytes** of the JSON-encoded messages (or embeddings input)
and tools, plus four per message. English runs at about four characters a token; JSON keys,
punctuation and the per-message overhead make it slightly generous for chat, and CJK text (three
bytes a character, about one token a character) is under-counted by a quarter at worst. The
estimate only has to be close: limits and budgets reserve it, then settle the real usage.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from junction.plugins.call import Call
from junction.plugins.protocols import InferenceRequest
from junction.plugins.store_guard import GuardedConfig
from junction.schemas.chat import ChatRequest

_encode = msgspec.json.Encoder().encode
Tokens = Annotated[int, msgspec.Meta(ge=0)]
#: Tokens every message costs beyond its content (role, separators), as OpenAI counts them.
_PER_MESSAGE = 4


class ReservationConfig(GuardedConfig):
    """Config shared by the plugins that reserve before a call (``rate-limit``, ``budget``)."""

    #: Output tokens reserved for a request that sets no ``max_tokens`` /
    #: ``max_completion_tokens``: a typical answer, not the model's whole output window (which
    #: would block a small budget while recorded spend is $0). Settling corrects it.
    default_output_tokens: Tokens = 1024
    #: The same, per model (as the call routes it: ``provider/model`` or an alias).
    output_tokens: dict[str, Tokens] = {}

    def output_cap(self, call: Call) -> int:
        """The output tokens the call may produce: its own cap, else this config's reservation."""
        request = call.request
        if not isinstance(request, ChatRequest):
            return 0  # embeddings produce no output tokens
        cap = request.output_token_limit()
        if cap is not None:
            return max(cap, 0)
        return self.output_tokens.get(request.model, self.default_output_tokens)


class PromptTokens(msgspec.Struct, gc=False):
    """The call's prompt estimate, computed once and shared by every plugin that asks."""

    tokens: int


def prompt_tokens(call: Call) -> int:
    """The estimated prompt tokens of ``call.request`` (see the module docstring)."""
    known = call.state.get(PromptTokens)
    if known is not None:
        return known.tokens
    tokens = estimate_prompt(call.request)
    call.state[PromptTokens] = PromptTokens(tokens)
    return tokens


def estimate_prompt(request: InferenceRequest) -> int:
    """The estimated prompt tokens of a request (see the module docstring)."""
    if isinstance(request, ChatRequest):
        size = len(_encode(request.messages))
        if request.tools:
            size += len(_encode(request.tools))
        tokens = -(-size // 4) + _PER_MESSAGE * len(request.messages)
    else:
        tokens = -(-len(_encode(request.input)) // 4)
    return tokens


class CallIds:
    """Ids of calls in the shared windows and ledgers: a random prefix per process and a
    counter, unique across nodes and workers without a random draw per call."""

    __slots__ = ("_prefix", "_next")

    def __init__(self) -> None:
        import itertools
        import os

        self._prefix = os.urandom(6).hex()
        self._next = itertools.count()

    def new(self) -> str:
        return f"{self._prefix}{next(self._next):x}"
