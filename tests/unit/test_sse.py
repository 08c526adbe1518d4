"""The upstream SSE parser, fed the byte chunks a socket may deliver."""

from __future__ import annotations

import pytest

from junction.errors import UpstreamError
from junction.upstream.sse import SSEEvent, iter_sse


async def events(*chunks: bytes) -> list[SSEEvent]:
    async def source():
        for chunk in chunks:
            yield chunk

    return [event async for event in iter_sse(source())]


async def test_a_multibyte_character_split_across_chunks_survives():
    raw = 'data: {"content":"né😀"}\n\n'.encode()
    cut = raw.index("😀".encode()) + 2  # inside the emoji's four bytes
    assert await events(raw[:cut], raw[cut:]) == [SSEEvent('{"content":"né😀"}')]


async def test_crlf_no_space_comments_event_names_and_multiline_data():
    stream = b": keep-alive\r\nevent: delta\r\ndata:one\r\ndata: two\r\n\r\ndata: [DONE]\r\n\r\n"
    assert await events(*[stream[i:i + 3] for i in range(0, len(stream), 3)]) == [
        SSEEvent("one\ntwo", "delta"), SSEEvent("[DONE]")]


async def test_a_line_that_is_not_utf8_is_an_upstream_error():
    with pytest.raises(UpstreamError, match="UTF-8"):
        await events(b'data: {"content":"\xff\xfe"}\n\n')
