"""Process logging: one line per record on stderr, JSON for machines or readable text for a
terminal, each with its time, level, logger and the request id of the request it belongs to;
and the access log, one line per HTTP request.

``[logging]`` (see :class:`LoggingSettings`). Records never carry secrets or bodies: the access
line names the method, the path (never the query string), the status, the duration, and for
inference calls the deployment and org; nothing in Junction logs a request or response body.

The request id reaches every record through a :class:`~contextvars.ContextVar` that the access
middleware sets for the request's task (the one piece of per-request state outside the Call:
log records are made far from any Call, e.g. in a store).
"""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from junction.request_id import request_id

ACCESS_LOGGER = "junction.access"


class LoggingSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: ``"auto"``: readable text when stderr is a terminal, JSON lines otherwise.
    format: Literal["auto", "json", "text"] = "auto"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: One ``junction.access`` line per HTTP request.
    access_log: bool = True


@dataclass(slots=True)
class RequestLog:
    """What the access line of one request says beyond HTTP; stages fill ``model`` and ``org``."""

    request_id: str
    model: str | None = None
    org_id: str | None = None


_current: ContextVar[RequestLog | None] = ContextVar("junction_request_log", default=None)


def current_request() -> RequestLog | None:
    """The request being served by this task, if any (to note its model and org)."""
    return _current.get()


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        current = _current.get()
        record.request_id = current.request_id if current is not None else None
        return True


class JsonFormatter(logging.Formatter):
    _encode = msgspec.json.Encoder().encode

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "request_id", None):
            line["request_id"] = record.request_id  # type: ignore[attr-defined]
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return self._encode(line).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        request = getattr(record, "request_id", None)
        text = f"{stamp} {record.levelname:<7} {record.name}{f' [{request}]' if request else ''} {record.getMessage()}"
        fields = getattr(record, "fields", None)
        if fields and record.name != ACCESS_LOGGER:
            text += " " + " ".join(f"{key}={value}" for key, value in fields.items())
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure_logging(settings: LoggingSettings, stream: Any = None) -> None:
    """Install Junction's handler on the root logger (replacing one installed before, so building
    the app twice in a process does not double every line)."""
    stream = stream or sys.stderr
    use_json = settings.format == "json" or (settings.format == "auto" and not _is_terminal(stream))
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    handler.addFilter(_RequestIdFilter())
    handler.junction = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "junction", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.level)


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class AccessLog:
    """ASGI middleware: binds the request id for every record of the request, and writes the
    request's access line when it ends (also when the app raised)."""

    def __init__(self, app: Any, *, enabled: bool = True) -> None:
        self.app = app
        self.enabled = enabled
        self.log = logging.getLogger(ACCESS_LOGGER)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        current = RequestLog(request_id(scope))
        token = _current.set(current)
        started = time.perf_counter()
        status = 500

        async def sending(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            if self.enabled:
                duration = (time.perf_counter() - started) * 1000
                fields = {"method": scope["method"], "path": scope["path"], "status": status,
                          "duration_ms": round(duration, 2)}
                if current.model is not None:
                    fields["model"] = current.model
                if current.org_id is not None:
                    fields["org_id"] = current.org_id
                extra = "".join(f" {key}={fields[key]}" for key in ("model", "org_id") if key in fields)
                log = self.log
                if log.isEnabledFor(logging.INFO):
                    # Made and handled directly: ``log.info`` would also walk the stack to find
                    # its caller (this line, every time), a good part of the line's cost.
                    log.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, "%s %s %s %.1fms%s",
                                              (scope["method"], scope["path"], status, duration, extra),
                                              None, func="__call__", extra={"fields": fields}))
            _current.reset(token)
