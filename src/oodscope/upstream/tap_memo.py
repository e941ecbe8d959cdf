"""A memory of a frozen network's taps on batches it has already been given, so that detectors
reading the same network on the same images run its forward pass once.

The ``stress`` grid fits ``layers`` five times per (class, seed), once per outlier source, on the
same f: only g_theta differs, yet each cell would pass the whole test set (and the held-out images
and the kNN bank) through f under every transformation again. Inside ``with open_memo(max_bytes):``
:meth:`~oodscope.upstream.geom_net.GeomNet.taps` called with ``need`` (the taps the caller reads)
keeps those taps, and a later call with the same network weights and the same batch bytes gets them
back instead of a forward pass. Keys are digests of the weights and of the batch and the precision
the taps were computed in, so a hit is always what that network gives that batch in that
precision; a changed network, batch or precision is a miss. The oldest entries
are dropped beyond ``max_bytes``. Outside such a block nothing is kept.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

import torch

Taps = dict[str, torch.Tensor]


def _digest(tensors: Sequence[tuple[str, torch.Tensor]]) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for name, t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.digest()


def weights_digest(net: torch.nn.Module) -> bytes:
    """A digest of every parameter and buffer of ``net`` (names, dtypes, shapes, values)."""
    return _digest(list(net.state_dict().items()))


class TapMemo:
    """Taps by (network weights, batch), the least recently used dropped beyond ``max_bytes``.

    Attributes:
        hits: Calls answered from memory.
        misses: Calls that ran the network.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[bytes, bytes, str], Taps] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def taps(self, net: torch.nn.Module, batch: torch.Tensor, need: Sequence[str], compute: Callable[[], Taps],
             precision: str = "float32") -> Taps:
        """The taps ``need`` of ``net`` on ``batch`` computed in ``precision``: kept ones, or
        ``compute()``'s (then kept)."""
        key = (weights_digest(net), _digest([("batch", batch)]), precision)
        entry = self._entries.get(key)
        if entry is not None and all(n in entry for n in need):
            self._entries.move_to_end(key)
            self.hits += 1
            return {n: entry[n] for n in need}
        self.misses += 1
        computed = compute()
        found = {n: computed[n] for n in need}
        self._put(key, {**(entry or {}), **found})
        return found

    def clear(self) -> None:
        """Drop every kept tap (the counts stay)."""
        self._entries.clear()
        self.bytes = 0

    def _put(self, key: tuple[bytes, bytes, str], taps: Taps) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= _size(old)
        size = _size(taps)
        if size > self.max_bytes:
            return
        self._entries[key] = taps
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self.bytes -= _size(dropped)


def _size(taps: Taps) -> int:
    return sum(t.element_size() * t.nelement() for t in taps.values())


_current: ContextVar[TapMemo | None] = ContextVar("oodscope_tap_memo", default=None)


def current() -> TapMemo | None:
    """The memo of the enclosing :func:`open_memo` block, or None."""
    return _current.get()


@contextmanager
def open_memo(max_bytes: int) -> Iterator[TapMemo]:
    """Keep taps asked for with ``need`` inside this block, at most ``max_bytes`` of them."""
    memo = TapMemo(max_bytes)
    token = _current.set(memo)
    try:
        yield memo
    finally:
        _current.reset(token)
