"""Process logging: one line per record on stderr, JSON for machines or readable text for a
terminal, each with its time, level, logger and the request id of the request it belongs to;
and the access log, one line per HTTP request.

``[logging]`` (see :class:`LoggingSettings`). Records never carry secrets or bodies: the access
line names the method, the path (never the query string), the status, the duration, and for
inference calls the deployment and org; nothing in Junction logs a request or response body.

The request id reaches every record through a :class:`~contextvars.ContextVar` that the access
middleware sets for the request's task (the one piece of per-request state outside the Call:
log records are made far from any Call, e.g. in a store).

The access line is the one record per request, so it skips the logging machinery when it can:
with Junction's handler the only one it reaches, :meth:`JunctionHandler.access` formats it directly
(the same line a record would give) and, when the stream is not a terminal, buffers it: written
with the next other record, when 64 KiB are waiting, 0.2 s after the first waiting line, and when
the process flushes its logs (app shutdown, interpreter exit). On a terminal every line is
written at once.
"""

from __future__ import annotations

import asyncio
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


class JunctionHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`configure_logging` installs; also takes access lines without records."""

    #: Buffered access lines are written once this many characters wait, or this many seconds
    #: after the first one.
    FLUSH_CHARS = 65_536
    FLUSH_SECONDS = 0.2

    def __init__(self, stream: Any, *, use_json: bool) -> None:
        super().__init__(stream)
        self.junction = True
        self.use_json = use_json
        self.setFormatter(JsonFormatter() if use_json else TextFormatter())
        self.addFilter(_RequestIdFilter())
        self._buffered = not _is_terminal(stream)
        self._waiting: list[str] = []
        self._waiting_chars = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        self._second = -1  # the whole second _stamp_prefix was made for
        self._stamp_prefix = ""

    def access(self, method: str, path: str, status: int, duration_ms: float, request_id: str | None,
               model: str | None, org_id: str | None) -> None:
        """One access line, as ``junction.access`` at INFO would log it through a record."""
        extra = (f" model={model}" if model is not None else "") + (f" org_id={org_id}" if org_id is not None else "")
        message = f"{method} {path} {status} {duration_ms:.1f}ms{extra}"
        if self.use_json:
            line: dict[str, Any] = {"ts": self._stamp(), "level": "INFO", "logger": ACCESS_LOGGER,
                                    "message": message}
            if request_id:
                line["request_id"] = request_id
            line.update(method=method, path=path, status=status, duration_ms=round(duration_ms, 2))
            if model is not None:
                line["model"] = model
            if org_id is not None:
                line["org_id"] = org_id
            text = JsonFormatter._encode(line).decode()
        else:
            text = f"{self._stamp()} INFO    {ACCESS_LOGGER}{f' [{request_id}]' if request_id else ''} {message}"
        with self.lock:  # type: ignore[union-attr]
            self._waiting.append(text + self.terminator)
            self._waiting_chars += len(text) + 1
            if not self._buffered or self._waiting_chars >= self.FLUSH_CHARS:
                self._drain()
                return
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop in this thread: nothing would come back to flush
                self._drain()
                return
            if self._timer is None or self._timer_loop is not loop:  # (a loop that ended left its timer)
                self._timer, self._timer_loop = loop.call_later(self.FLUSH_SECONDS, self.flush), loop

    def _stamp(self) -> str:
        """``datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")``, its date and
        time of day made once per second."""
        seconds, micros = divmod(round(time.time() * 1_000_000), 1_000_000)
        if seconds != self._second:
            self._stamp_prefix = datetime.fromtimestamp(seconds, UTC).isoformat()[:19]
            self._second = seconds
        return f"{self._stamp_prefix}.{micros // 1000:03d}+00:00"

    def _drain(self) -> None:
        """Write the waiting access lines (the caller holds the lock)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._waiting:
            text = "".join(self._waiting)
            self._waiting.clear()
            self._waiting_chars = 0
            try:
                self.stream.write(text)
                self.stream.flush()
            except Exception:  # as logging does: a broken stream must not fail the request
                self.handleError(logging.makeLogRecord({"msg": "access lines", "name": ACCESS_LOGGER}))

    def emit(self, record: logging.LogRecord) -> None:
        if self._waiting:  # the access lines before it first, so the log stays in order
            self._drain()
        super().emit(record)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._drain()
        super().flush()


def access_handler(log: logging.Logger) -> JunctionHandler | None:
    """Junction's handler when an INFO record of ``log`` would reach it and nothing else (so an
    access line may skip the record); otherwise ``None``."""
    if log.handlers or log.filters or log.disabled or not log.propagate or not log.isEnabledFor(logging.INFO):
        return None
    parent = log.parent
    while parent is not None and not parent.handlers:  # "junction" and other intermediate loggers
        if parent.filters or not parent.propagate:
            return None
        parent = parent.parent
    if parent is None or parent.parent is not None or parent.filters or len(parent.handlers) != 1:
        return None
    handler = parent.handlers[0]
    if type(handler) is not JunctionHandler or handler.level > logging.INFO or len(handler.filters) != 1:
        return None
    return handler


def flush_logs() -> None:
    """Write whatever Junction's handler still buffers (the app's shutdown calls it)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, JunctionHandler):
            handler.flush()


def configure_logging(settings: LoggingSettings, stream: Any = None) -> None:
    """Install Junction's handler on the root logger (replacing one installed before, so building
    the app twice in a process does not double every line)."""
    stream = stream or sys.stderr
    use_json = settings.format == "json" or (settings.format == "auto" and not _is_terminal(stream))
    handler = JunctionHandler(stream, use_json=use_json)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "junction", False)]:
        old.flush()
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
                self._line(scope, status, (time.perf_counter() - started) * 1000, current)
            _current.reset(token)

    def _line(self, scope: Any, status: int, duration: float, current: RequestLog) -> None:
        log = self.log
        handler = access_handler(log)
        if handler is not None:  # the usual case: no record, straight to Junction's handler
            handler.access(scope["method"], scope["path"], status, duration, current.request_id,
                           current.model, current.org_id)
            return
        if not log.isEnabledFor(logging.INFO):
            return
        fields = {"method": scope["method"], "path": scope["path"], "status": status,
                  "duration_ms": round(duration, 2)}
        if current.model is not None:
            fields["model"] = current.model
        if current.org_id is not None:
            fields["org_id"] = current.org_id
        extra = "".join(f" {key}={fields[key]}" for key in ("model", "org_id") if key in fields)
        # Made and handled directly: ``log.info`` would also walk the stack to find its caller
        # (this line, every time), a good part of the line's cost.
        log.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, "%s %s %s %.1fms%s",
                                  (scope["method"], scope["path"], status, duration, extra),
                                  None, func="__call__", extra={"fields": fields}))
