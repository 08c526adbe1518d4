"""Granian's options for ``junction serve``: ``granian.toml`` (from the working directory, else the
one shipped in the package), checked against Granian's own signature and enums, with the HTTP/1
header limits of ``[limits]``."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from junction.errors import ConfigError
from junction.resources import GRANIAN_FILE, default_granian_file
from junction.settings import Settings

_GRANIAN_ENUMS = {
    "interface": "Interfaces",
    "loop": "Loops",
    "http": "HTTPModes",
    "runtime_mode": "RuntimeModes",
    "task_impl": "TaskImpl",
    "log_level": "LogLevels",
}


def granian_file() -> Path | None:
    """granian.toml from the working directory, else the one shipped in the package."""
    local = Path.cwd() / GRANIAN_FILE
    return local if local.is_file() else default_granian_file()


def granian_options(path: Path | None) -> dict[str, Any]:
    import inspect

    from granian import Granian, constants, log

    if path is None:
        return {}
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("granian", {})
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    accepted = set(inspect.signature(Granian.__init__).parameters) - {"self", "target", "factory"}
    options: dict[str, Any] = {}
    for key, value in table.items():
        if key not in accepted:
            raise ConfigError(f"{path}: granian.{key}: unknown Granian option")
        enum_name = _GRANIAN_ENUMS.get(key)
        if enum_name:
            enum = getattr(constants, enum_name, None) or getattr(log, enum_name)
            try:
                value = enum(value)
            except ValueError:
                allowed = ", ".join(item.value for item in enum)
                raise ConfigError(f"{path}: granian.{key}: {value!r} is not one of {allowed}") from None
        options[key] = value
    return options


def http1_settings(settings: Settings, table: Any = None) -> Any:
    """Granian's HTTP/1 settings: ``[granian.http1_settings]`` of granian.toml if any, with the
    header limits of ``[limits]`` (a slow or idle client is dropped after
    ``header_read_timeout_seconds``: hyper's header timer also runs while a kept-alive connection
    waits for its next request; headers beyond ``max_header_bytes`` are refused with 431)."""
    from granian.http import HTTP1Settings

    if isinstance(table, HTTP1Settings):
        base = table
    else:
        try:
            base = HTTP1Settings(**(table or {}))
        except TypeError as error:
            raise ConfigError(f"granian.http1_settings: {error}") from None
    base.header_read_timeout = int(settings.limits.header_read_timeout_seconds * 1000)
    base.max_buffer_size = settings.limits.max_header_bytes
    return base
