"""Gathering the images of concurrent requests into batches for the network.

Each request hands its images to :meth:`MicroBatcher.score` and awaits its scores. The batcher
keeps one batch in flight per scoring function it was given (one per worker process in the
service): as soon as one of them is free, it takes requests off a queue, in arrival order, until
``max_batch`` images are gathered or ``wait_s`` has passed since the first, and scores them in one
call of that function on a thread of its own (no function is ever called by two threads at once).
Each request gets back its own slice, so the order of results never mixes. With two functions,
one batch is scored while the next one's requests are still arriving and being decoded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

ScoreFn = Callable[[np.ndarray], np.ndarray]


class MicroBatcher:
    """Batches calls of ``score_fn`` (one function, or several used side by side) across concurrent
    requests (see the module docstring)."""

    def __init__(self, score_fn: ScoreFn | Sequence[ScoreFn], max_batch: int = 256, wait_s: float = 0.002) -> None:
        self.score_fns: list[ScoreFn] = list(score_fn) if isinstance(score_fn, Sequence) else [score_fn]
        if not self.score_fns:
            raise ValueError("MicroBatcher needs at least one scoring function")
        self.max_batch = max(1, int(max_batch))
        self.wait_s = float(wait_s)
        self._queue: asyncio.Queue[tuple[np.ndarray, asyncio.Future[np.ndarray]]] | None = None
        self._free: asyncio.Queue[int] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._pools = [ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"oodscope-score-{i}")
                       for i in range(len(self.score_fns))]

    def start(self) -> None:
        """Start the worker on the running event loop."""
        self._queue = asyncio.Queue()
        self._free = asyncio.Queue()
        for i in range(len(self.score_fns)):
            self._free.put_nowait(i)
        self._worker = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the worker, wait for the batches in flight, and stop the scoring threads."""
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        for pool in self._pools:
            pool.shutdown(wait=True)

    async def score(self, images: np.ndarray) -> np.ndarray:
        """The scores of ``images`` (uint8 ``(N, C, H, W)`` at the model's size), in their order."""
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        await self._queue.put((images, future))
        return await future

    async def _run(self) -> None:
        assert self._queue is not None and self._free is not None
        loop = asyncio.get_running_loop()
        while True:
            slot = await self._free.get()
            first = await self._queue.get()
            batch, n = [first], len(first[0])
            deadline = loop.time() + self.wait_s
            while n < self.max_batch:
                timeout = deadline - loop.time()
                try:
                    item = self._queue.get_nowait() if timeout <= 0 else await asyncio.wait_for(self._queue.get(), timeout)
                except (asyncio.QueueEmpty, asyncio.TimeoutError):
                    break
                batch.append(item)
                n += len(item[0])
            task = loop.create_task(self._score_batch(slot, batch))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _score_batch(self, slot: int, batch: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]]) -> None:
        assert self._free is not None
        loop = asyncio.get_running_loop()
        try:
            live = [(x, f) for x, f in batch if not f.cancelled()]
            if not live:
                return
            try:
                scores = await loop.run_in_executor(self._pools[slot], self.score_fns[slot],
                                                    np.concatenate([x for x, _ in live]))
            except Exception as e:  # the same failure for every request of the batch
                for _, f in live:
                    if not f.done():
                        f.set_exception(e)
                return
            start = 0
            for x, f in live:
                if not f.done():
                    f.set_result(scores[start: start + len(x)])
                start += len(x)
        finally:
            self._free.put_nowait(slot)
