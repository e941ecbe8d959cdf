"""Gathering the images of concurrent requests into batches for the network.

Each request hands its images to :meth:`MicroBatcher.score` and awaits its scores. One worker
takes requests off a queue, in arrival order, until ``max_batch`` images are gathered or
``wait_s`` has passed since the first, scores them in one call of the scoring function on a
single background thread (the model is never used by two threads at once), and hands each request
back its own slice, so the order of results never mixes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np


class MicroBatcher:
    """Batches ``score_fn`` calls across concurrent requests (see the module docstring)."""

    def __init__(self, score_fn: Callable[[np.ndarray], np.ndarray], max_batch: int = 256, wait_s: float = 0.002) -> None:
        self.score_fn = score_fn
        self.max_batch = max(1, int(max_batch))
        self.wait_s = float(wait_s)
        self._queue: asyncio.Queue[tuple[np.ndarray, asyncio.Future[np.ndarray]]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="oodscope-score")

    def start(self) -> None:
        """Start the worker on the running event loop."""
        self._queue = asyncio.Queue()
        self._worker = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the worker and the scoring thread."""
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        self._pool.shutdown(wait=True)

    async def score(self, images: np.ndarray) -> np.ndarray:
        """The scores of ``images`` (uint8 ``(N, C, H, W)`` at the model's size), in their order."""
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        await self._queue.put((images, future))
        return await future

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
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
            live = [(x, f) for x, f in batch if not f.cancelled()]
            if not live:
                continue
            try:
                scores = await loop.run_in_executor(self._pool, self.score_fn, np.concatenate([x for x, _ in live]))
            except Exception as e:  # the same failure for every request of the batch
                for _, f in live:
                    if not f.done():
                        f.set_exception(e)
                continue
            start = 0
            for x, f in live:
                if not f.done():
                    f.set_result(scores[start: start + len(x)])
                start += len(x)
