"""``POST /v1/chat/completions`` as a raw ASGI handler in front of Litestar: the hot path.

The Litestar route (``app/ingress/openai.py``) stays registered (OpenAPI, and the requests this
path hands back); this one answers the same requests with less machinery per request: the
headers read once into a dict, the body read once by the body guard's own reader, msgspec
straight from bytes, response headers as pre-encoded byte pairs, and no middleware stack, router,
DI or Response objects. Auth, request ids, body limits and error shapes are those of the
Litestar route; ``tests/integration/test_lean_ingress.py`` compares the two byte for byte.

Handed back to Litestar (``handle`` returns False before reading anything): job submissions
(``x-junction-async: true``) and, when CORS is configured, requests with an ``Origin``.
Not installed at all when a plugin adds ASGI middleware (it must see every request), or with
``[server] lean_ingress = false``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from litestar.exceptions import ClientException, HTTPException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.types import Receive, Scope, Send

from junction.body_guard import read_body
from junction.errors import (
    JunctionError,
    error_body,
    error_for_http_exception,
    log_server_error,
    unexpected_error,
)
from junction.formats.openai import ChunkWriter, decode_chat_request, encode_chat_response
from junction.ingress.openai import SSE_HEADERS, sse_body
from junction.pipeline import Gateway
from junction.plugins.call import Call
from junction.request_id import REQUEST_ID_HEADER, request_id
from junction.settings import Settings

PATH = "/v1/chat/completions"
_JSON = (b"content-type", b"application/json")
_SSE_START = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in SSE_HEADERS.items()]
_SSE_TYPE = (b"content-type", b"text/event-stream; charset=utf-8")
_END = {"type": "http.response.body", "body": b"", "more_body": False}
#: Gives up the CPU (POSIX; None on Windows). See ``LeanChat.handle``.
_YIELD_CPU = getattr(os, "sched_yield", None)


def _encoded(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


def request_headers(scope: Scope) -> dict[str, str]:
    """The request's headers by (lower-case) name; the first of repeated ones, as Litestar's."""
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1")
        if key not in headers:
            headers[key] = value.decode("latin-1")
    return headers


class LeanChat:
    """One per app; no per-request state on ``self``. ``requests_in_flight``: how many HTTP
    requests the app is serving now, this one included (``JunctionApp.requests_in_flight``)."""

    def __init__(self, gateway: Gateway, settings: Settings, requests_in_flight: Callable[[], int]) -> None:
        self._gateway = gateway
        self._max_bytes = settings.server.max_body_bytes
        self._timeout = settings.limits.body_read_timeout_seconds
        self._max_depth = settings.limits.max_json_depth
        self._cors = bool(settings.server.cors.allow_origins)
        self._requests_in_flight = requests_in_flight

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer the request, or return False (nothing read or sent) for Litestar to answer it."""
        headers = request_headers(scope)
        if headers.get("x-junction-async") == "true" or (self._cors and "origin" in headers):
            return False
        ending: list[Call] = []  # a call answered whole: its end hooks run here, after the answer
        whole = False
        try:
            whole = await self._answer(scope, headers, receive, send, ending)
        finally:
            if whole and self._requests_in_flight() == 1 and _YIELD_CPU is not None:
                # The answer is with Granian's I/O thread now, which was just woken to write it;
                # what is left here (the call's end hooks, the access line, the task's teardown)
                # can wait. When that thread shares this core, yielding lets it write first
                # instead of after us (measured: c=1, one core, ~25 µs sooner per response). Only
                # when no other request is in flight: under load it would break up the I/O
                # thread's batches (measured: +35% CPU per request at c=32 when done every time).
                # Only after a whole answer: after an error the body may be unread, and the
                # connection is then closed once this task ends; yielding first would send the
                # response ahead of that close, and a client could reuse the connection in between
                # (tests/integration/test_bad_input.py::test_huge_body_is_413 saw it).
                _YIELD_CPU()
            if ending:
                ending[0].run_ended()
        return True

    async def _answer(self, scope: Scope, headers: dict[str, str], receive: Receive, send: Send,
                      ending: list[Call]) -> bool:
        """Respond; True for a whole (non-streamed) answer, its request body read to the end. The
        call of a JSON reply goes into ``ending`` as soon as the gateway returned it: its end
        hooks are the caller's to run once the answer went out (or failed to: see
        ``Gateway.complete``'s ``caller_ends``)."""
        rid = request_id(scope).encode()
        started = False
        try:
            principal = await self._gateway.authenticate(headers)  # before the body is read
            length = headers.get("content-length")
            announced = None
            if length is not None:
                try:
                    announced = int(length)
                except ValueError:
                    raise ClientException(f"Invalid content-length: {length!r}") from None
                if announced > self._max_bytes:
                    raise RequestEntityTooLarge
            body = await read_body(receive, self._max_bytes, self._timeout, self._max_depth, announced)
            chat = decode_chat_request(body)
            call = Call(request_id=rid.decode(), endpoint="chat.completions", principal=principal,
                        request=chat, headers=headers)
            if chat.stream:
                events = await self._gateway.open_stream(call)
                start = [*_SSE_START, *_encoded(call.response_headers), _SSE_TYPE, (REQUEST_ID_HEADER, rid)]
                started = True
                await send({"type": "http.response.start", "status": 200, "headers": start})
                await _stream(sse_body(events, ChunkWriter(include_usage=chat.wants_usage_in_stream)),
                              receive, send)
                return False
            reply = await self._gateway.complete(call, caller_ends=True)
            ending.append(call)
            answer = encode_chat_response(reply)
            extra = call.response_headers
            start = [*_encoded(extra)] if extra else []
            start += (_JSON, (b"content-length", str(len(answer)).encode()), (REQUEST_ID_HEADER, rid))
            started = True
            await send({"type": "http.response.start", "status": 200, "headers": start})
            await send({"type": "http.response.body", "body": answer, "more_body": False})
            return True
        except JunctionError as error:
            if started:
                raise
            log_server_error("POST", PATH, error)
            await _send_error(send, error, error.status, rid)
        except HTTPException as error:
            if started:
                raise
            await _send_error(send, error_for_http_exception(error, "POST", PATH, max_body_bytes=self._max_bytes),
                              error.status_code, rid)
        except Exception as error:
            if started:
                raise
            await _send_error(send, unexpected_error("POST", PATH, error), 500, rid)
        return False


