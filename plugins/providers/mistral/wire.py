"""Mistral's answers where they differ in shape from OpenAI's.

Reasoning models (Magistral, and others with ``reasoning_effort``) answer with ``content`` as a list
of chunks rather than a string: ``{"type": "thinking", "thinking": [<text chunks>]}`` for the
reasoning, then ``{"type": "text", "text": ...}`` for the answer, in a response's message and in
each stream delta alike. These Structs read that shape and, once decoded, leave the text in
``content`` and the thinking in ``reasoning``, where every reader of the OpenAI shapes looks.
"""

from __future__ import annotations

import msgspec

from junction.formats.openai import Chunk, ChunkChoice, Delta
from junction.schemas.chat import ChatResponse, Choice, Message


class ContentChunk(msgspec.Struct):
    """Any chunk; types other than ``text`` and ``thinking`` (e.g. references) carry no text."""

    type: str
    text: str | None = None
    thinking: list[ContentChunk] | None = None


def split_chunks(chunks: list[ContentChunk]) -> tuple[str | None, str | None]:
    """(text, thinking) of a chunked content, each ``None`` when it has none."""
    text: list[str] = []
    thinking: list[str] = []
    for chunk in chunks:
        if chunk.type == "text" and chunk.text:
            text.append(chunk.text)
        elif chunk.type == "thinking":
            thinking.extend(inner.text for inner in chunk.thinking or ()
                            if inner.type == "text" and inner.text)
    return "".join(text) or None, "".join(thinking) or None


class MistralMessage(Message):
    content: str | list[ContentChunk] | None = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if isinstance(self.content, list):
            self.content, self.reasoning = split_chunks(self.content)


class MistralChoice(Choice):
    message: MistralMessage


class MistralResponse(ChatResponse):
    choices: list[MistralChoice]  # type: ignore[assignment]


class MistralDelta(Delta):
    content: str | list[ContentChunk] | None = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if isinstance(self.content, list):
            self.content, self.reasoning = split_chunks(self.content)


class MistralChunkChoice(ChunkChoice):
    delta: MistralDelta


class MistralChunk(Chunk):
    choices: list[MistralChunkChoice] = []  # type: ignore[assignment]


response_decoder = msgspec.json.Decoder(MistralResponse)
chunk_decoder = msgspec.json.Decoder(MistralChunk)
