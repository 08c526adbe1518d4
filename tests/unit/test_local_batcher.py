"""The local embeddings provider's micro-batcher: concurrent requests of one model share one
encode, and closing it never leaves a caller waiting (nor waits for ever itself)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from junction.errors import UpstreamError, UpstreamOverloaded
from junction.providers.local.batcher import Batcher


class _Vectors(list):
    def tolist(self) -> list[list[float]]:
        return list(self)


class FakeModel:
    """What the batcher uses of a sentence-transformers model: ``encode`` and ``tokenizer``. A
    text's vector is ``[len(text), 1.0]``; its tokens are its words."""

    def __init__(self, gate: threading.Event | None = None, fails: bool = False) -> None:
        self.batches: list[list[str]] = []
        self._gate = gate
        self._fails = fails

    def encode(self, texts: list[str], **_: object) -> _Vectors:
        if self._gate is not None:
            self._gate.wait(10)
        if self._fails:
            raise RuntimeError("out of memory")
        self.batches.append(list(texts))
        return _Vectors([float(len(text)), 1.0] for text in texts)

    def tokenizer(self, texts: list[str], truncation: bool) -> dict[str, list[list[int]]]:
        return {"input_ids": [list(range(len(text.split()))) for text in texts]}


async def test_concurrent_requests_of_one_model_are_encoded_in_one_batch() -> None:
    model = FakeModel()
    batcher = Batcher(batch_size=16, wait_seconds=0.05, load=lambda name: model)
    batcher.start()
    try:
        first, second = await asyncio.gather(batcher.encode("m", ["one two", "three"]),
                                             batcher.encode("m", ["four five six"]))
    finally:
        await batcher.close()
    assert model.batches == [["one two", "three", "four five six"]]
    assert first == ([[7.0, 1.0], [5.0, 1.0]], 3)  # its own vectors, and its share of the tokens
    assert second == ([[13.0, 1.0]], 3)


async def test_a_failing_model_fails_its_batch_and_the_next_batch_is_served() -> None:
    models = {"bad": FakeModel(fails=True), "good": FakeModel()}
    batcher = Batcher(batch_size=16, wait_seconds=0.0, load=models.__getitem__)
    batcher.start()
    try:
        with pytest.raises(UpstreamError, match="local model 'bad' failed"):
            await batcher.encode("bad", ["x"])
        assert await batcher.encode("good", ["a b"]) == ([[3.0, 1.0]], 2)
    finally:
        await batcher.close()


async def test_close_fails_the_requests_it_holds_instead_of_leaving_them_waiting() -> None:
    gate = threading.Event()
    batcher = Batcher(batch_size=1, wait_seconds=0.0, load=lambda name: FakeModel(gate))
    batcher.start()
    encoding = asyncio.create_task(batcher.encode("m", ["being encoded"]))
    queued = asyncio.create_task(batcher.encode("m", ["still queued"]))
    await asyncio.sleep(0.05)  # the first is in the model's thread, the second waits behind it
    try:
        async with asyncio.timeout(5):
            await batcher.close()
            for request in (encoding, queued):
                with pytest.raises(UpstreamOverloaded, match="shutting down"):
                    await request
        with pytest.raises(UpstreamOverloaded):  # and a request after close is refused at once
            await batcher.encode("m", ["late"])
    finally:
        gate.set()


@pytest.mark.parametrize("turns", range(6))
async def test_close_ends_the_loop_whichever_turn_its_cancel_arrives_on(turns: int) -> None:
    # A request arrives while a batch is being gathered and close() follows ``turns`` loop turns
    # later: one of these turns is the moment the gathering get completes, when Python 3.11's
    # wait_for dropped the cancel and the loop (and close) ran on for ever.
    batcher = Batcher(batch_size=16, wait_seconds=5.0, load=lambda name: FakeModel())
    batcher.start()
    first = asyncio.create_task(batcher.encode("m", ["first"]))
    await asyncio.sleep(0.01)  # the loop now gathers more for up to 5 s
    second = asyncio.create_task(batcher.encode("m", ["second"]))
    for _ in range(turns):
        await asyncio.sleep(0)
    async with asyncio.timeout(3):
        await batcher.close()
    for request in (first, second):
        with pytest.raises(UpstreamOverloaded):
            await request
