"""The HTTP scoring service: a real uvicorn server on 127.0.0.1, real HTTP requests."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("multipart")

from oodscope.data import ImageSet  # noqa: E402
from oodscope.detectors import load  # noqa: E402
from oodscope.pipeline import fit_with_threshold, read_for_model  # noqa: E402


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _bars(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 1, 16, 16), np.uint8)
    for i in range(n):
        c = int(rng.integers(4, 10))
        x[i, 0, 3:13, c: c + 3] = int(rng.integers(150, 256))
    return x


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    train = ImageSet(_bars(24, 0), np.zeros(24, np.int64), ["bar"], "bars")
    rng = np.random.default_rng(1)
    outliers = ImageSet(rng.integers(0, 256, (8, 1, 16, 16), dtype=np.uint8), np.zeros(8, np.int64), ["noise"], "noise")
    settings = {"epochs": 1, "batch_size": 16, "g_steps": 5, "g_batch": 16, "progress": False}
    report = fit_with_threshold("layers", train, outliers, 0.9, preset="smoke", overrides=settings)
    return report.detector.save(tmp_path_factory.mktemp("serve") / "model")


def _close(got, expected) -> None:
    """The service (which runs a float32 model's graph under onnxruntime) against the library's
    torch float32: 1e-5 of each score, or of the largest where a score is near zero."""
    expected = np.asarray(expected)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(model: Path):
    for url, _ in _serve(model):
        yield url


def _serve(model: Path):
    """Start ``oodscope serve`` on a free port, yield its URL and process id once /health answers,
    stop it after."""
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "oodscope.cli", "serve", str(model), "--port", str(port), "--threads", "1",
                             "--max-images", "5", "--max-upload-mb", "0.05"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"server did not start: {proc.stdout.read() if proc.stdout else ''}")
            time.sleep(0.2)
    try:
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _request(url: str, body: bytes, content_type: str) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _multipart(files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, data in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_health_and_model(server: str, model: Path) -> None:
    with urllib.request.urlopen(server + "/health") as r:
        health = json.loads(r.read())
    cfg = json.loads((model / "config.json").read_text())
    assert health == {"status": "ok", "method": "layers", "weights_sha256": cfg["weights_sha256"]}
    with urllib.request.urlopen(server + "/model") as r:
        info = json.loads(r.read())
    assert info["image_size"] == [16, 16] and info["channels"] == 1 and info["threshold"] == cfg["threshold"]
    assert info["precision"] == "float32" == info["config"]["precision"]  # the numeric model, on the model card
    assert info["engine"] == "onnxruntime" and info["limits"]["engine"] == "auto"  # a float32 graph: onnxruntime runs it
    assert info["threshold_rule"]["rule"] == "accept" and "held_out_scores" not in info["threshold_rule"]
    assert info["limits"]["max_images"] == 5
    assert info["trained_on"] == {"images": 22, "held_out": 2, "outliers": 8}
    with urllib.request.urlopen(server + "/docs") as r:
        assert r.status == 200 and b"swagger" in r.read().lower()


def test_scores_equal_the_librarys_in_order(server: str, model: Path, tmp_path: Path) -> None:
    det = load(model)
    rng = np.random.default_rng(5)
    images = [_bars(1, 7)[0, 0], rng.integers(0, 256, (20, 24, 3), dtype=np.uint8), _bars(1, 8)[0, 0]]
    files = []
    for i, a in enumerate(images):
        (tmp_path / f"{i}.png").write_bytes(_png(a))
        files.append((f"{i}.png", _png(a)))
    status, out = _request(server + "/score", *_multipart(files))
    assert status == 200, out
    expected = det.score(np.stack([read_for_model(tmp_path / f"{i}.png", (16, 16), 1) for i in range(3)]))
    assert [r["name"] for r in out["results"]] == ["0.png", "1.png", "2.png"]
    _close([r["score"] for r in out["results"]], expected)
    assert [r["verdict"] for r in out["results"]] == ["ood" if s > det.threshold else "in" for s in expected]
    assert out["model"]["method"] == "layers" and len(out["model"]["weights_sha256"]) == 64

    body = json.dumps({"images": _bars(2, 9)[:, 0].tolist()}).encode()  # (N, H, W) of 0..255
    status, out = _request(server + "/score", body, "application/json")
    assert status == 200, out
    _close([r["score"] for r in out["results"]], det.score(_bars(2, 9)))

    # concurrent requests are batched together, and each gets its own scores back, in order
    singles = [_bars(1, 100 + i) for i in range(12)]
    expected = [float(det.score(x)[0]) for x in singles]

    def send(i: int) -> float:
        status, out = _request(server + "/score", json.dumps({"images": (singles[i] / 255.0).tolist()}).encode(), "application/json")
        assert status == 200, out
        return out["results"][0]["score"]

    with ThreadPoolExecutor(6) as pool:
        got = list(pool.map(send, range(12)))
    _close(got, expected)  # float32: batch mates change only the last bits


def test_bad_uploads_get_4xx_and_the_service_lives_on(server: str) -> None:
    ok = _png(_bars(1, 3)[0, 0])
    cases = [
        (_multipart([("good.png", ok), ("broken.png", b"\x89PNG\r\n\x1a\n not a png")]), 422, "broken.png"),
        (_multipart([("empty.png", b"")]), 422, "empty"),
        (_multipart([(f"{i}.png", ok) for i in range(6)]), 413, "limit of 5"),
        (_multipart([("big.png", np.random.default_rng(0).bytes(60_000))]), 413, "exceeds the limit"),
        ((json.dumps({"images": np.zeros((1, 2, 16, 16)).tolist()}).encode(), "application/json"), 422, "channels"),
        ((json.dumps({"images": [[1, 2], [3]]}).encode(), "application/json"), 422, "images"),
        ((json.dumps({"images": np.full((1, 16, 16), 300).tolist()}).encode(), "application/json"), 422, "0..255"),
        ((json.dumps({"images": np.zeros((1, 1, 16, 0)).tolist()}).encode(), "application/json"), 422, "empty"),
        ((json.dumps({"pictures": []}).encode(), "application/json"), 422, '"images"'),
        ((b"{not json", "application/json"), 400, "not valid JSON"),
        ((b"hello", "text/plain"), 415, "content type"),
    ]
    for (body, kind), code, fragment in cases:
        status, out = _request(server + "/score", body, kind)
        assert status == code, (fragment, status, out)
        assert fragment in out["detail"], out
    status, out = _request(server + "/score", *_multipart([("good.png", ok)]))
    assert status == 200 and len(out["results"]) == 1


def test_serves_an_exported_onnx_file(model: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    pytest.importorskip("onnxruntime")
    from oodscope.export import OnnxScorer, export_onnx

    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    sha = json.loads((model / "config.json").read_text())["weights_sha256"]
    export_onnx(load(model), path, weights_sha256=sha)
    images = _bars(3, 11)
    for url, _ in _serve(path):
        status, out = _request(url + "/score", json.dumps({"images": images.tolist()}).encode(), "application/json")
        assert status == 200, out
        assert out["model"]["weights_sha256"] == sha and len(out["model"]["onnx_sha256"]) == 64
        np.testing.assert_allclose([r["score"] for r in out["results"]], OnnxScorer(path).score(images), rtol=1e-5, atol=1e-6)


def test_micro_batcher_gathers_requests_and_keeps_each_ones_slice() -> None:
    import asyncio

    from oodscope.serve.batcher import MicroBatcher

    calls: list[int] = []

    def score(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        if (x == 99).any():
            raise ValueError("bad batch")
        return x.reshape(len(x), -1)[:, 0].astype(float)

    async def run() -> tuple[list, BaseException | None]:
        b = MicroBatcher(score, max_batch=64, wait_s=0.05)
        b.start()
        reqs = [np.full((n, 1, 2, 2), i, np.uint8) for i, n in enumerate([3, 1, 4, 2])]
        outs = await asyncio.gather(*(b.score(r) for r in reqs))
        try:
            await asyncio.gather(b.score(np.full((1, 1, 2, 2), 99, np.uint8)), b.score(np.zeros((2, 1, 2, 2), np.uint8)))
            err = None
        except ValueError as e:
            err = e
        await b.stop()
        return outs, err

    outs, err = asyncio.run(run())
    assert [o.tolist() for o in outs] == [[0.0] * 3, [1.0], [2.0] * 4, [3.0] * 2]
    assert calls[0] == 10  # the four requests went to the network as one batch
    assert isinstance(err, ValueError)  # a failing batch fails its requests, and the worker lives on


def test_worker_scores_like_the_library_and_reports_bad_batches(model: Path) -> None:
    from oodscope.errors import InputError
    from oodscope.export.loading import identity
    from oodscope.serve.worker import WorkerScorer

    from oodscope.export import load_scorer

    det = load(model)
    same = load_scorer(model, threads=1)  # what the worker runs: the model's graph under onnxruntime
    w = WorkerScorer(model, threads=1, expected_identity=identity(model, det))
    try:
        x = _bars(6, 5)
        assert w.engine == same.engine == "onnxruntime"
        np.testing.assert_array_equal(w(x), same.score(x))
        _close(w(x), det.score(x))
        with pytest.raises(InputError, match="channel"):
            w(np.zeros((2, 3, 16, 16), np.uint8))  # raised in the worker, re-raised here as the same kind
        np.testing.assert_array_equal(w(x[:2]), same.score(x[:2]))  # and the worker lives on
    finally:
        w.close()
    assert w.pid is None


def test_a_dead_worker_is_started_again(model: Path) -> None:
    import signal

    from oodscope.serve.worker import WorkerScorer

    w = WorkerScorer(model, threads=1)
    try:
        first = w.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        x = _bars(3, 6)
        try:  # the batch in flight when a worker dies fails, and says so
            w(x)
        except RuntimeError as e:
            assert "started again" in str(e)
        _close(w(x), load(model).score(x))
        assert w.pid not in (None, first)
    finally:
        w.close()


def test_worker_refuses_a_tampered_or_replaced_model(model: Path, tmp_path: Path) -> None:
    import shutil

    from oodscope.errors import ModelFileError
    from oodscope.serve.worker import WorkerScorer

    with pytest.raises(ModelFileError, match="replaced"):
        WorkerScorer(model, threads=1, expected_identity={"method": "layers", "weights_sha256": "0" * 64})
    bad = shutil.copytree(model, tmp_path / "model")
    weights = next(bad.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="checksum"):
        WorkerScorer(bad, threads=1)


def test_service_workers_are_processes_that_stop_with_it(model: Path) -> None:
    if not Path("/proc/self/task").exists():
        pytest.skip("needs /proc to list child processes")
    gen = _serve(model)
    _, pid = next(gen)
    children = {int(c) for t in Path(f"/proc/{pid}/task").iterdir() for c in (t / "children").read_text().split()}
    cmdlines = [Path(f"/proc/{c}/cmdline").read_bytes().split(b"\0") for c in children]
    assert sum(b"oodscope.serve.worker" in c for c in cmdlines) == 2, cmdlines
    gen.close()  # stops the service
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{c}").exists() and b"Z" not in Path(f"/proc/{c}/stat").read_bytes().split(b")")[-1][:3]
              for c in children):
        assert time.monotonic() < deadline, "a scoring worker outlived the service"
        time.sleep(0.2)


def test_micro_batcher_keeps_one_batch_in_flight_per_function() -> None:
    import asyncio
    import threading

    from oodscope.serve.batcher import MicroBatcher

    active = [0, 0]
    most = [0, 0, 0]  # per function, and both together
    lock = threading.Lock()

    def make(i: int):
        def score(x: np.ndarray) -> np.ndarray:
            with lock:
                active[i] += 1
                most[i] = max(most[i], active[i])
                most[2] = max(most[2], sum(active))
            time.sleep(0.05)
            with lock:
                active[i] -= 1
            return x.reshape(len(x), -1)[:, 0].astype(float) + 100 * i
        return score

    async def run() -> list[np.ndarray]:
        b = MicroBatcher([make(0), make(1)], max_batch=2, wait_s=0.0)
        b.start()
        reqs = [np.full((2, 1, 2, 2), k, np.uint8) for k in range(8)]
        outs = await asyncio.gather(*(b.score(r) for r in reqs))
        await b.stop()
        return outs

    outs = asyncio.run(run())
    assert [sorted({v % 100 for v in o}) for o in outs] == [[k] for k in range(8)]  # each request its own slice
    assert {int(o[0]) // 100 for o in outs} == {0, 1}  # both functions scored
    assert most[:2] == [1, 1] and most[2] == 2  # never two calls of one function, but two batches at once
