"""The coroutines (acompress, acompress_batch, acompress_prompt...) run off the event loop: it keeps
running while the model works, and several of them run at once."""

from __future__ import annotations

import asyncio
import time

import pytest

import kompress
from conftest import fixture_texts, model_dir


@pytest.fixture(scope="module")
def runner():
    return kompress.KompressRunner(model=model_dir("v5"), device="cpu")


def long_text() -> str:
    return "\n\n".join(p.read_text() for p in fixture_texts()) * 2


def test_the_loop_keeps_running_during_a_long_compression(runner):
    text = long_text()

    async def main():
        ticks = 0
        stop = asyncio.Event()

        async def ticker():
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.002)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)  # the ticker has started
        started = ticks
        t0 = time.perf_counter()
        result = await runner.acompress(text, ratio=0.5)
        elapsed = time.perf_counter() - t0
        stop.set()
        await task
        return result, ticks - started, elapsed

    result, ticks, elapsed = asyncio.run(main())
    assert result == runner.compress(text, ratio=0.5)
    assert elapsed > 0.05, f"the text compressed in {elapsed:.3f} s: too fast to show anything"
    # A compression that blocked the loop would let the ticker run at most once; it ticks every 2 ms.
    assert ticks >= 10, f"{ticks} ticks in {elapsed:.3f} s"


def test_coroutines_run_concurrently(runner):
    """Two batches awaited together progress at the same time (their progress reports interleave), and
    each result equals the synchronous one."""
    texts = [p.read_text() for p in fixture_texts()]
    events = []

    async def main():
        return await asyncio.gather(
            runner.acompress_batch(texts, ratio=0.5, chunk_words=40, batch_size=1, progress=lambda d, t: events.append("a")),
            runner.acompress_batch(texts, ratio=0.4, chunk_words=40, batch_size=1, progress=lambda d, t: events.append("b")),
        )

    a, b = asyncio.run(main())
    assert a == runner.compress_batch(texts, ratio=0.5, chunk_words=40, batch_size=1)
    assert b == runner.compress_batch(texts, ratio=0.4, chunk_words=40, batch_size=1)
    # Overlap: each batch reported progress before the other one's last report.
    first = {k: events.index(k) for k in "ab"}
    last = {k: len(events) - 1 - events[::-1].index(k) for k in "ab"}
    assert first["a"] < last["b"] and first["b"] < last["a"], "".join(events)


def test_errors_propagate_through_await(runner):
    async def main():
        await runner.acompress(b"bytes")

    with pytest.raises(kompress.InvalidInputError, match="must be str, not bytes"):
        asyncio.run(main())
