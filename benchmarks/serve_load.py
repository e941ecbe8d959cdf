"""A bounded load test of `oodscope serve` on loopback, beside the library's own scoring throughput.

Starts the service on a free port (`--threads` torch threads, shared by its `--workers` scoring
processes), then `--clients` threads each send requests of `--images` MNIST test images (PNG
uploads, keep-alive connections) until `--requests` requests are done; records requests/s,
images/s, p50 / p99 latency and errors. Then scores the same images with the library in one
process (same threads) for its images/s. Prints one markdown row of each and writes them as JSON.

    python benchmarks/serve_load.py runs/deploy/layers-mnist0 --requests 2000 --images 8 --clients 8 \
        --out runs/deploy/serve-load.json
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from oodscope.data import load
from oodscope.detectors import load as load_model
from oodscope.serve.settings import ServeSettings


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def _body(pngs: list[bytes]) -> tuple[bytes, str]:
    b = uuid.uuid4().hex
    parts = [f'--{b}\r\nContent-Disposition: form-data; name="files"; filename="{i}.png"\r\n'
             f"Content-Type: image/png\r\n\r\n".encode() + p + b"\r\n" for i, p in enumerate(pngs)]
    return b"".join(parts) + f"--{b}--\r\n".encode(), f"multipart/form-data; boundary={b}"


def _start(model: Path, threads: int, wait_ms: float | None, workers: int | None = None,
           max_batch: int | None = None) -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "oodscope.cli", "serve", str(model), "--port", str(port), "--threads", str(threads)]
    for flag, value in (("--batch-wait-ms", wait_ms), ("--workers", workers), ("--max-batch", max_batch)):
        if value is not None:
            cmd += [flag, str(value)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
            return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the service did not start")


def load_test(port: int, bodies: list[tuple[bytes, str]], n_requests: int, clients: int) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    counter = iter(range(n_requests))
    lock = threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            body, kind = bodies[i % len(bodies)]
            t = time.perf_counter()
            try:
                conn.request("POST", "/score", body=body, headers={"Content-Type": kind})
                r = conn.getresponse()
                data = r.read()
                ok = r.status == 200 and len(json.loads(data)["results"]) > 0
            except (OSError, http.client.HTTPException, ValueError) as e:
                ok, data = False, str(e).encode()
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            with lock:
                latencies.append(time.perf_counter() - t)
                if not ok:
                    errors.append(data[:200].decode(errors="replace"))
        conn.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - start
    lat = np.array(latencies) * 1000
    return {"requests": len(latencies), "wall_s": wall, "requests_per_s": len(latencies) / wall,
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)), "errors": len(errors),
            "first_errors": errors[:3]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-wait-ms", type=float, default=None, help="the service's --batch-wait-ms (default: its own)")
    ap.add_argument("--workers", type=int, default=None, help="the service's --workers, sharing --threads (default: its own)")
    ap.add_argument("--max-batch", type=int, default=None, help="the service's --max-batch (default: its own)")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    settings = ServeSettings(batch_wait_s=None if a.batch_wait_ms is None else a.batch_wait_ms / 1000,
                             workers=ServeSettings.workers if a.workers is None else a.workers,
                             max_batch=ServeSettings.max_batch if a.max_batch is None else a.max_batch)

    test = load("mnist", "test").images[:, 0]
    rng = np.random.default_rng(0)
    n_distinct = min(250, a.requests)
    picks = [rng.choice(len(test), a.images, replace=False) for _ in range(n_distinct)]
    bodies = [_body([_png(test[j]) for j in p]) for p in picks]

    proc, port = _start(a.model, a.threads, a.batch_wait_ms, a.workers, a.max_batch)
    try:
        load_test(port, bodies[:20], 40, a.clients)  # warm-up
        serve = load_test(port, bodies, a.requests, a.clients)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    serve["images_per_s"] = serve["requests_per_s"] * a.images

    torch.set_num_threads(a.threads)
    det = load_model(a.model)
    x = np.stack([test[j] for p in picks for j in p])[:, None]
    n = a.requests * a.images
    x = np.concatenate([x] * int(np.ceil(n / len(x))))[:n]
    det.score(x[:512])  # warm-up
    t = time.perf_counter()
    for i in range(0, n, 256):
        det.score(x[i: i + 256])
    lib = {"images": n, "wall_s": time.perf_counter() - t}
    lib["images_per_s"] = n / lib["wall_s"]

    result = {"model": str(a.model), "method": det.method, "threads": a.threads, "clients": a.clients,
              "batch_wait_ms": settings.wait_s * 1000, "workers": settings.workers,
              "max_batch": settings.max_batch,
              "images_per_request": a.images, "cpu_count": os.cpu_count(), "serve": serve, "library": lib,
              "service_share_of_library": serve["images_per_s"] / lib["images_per_s"]}
    print("| | requests/s | images/s | p50 ms | p99 ms | errors |\n|---|---:|---:|---:|---:|---:|")
    print(f"| service ({a.requests} requests x {a.images} images, {a.clients} clients) | {serve['requests_per_s']:.1f} | "
          f"{serve['images_per_s']:.0f} | {serve['p50_ms']:.1f} | {serve['p99_ms']:.1f} | {serve['errors']} |")
    print(f"| library (batches of 256) | | {lib['images_per_s']:.0f} | | | |")
    print(f"service / library images per second: {result['service_share_of_library']:.1%}")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
