"""Micro-batching: concurrent embeddings requests of one model are encoded together, in one
thread that owns the models (so each is loaded once per worker and never used concurrently).

Closing ends the batching loop and fails every request it still holds (queued, gathered, or
being encoded) with a 503, so no caller waits for an answer that can no longer come.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from junction.errors import JunctionError, UpstreamError, UpstreamOverloaded
from junction.tasks import end_if_cancel_dropped, stop

log = logging.getLogger("junction.local")


@dataclass(slots=True)
class _Request:
    model: str
    texts: list[str]
    done: asyncio.Future[tuple[list[list[float]], int]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())


class Batcher:
    def __init__(self, batch_size: int, wait_seconds: float, load: Callable[[str], Any]) -> None:
        self._batch_size = batch_size
        self._wait = wait_seconds
        self._load = load
        self._models: dict[str, Any] = {}
        self._queue: asyncio.Queue[_Request] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="junction-local-embeddings")
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """End the batching loop; requests still waiting for it fail (503) rather than hang."""
        if self._task is not None:
            await stop(self._task)
            self._task = None
        if self._queue is not None:
            queued = []
            while not self._queue.empty():
                queued.append(self._queue.get_nowait())
            _fail(queued, _closing())
            self._queue = None
        self._closed = True
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def encode(self, model: str, texts: list[str]) -> tuple[list[list[float]], int]:
        """Unit-length vectors of ``texts`` and the tokens they took."""
        if self._closed:
            raise _closing()
        if self._queue is None:
            raise RuntimeError("the local embeddings provider is not started")
        request = _Request(model, texts)
        await self._queue.put(request)
        return await request.done

    async def _run(self) -> None:
        queue = self._queue
        assert queue is not None
        loop = asyncio.get_running_loop()
        held: _Request | None = None  # came while a batch of another model was gathered: leads the next
        batch: list[_Request] = []
        try:
            while True:
                end_if_cancel_dropped()  # see junction.tasks: close() must not wait for ever
                first = held or await queue.get()
                held = None
                batch, size = [first], len(first.texts)
                deadline = loop.time() + self._wait
                while size < self._batch_size:
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a cancel that
                    # arrives as the get completes, and the loop would outlive close().
                    try:
                        async with asyncio.timeout_at(deadline):
                            more = await queue.get()
                    except TimeoutError:
                        break
                    if more.model != first.model:
                        held = more
                        break
                    batch.append(more)
                    size += len(more.texts)
                await self._answer(loop, batch)
                batch = []
        except asyncio.CancelledError:  # closing: what was taken from the queue fails, not hangs
            _fail([*batch, *([held] if held is not None else [])], _closing())
            raise

    async def _answer(self, loop: asyncio.AbstractEventLoop, batch: list[_Request]) -> None:
        """Encode ``batch`` in the models' thread; each request gets its own vectors and tokens."""
        first = batch[0]
        texts = [text for request in batch for text in request.texts]
        try:
            vectors, tokens = await loop.run_in_executor(self._executor, self._encode, first.model, texts)
        except Exception as error:  # every waiting request hears it; the loop goes on
            log.exception("local embeddings with %s failed", first.model)
            _fail(batch, UpstreamError(f"local model {first.model!r} failed: {type(error).__name__}",
                                       code="local_model_failed"))
            return
        start = 0
        for request in batch:
            count = len(request.texts)
            share = sum(tokens[start:start + count])
            if not request.done.done():
                request.done.set_result((vectors[start:start + count], share))
            start += count

    def _encode(self, name: str, texts: list[str]) -> tuple[list[list[float]], list[int]]:
        model = self._models.get(name)
        if model is None:
            model = self._models[name] = self._load(name)
        vectors = model.encode(texts, batch_size=self._batch_size, normalize_embeddings=True,
                               convert_to_numpy=True, show_progress_bar=False)
        tokens = [len(ids) for ids in model.tokenizer(texts, truncation=True)["input_ids"]]
        return vectors.tolist(), tokens


def _fail(requests: list[_Request], error: JunctionError) -> None:
    """Fail ``requests`` (those not answered yet, whose callers still wait) with ``error``."""
    for request in requests:
        if not request.done.done():
            request.done.set_exception(error)


def _closing() -> UpstreamOverloaded:
    return UpstreamOverloaded("the local embeddings provider is shutting down; try again",
                              code="local_provider_closed")
