"""Server-sent events parsing for upstream streams (the WHATWG event-stream format)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

import msgspec

from junction.errors import UpstreamError


class SSEEvent(msgspec.Struct, frozen=True):
    data: str
    event: str | None = None


async def iter_lines(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """Split a byte stream into lines (without the line ending), whatever the chunk boundaries.

    Unlike a reader's ``readline`` this has no maximum line length, so one huge ``data:`` line
    (a large tool call, a base64 image) cannot break the stream.
    """
    pending = b""
    async for chunk in chunks:
        if pending:
            chunk = pending + chunk
        lines = chunk.split(b"\n")
        pending = lines.pop()
        for line in lines:
            yield line[:-1] if line.endswith(b"\r") else line
    if pending:
        yield pending


async def iter_sse(chunks: AsyncIterable[bytes]) -> AsyncIterator[SSEEvent]:
    """Yield one :class:`SSEEvent` per dispatched event (a blank line ends an event)."""
    data: list[str] = []
    event: str | None = None
    async for raw in iter_lines(chunks):
        if not raw:
            if data:
                yield SSEEvent("\n".join(data), event)
            data, event = [], None
            continue
        try:
            line = raw.decode("utf-8")  # per line, so a character split between chunks is whole here
        except UnicodeDecodeError as error:
            raise UpstreamError(f"the upstream stream is not valid UTF-8: {error}",
                                code="upstream_protocol_error") from None
        if line.startswith(":"):
            continue  # a comment / keep-alive
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    if data:
        yield SSEEvent("\n".join(data), event)
