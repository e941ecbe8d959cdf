"""The limits and batching of the scoring service (no web framework needed to read them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServeSettings:
    """Limits and batching of the service."""

    max_upload_bytes: int = 16 << 20
    max_images: int = 64
    max_batch: int = 256
    batch_wait_s: float = 0.01  # measured: 2 ms gave smaller batches after each reply wave (docs/BENCHMARKS.md)