async def _send_error(send: Send, error: JunctionError, status: int, rid: bytes) -> None:
    body = error_body(error)
    headers = _encoded(error.headers) if error.headers else []
    headers += (_JSON, (b"content-length", str(len(body)).encode()), (REQUEST_ID_HEADER, rid))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _stream(chunks: Any, receive: Receive, send: Send) -> None:
    """Send ``chunks``; when the client goes away, stop at once and close them (which closes the
    upstream). A task waits for the disconnect and cancels this one, as Litestar's Stream does."""
    task = asyncio.current_task()
    assert task is not None
    gone = False

    def disconnected(done: asyncio.Future[Any]) -> None:
        nonlocal gone, waiter
        if done.cancelled() or done.exception() is not None:
            return
        kind = done.result()["type"]
        if kind == "http.disconnect":
            gone = True
            task.cancel()
        elif kind == "http.request":  # the body's end, not read (read_body stops at Content-Length)
            waiter = asyncio.ensure_future(receive())
            waiter.add_done_callback(disconnected)

    waiter = asyncio.ensure_future(receive())
    waiter.add_done_callback(disconnected)
    try:
        async for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        waiter.remove_done_callback(disconnected)
        await send(_END)
    except asyncio.CancelledError:
        if not gone:
            raise
        task.uncancel()
    finally:
        waiter.remove_done_callback(disconnected)
        waiter.cancel()
        await chunks.aclose()
