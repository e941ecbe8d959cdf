"""The limits and batching of the scoring service (no web framework needed to read them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServeSettings:
    """Limits and batching of the service.

    ``workers``: scoring worker processes, each with one batch in flight (0: score in a thread of
    the service's own process). ``batch_wait_s``: how long the first request of a batch waits for
    others; None picks what was measured best (docs/lab/BENCHMARKS.md, the scoring service): 2 ms with
    workers, whose batches overlap, and 10 ms in-process, where 2 ms split each wave of requests.
    ``engine``: what scores a model directory ("auto", "torch" or "onnxruntime":
    :mod:`oodscope.export.engine`).
    """

    max_upload_bytes: int = 16 << 20
    max_images: int = 64
    max_batch: int = 256
    batch_wait_s: float | None = None
    workers: int = 2
    engine: str = "auto"

    @property
    def wait_s(self) -> float:
        """The batch wait in effect (seconds)."""
        if self.batch_wait_s is not None:
            return self.batch_wait_s
        return 0.002 if self.workers > 0 else 0.01
