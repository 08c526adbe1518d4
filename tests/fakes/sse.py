"""Reading Anthropic-style SSE bodies in tests (each frame an ``event:`` line and a ``data:`` line)."""

from __future__ import annotations

import json
from typing import Any


def named_events(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    """``(event name, decoded data)`` for each frame of ``data``, in order."""
    events = []
    for frame in data.decode().strip().split("\n\n"):
        name_line, data_line = frame.split("\n")
        events.append((name_line.removeprefix("event: "), json.loads(data_line.removeprefix("data: "))))
    return events
