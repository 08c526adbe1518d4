"""The relay loop every streaming ingress shares: unified events in, its SSE bytes out."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from junction.errors import JunctionError

log = logging.getLogger("junction.ingress")


async def relay(
    events: AsyncIterator[Any],
    write: Callable[[Any], bytes | None],
    error_event: Callable[[Exception], bytes],
    finish: Callable[[], bytes] | None = None,
) -> AsyncIterator[bytes]:
    """The bytes ``write`` makes of each event, then ``finish()`` (owed when the stream ended
    without its done event). The status went out with the first byte, so a failure after it can
    only reach the client as the format's ``error_event``, which the SDKs raise."""
    try:
        async for event in events:
            data = write(event)
            if data is not None:
                yield data
        if finish is not None and (tail := finish()):
            yield tail
    except JunctionError as error:
        yield error_event(error)
    except Exception as error:  # not ours: logged with its traceback, the client gets a generic error
        log.exception("a stream failed after it started")
        yield error_event(error)
    finally:
        await events.aclose()  # type: ignore[attr-defined]
