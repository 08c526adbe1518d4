"""The scripting interface between the conformance kit and a provider's fake upstream.

A fake upstream (a real HTTP server speaking one provider's protocol) satisfies
:class:`ConformanceUpstream`: the kit queues provider-neutral :class:`Reply` objects and errors,
and reads back what the fake received as a :class:`SeenRequest`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from aiohttp import web

#: A 1×1 PNG, small enough to read in a failure message.
PIXEL_PNG_BASE64 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5"
                    "ErkJggg==")
PIXEL_DATA_URL = f"data:image/png;base64,{PIXEL_PNG_BASE64}"

FinishKind = Literal["stop", "length", "tool_calls", "content_filter"]


@dataclass
class ToolCallReply:
    """A tool call the fake model makes. Ids are the fake's business: some protocols have none."""

    name: str
    arguments: dict[str, Any]


@dataclass
class Reply:
    """What the fake model answers to the next chat request, in provider-neutral terms.

    A fake renders it in its own protocol: as one JSON response, or as a stream that splits the
    text into pieces of ``chunk_size`` characters and every tool call's arguments across several
    chunks. ``finish`` defaults to ``tool_calls`` when there are tool calls, else ``stop``.
    """

    text: str = ""
    tool_calls: list[ToolCallReply] = field(default_factory=list)
    finish: FinishKind | None = None
    prompt_tokens: int = 11
    completion_tokens: int = 7
    #: Reported only when non-zero, in the protocol's own field for prompt-cache reads.
    cached_tokens: int = 0
    #: Reported only when non-zero, in the protocol's own field for reasoning/thinking tokens.
    reasoning_tokens: int = 0
    chunk_size: int = 3
    #: Streaming only: after the first text piece, send nothing more until the client has gone
    #: (then count it in ``disconnects``). Use :func:`hold_until_disconnected`.
    hold: bool = False

    @property
    def finish_kind(self) -> FinishKind:
        return self.finish or ("tool_calls" if self.tool_calls else "stop")


@dataclass
class SeenRequest:
    """What the fake upstream received in its last chat request, in provider-neutral terms."""

    model: str
    stream: bool
    #: Every text the request carried (system, user, assistant turns), in order.
    texts: list[str] = field(default_factory=list)
    #: Images as received: ``data:<mime>;base64,<data>`` for inline bytes, else the URL/URI.
    images: list[str] = field(default_factory=list)
    #: Names of the tools declared to the model.
    tool_names: list[str] = field(default_factory=list)
    #: Assistant tool calls replayed from earlier turns: (name, arguments).
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: Tool results sent back, as text (a JSON object's text for protocols that take objects).
    tool_results: list[str] = field(default_factory=list)
    #: The JSON schema the output was constrained to, when any.
    json_schema: dict[str, Any] | None = None


@runtime_checkable
class ConformanceUpstream(Protocol):
    """The small interface the kit needs from a provider's fake upstream.

    The fake is a real HTTP server (see :class:`junction.testing.upstream.FakeUpstream`) that validates
    requests like the real API, answers in the real protocol, and offers these controls.
    """

    #: The value for the provider's ``base_url`` config key.
    base_url: str
    #: Streams whose client went away before the fake finished writing them.
    disconnects: int

    def start(self) -> Any: ...

    def stop(self) -> None: ...

    def reset(self) -> None:
        """Forget recorded requests and queued replies."""
        ...

    def queue_reply(self, reply: Reply) -> None:
        """Answer the next chat request with ``reply`` (JSON or stream, as it asks)."""
        ...

    def queue_error(self, status: int, message: str, *, retry_after: int | None = None) -> None:
        """Fail the next request with ``status``, the body in the protocol's own error shape and,
        for 429, ``retry_after`` seconds conveyed the way the real API does it."""
        ...

    def last_seen(self) -> SeenRequest:
        """The last chat request received, decoded from the protocol."""
        ...


async def hold_until_disconnected(request: web.BaseRequest, limit: float = 15.0) -> bool:
    """For a fake's stream handler: wait until the HTTP client has closed the connection.

    aiohttp does not cancel a handler whose client left, and a handler that writes nothing never
    notices, so this watches the transport. Returns ``False`` if the client is still there after
    ``limit`` seconds (the kit's cancellation test then fails on the fake's ``disconnects``).
    """
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        transport = request.transport
        if transport is None or transport.is_closing():
            return True
        await asyncio.sleep(0.02)
    return False
