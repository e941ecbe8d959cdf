"""Scoring in a worker process of its own, so that the service's HTTP work and the network do not
take turns on one Python interpreter.

In one process, the event loop (HTTP parsing, multipart, PNG decoding, JSON) holds Python's global
interpreter lock while the scoring thread waits for it between torch operations; on a small
machine that cost the network a third of its speed (docs/lab/BENCHMARKS.md, the scoring service). The
worker (``python -m oodscope.serve.worker MODEL``) loads the model itself, verified like any load,
and answers batches over its stdin / stdout. Messages are framed raw arrays (a JSON header with
dtype and shape, then the bytes), so nothing is pickled either way.

:class:`WorkerScorer` is the service's side: calling it with uint8 images returns their scores; a
failure inside the worker comes back as the same oodscope error (:class:`~oodscope.errors.InputError`
for a bad batch, :class:`~oodscope.errors.ModelFileError` for a tampered model, ...), and a worker
that died is started again on the next call.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

import numpy as np

from oodscope import errors
from oodscope.errors import ModelFileError

_LEN = struct.Struct("<Q")


def _error(header: dict[str, Any]) -> Exception:
    """The worker's error as the same oodscope error class here (others as RuntimeError, named)."""
    cls = getattr(errors, header["kind"], None)
    if isinstance(cls, type) and issubclass(cls, errors.OodscopeError):
        return cls(header["message"])
    return RuntimeError(f"scoring worker: {header['kind']}: {header['message']}")


def _write(stream: IO[bytes], kind: bytes, header: dict[str, Any], data: bytes = b"") -> None:
    head = json.dumps(header).encode()
    stream.write(_LEN.pack(1 + 4 + len(head) + len(data)) + kind + struct.pack("<I", len(head)) + head + data)
    stream.flush()


def _read_exact(stream: IO[bytes], n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError("the other end closed the pipe")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read(stream: IO[bytes]) -> tuple[bytes, dict[str, Any], bytes]:
    (size,) = _LEN.unpack(_read_exact(stream, _LEN.size))
    frame = _read_exact(stream, size)
    (head_len,) = struct.unpack("<I", frame[1:5])
    return frame[:1], json.loads(frame[5: 5 + head_len]), frame[5 + head_len:]


def _array(header: dict[str, Any], data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.dtype(header["dtype"])).reshape(header["shape"])


def _send_array(stream: IO[bytes], kind: bytes, x: np.ndarray) -> None:
    x = np.ascontiguousarray(x)
    _write(stream, kind, {"dtype": x.dtype.str, "shape": list(x.shape)}, x.tobytes())


class WorkerScorer:
    """Scores with ``model`` (a saved model directory or an exported ``.onnx`` file) in a worker
    process on ``threads`` threads; ``expected_identity`` (method and weights' SHA-256), when given,
    must be what the worker loaded."""

    def __init__(self, model: str | os.PathLike[str], threads: int | None = None,
                 expected_identity: dict[str, Any] | None = None, engine: str = "auto") -> None:
        self.model = str(model)
        self.threads = threads
        self.engine_asked = engine
        self.engine: str | None = None  # what the worker runs, as it reports when ready
        self.expected_identity = expected_identity
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._start()

    def _start(self) -> None:
        cmd = [sys.executable, "-m", "oodscope.serve.worker", self.model, "--engine", self.engine_asked]
        if self.threads is not None:
            cmd += ["--threads", str(self.threads)]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            kind, header, _ = _read(self._proc.stdout)  # type: ignore[arg-type]
        except EOFError:
            code = self._proc.wait()
            self.close()
            raise RuntimeError(f"the scoring worker for {self.model} exited while loading it (exit code {code})") from None
        if kind == b"E":
            self.close()
            raise _error(header)
        if self.expected_identity is not None and header["identity"] != self.expected_identity:
            self.close()
            raise ModelFileError(f"{self.model}: the scoring worker loaded {header['identity']}, not the model "
                                 f"the service loaded ({self.expected_identity}); was the file replaced?")
        self.engine = header.get("engine")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()
            proc = self._proc
            assert proc is not None and proc.stdin is not None and proc.stdout is not None
            try:
                _send_array(proc.stdin, b"X", x)
                kind, header, data = _read(proc.stdout)
            except (EOFError, BrokenPipeError, OSError):
                code = proc.wait()
                raise RuntimeError(f"the scoring worker exited while scoring (exit code {code}); "
                                   "it is started again for the next batch") from None
        if kind == b"E":
            raise _error(header)
        return _array(header, data).copy()

    @property
    def pid(self) -> int | None:
        """The worker's process id (None once closed)."""
        return None if self._proc is None else self._proc.pid

    def close(self) -> None:
        """Stop the worker: it exits when its stdin closes."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def worker_threads(threads: int | None, workers: int) -> int | None:
    """Torch threads of each of ``workers`` workers sharing ``threads`` (default: the machine's cores)."""
    if workers <= 0:
        return threads
    total = threads if threads is not None else (os.cpu_count() or 1)
    return max(1, total // workers)


def _error_header(e: BaseException) -> dict[str, str]:
    return {"kind": type(e).__name__, "message": str(e) or type(e).__name__}


def main(argv: list[str] | None = None) -> int:
    """The worker: load the model, say so (or why not), then score every batch sent until stdin closes."""
    ap = argparse.ArgumentParser(prog="python -m oodscope.serve.worker", description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--engine", default="auto")
    a = ap.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the service, which then closes our stdin
    sys.stdout.flush()
    out, inp = os.fdopen(os.dup(1), "wb"), sys.stdin.buffer
    os.dup2(2, 1)  # anything printed, by Python or a library's C code, goes to stderr, not into the frames
    sys.stdout = sys.stderr
    try:
        import torch

        from oodscope.export.loading import engine_of, identity, load_scorer

        if a.threads is not None:
            torch.set_num_threads(a.threads)
        scorer = load_scorer(a.model, a.threads, a.engine)
        _write(out, b"R", {"identity": identity(a.model, scorer), "engine": engine_of(scorer)})
    except Exception as e:  # the service reports it and does not start
        _write(out, b"E", _error_header(e))
        return 1
    while True:
        try:
            _, header, data = _read(inp)
        except EOFError:
            return 0
        try:
            scores = np.asarray(scorer.score(_array(header, data).copy()), dtype=np.float64)
        except Exception as e:  # one bad batch; the worker lives on
            _write(out, b"E", _error_header(e))
            continue
        _send_array(out, b"S", scores)


if __name__ == "__main__":
    sys.exit(main())
