"""The access line written straight by Junction's handler (no LogRecord) is the line the logging
path writes, in JSON and text; buffered lines come out before any later record and at a flush."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from junction.logs import (
    AccessLog,
    LoggingSettings,
    access_handler,
    configure_logging,
    current_request,
    flush_logs,
)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def _app(scope, receive, send):
    noted = current_request()
    if scope["path"] != "/plain" and noted is not None:
        noted.model, noted.org_id = "openai/gpt-4o-mini", "org-1"
    await send({"type": "http.response.start", "status": 201, "headers": []})


async def _noop_send(message):
    return None


async def _lines(fmt: str, stream: io.StringIO, *, through_records: bool) -> str:
    configure_logging(LoggingSettings(format=fmt), stream)
    access = logging.getLogger("junction.access")
    blocker = logging.Filter()  # any filter on the logger sends the line through a record
    if through_records:
        access.addFilter(blocker)
    assert (access_handler(access) is None) == through_records
    try:
        middleware = AccessLog(_app)
        for path in ("/v1/chat/completions", "/plain"):
            scope = {"type": "http", "method": "POST", "path": path, "query_string": b"",
                     "headers": [(b"x-request-id", b"rid-1")]}
            await middleware(scope, None, _noop_send)
        logging.getLogger("junction.other").warning("after")
    finally:
        access.removeFilter(blocker)
    flush_logs()
    return stream.getvalue()


def _normal(text: str) -> str:
    text = re.sub(r"\d+\.\dms|\"duration_ms\":[0-9.e-]+", "D", text)
    return re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", "TS", text)


@contextmanager
def junction_handler_alone() -> Iterator[None]:
    """Junction's handler alone on the root logger (pytest's capture handlers set aside), as in a worker."""
    root = logging.getLogger()
    level, others = root.level, list(root.handlers)
    for handler in others:
        root.removeHandler(handler)
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in others:
            root.addHandler(handler)
        root.setLevel(level)


@pytest.mark.parametrize(("fmt", "stream"), [("json", io.StringIO), ("text", Terminal), ("text", io.StringIO)])
def test_direct_access_lines_equal_the_records(fmt, stream):
    with junction_handler_alone():
        direct = asyncio.run(_lines(fmt, stream(), through_records=False))
        recorded = asyncio.run(_lines(fmt, stream(), through_records=True))
    assert _normal(direct) == _normal(recorded)
    lines = direct.splitlines()
    assert len(lines) == 3 and "after" in lines[2]  # the later record after the buffered lines
    assert "rid-1" in lines[0] and "model=openai/gpt-4o-mini org_id=org-1" in lines[0]
    if fmt == "json":
        first = json.loads(lines[0])
        assert first["logger"] == "junction.access" and first["status"] == 201 and first["org_id"] == "org-1"


def test_buffered_lines_wait_for_a_flush_but_a_terminal_gets_them_at_once():
    async def one(stream: io.StringIO) -> str:
        configure_logging(LoggingSettings(format="text"), stream)
        scope = {"type": "http", "method": "GET", "path": "/healthz", "query_string": b"", "headers": []}
        await AccessLog(_app)(scope, None, _noop_send)
        return stream.getvalue()

    with junction_handler_alone():
        assert asyncio.run(one(io.StringIO())) == ""  # piped: buffered until flushed
        assert "GET /healthz 201" in asyncio.run(one(Terminal()))

    async def timed() -> str:
        stream = io.StringIO()
        configure_logging(LoggingSettings(format="json"), stream)
        scope = {"type": "http", "method": "GET", "path": "/healthz", "query_string": b"", "headers": []}
        await AccessLog(_app)(scope, None, _noop_send)
        await asyncio.sleep(0.5)  # past the flush delay, with nothing else logged
        return stream.getvalue()

    with junction_handler_alone():
        assert json.loads(asyncio.run(timed()))["path"] == "/healthz"
