"""Token-aware chunking with overlap.

Tokens are counted as words and punctuation marks (``\\w+|[^\\w\\s]``), which tracks the BPE and
WordPiece token counts of embedding models closely for prose without tying the store to one
tokenizer. A chunk is at most ``size`` such tokens; it ends after a sentence or paragraph when
one ends in the last third of the window, so chunks rarely cut a sentence; the next chunk starts
``overlap`` tokens before the previous one ended.
"""

from __future__ import annotations

import re

TOKEN = re.compile(r"\w+|[^\w\s]")
_SENTENCE_END = frozenset(".!?")


def count_tokens(text: str) -> int:
    return sum(1 for _ in TOKEN.finditer(text))


def chunk_text(text: str, size: int, overlap: int) -> list[str]:
    """The chunks of ``text`` (``0 <= overlap < size``)."""
    spans = [match.span() for match in TOKEN.finditer(text)]
    chunks: list[str] = []
    start, total = 0, len(spans)
    while start < total:
        end = min(start + size, total)
        if end < total:
            end = _sentence_end(text, spans, start, end, size) or end
        chunks.append(text[spans[start][0]:spans[end - 1][1]])
        if end >= total:
            break
        start = max(end - overlap, start + 1)
    return chunks


def _sentence_end(text: str, spans: list[tuple[int, int]], start: int, end: int, size: int) -> int | None:
    """The end (exclusive token index) of the last sentence or paragraph ending in the window's
    last third, if any."""
    for index in range(end - 1, start + (2 * size) // 3 - 1, -1):
        token_start, token_end = spans[index]
        if text[token_start:token_end] in _SENTENCE_END or "\n\n" in text[token_end:spans[index + 1][0]]:
            return index + 1
    return None
