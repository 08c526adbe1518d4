"""A pytest plugin: every answer a test receives from an OpenAI-compatible route, over httpx (the
``openai`` SDK's transport, and the tests' own httpx calls), is checked against OpenAI's published
OpenAPI document (see :mod:`tests.openapi.validation`).

The transports are wrapped, not replaced: requests go over the network unchanged, and each body is
checked as the client reads it (JSON when it is complete, SSE event by event). Problems are
collected and fail the test that was running (its teardown), naming the route and the member.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.openapi.validation import SpecChecker

_problems: list[str] = []


class _Observer:
    """Feeds a body's bytes to the checker as they pass."""

    def __init__(self, checker: SpecChecker, request: Any, response: Any) -> None:
        self._checker = checker
        self._method, self._path = request.method, request.url.path
        self._status = response.status_code
        self._sse = response.headers.get("content-type", "").startswith("text/event-stream")
        self._json = response.headers.get("content-type", "").startswith("application/json")
        self._buffer = b""

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        if not self._sse:
            return
        while b"\n\n" in self._buffer:
            block, self._buffer = self._buffer.split(b"\n\n", 1)
            data = "\n".join(
                line[5:].strip() for line in block.decode().splitlines() if line.startswith("data:")
            )
            if data:
                self._report(self._checker.check_event(self._method, self._path, data))

    def end(self) -> None:
        if self._json and self._buffer:
            self._report(self._checker.check_body(self._method, self._path, self._status, self._buffer))

    def _report(self, problems: list[str]) -> None:
        _problems.extend(f"{self._method} {self._path} → {problem}" for problem in problems)


def _stream_types(module: Any) -> tuple[type, type]:
    """Byte-stream wrappers for one httpx flavour (the ``openai`` SDK brings its own, ``httpx2``)."""

    class SyncStream(module.SyncByteStream):  # type: ignore[name-defined,misc]
        def __init__(self, inner: Any, observer: _Observer) -> None:
            self._inner, self._observer = inner, observer

        def __iter__(self) -> Iterator[bytes]:
            for chunk in self._inner:
                self._observer.feed(chunk)
                yield chunk
            self._observer.end()

        def close(self) -> None:
            self._inner.close()

    class AsyncStream(module.AsyncByteStream):  # type: ignore[name-defined,misc]
        def __init__(self, inner: Any, observer: _Observer) -> None:
            self._inner, self._observer = inner, observer

        async def __aiter__(self) -> AsyncIterator[bytes]:
            async for chunk in self._inner:
                self._observer.feed(chunk)
                yield chunk
            self._observer.end()

        async def aclose(self) -> None:
            await self._inner.aclose()

    return SyncStream, AsyncStream


def _http_modules() -> list[Any]:
    modules = [httpx]
    try:
        import httpx2  # the openai SDK's transport, when installed
    except ImportError:
        return modules
    return [*modules, httpx2]


@pytest.fixture(scope="session", autouse=True)
def openai_spec_checks() -> Iterator[None]:
    checker = SpecChecker()
    restore: list[tuple[Any, str, Any]] = []
    for module in _http_modules():
        sync_stream, async_stream = _stream_types(module)
        send, send_async = module.HTTPTransport.handle_request, module.AsyncHTTPTransport.handle_async_request

        def handle_request(self: Any, request: Any, send: Any = send, wrap: Any = sync_stream) -> Any:
            response = send(self, request)
            response.stream = wrap(response.stream, _Observer(checker, request, response))
            return response

        async def handle_async_request(
            self: Any, request: Any, send: Any = send_async, wrap: Any = async_stream
        ) -> Any:
            response = await send(self, request)
            response.stream = wrap(response.stream, _Observer(checker, request, response))
            return response

        restore += [
            (module.HTTPTransport, "handle_request", send),
            (module.AsyncHTTPTransport, "handle_async_request", send_async),
        ]
        module.HTTPTransport.handle_request = handle_request
        module.AsyncHTTPTransport.handle_async_request = handle_async_request
    try:
        yield
    finally:
        for owner, name, original in restore:
            setattr(owner, name, original)


@pytest.fixture(autouse=True)
def answers_match_openai_spec(openai_spec_checks: None) -> Iterator[None]:
    _problems.clear()
    yield
    found, _problems[:] = list(_problems), []
    assert not found, "answers that do not match OpenAI's OpenAPI document:\n" + "\n".join(found[:20])
