"""Library, `oodscope score` (CLI), the service and the ONNX export of the same saved model on
the MNIST test images: the largest difference between their scores and whether their verdicts at
the model's threshold agree.

    python benchmarks/precision_parity.py runs/deploy/geom-mnist0 runs/deploy/layers-mnist0 \
        runs/deploy/msp-mnist0-5 runs/deploy/energy-mnist0-5 --n 10000 --threads 2

The library scores the images as arrays; the CLI reads them back from PNG files (lossless, the
same uint8 pixels); the service receives them as JSON arrays of 0..255 (`--workers 2`, its
default); the ONNX file runs under onnxruntime. Differences are given relative to each library
score (largest |a - b| / |b|) and relative to the largest |score| of the model.
"""

from __future__ import annotations

import argparse
import csv
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from oodscope.data import load
from oodscope.detectors import load as load_model
from oodscope.export import OnnxScorer, export_onnx


def cli_scores(model: Path, x: np.ndarray, threads: int, tmp: Path) -> np.ndarray:
    folder = tmp / "images"
    folder.mkdir(exist_ok=True)
    for i, a in enumerate(x):
        Image.fromarray(a[0]).save(folder / f"{i:05d}.png")
    out = tmp / "scores.csv"
    subprocess.run([sys.executable, "-m", "oodscope.cli", "score", str(model), str(folder), "--out", str(out),
                    "--no-progress", "--threads", str(threads)], check=True)
    with out.open() as f:
        rows = {Path(r["file"]).name: float(r["score"]) for r in csv.DictReader(f)}
    return np.array([rows[f"{i:05d}.png"] for i in range(len(x))])


def service_scores(model: Path, x: np.ndarray, threads: int) -> np.ndarray:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "oodscope.cli", "serve", str(model), "--port", str(port),
                             "--threads", str(threads)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
                break
            except OSError:
                time.sleep(0.2)
        out = []
        for i in range(0, len(x), 64):
            body = json.dumps({"images": x[i: i + 64, 0].tolist()}).encode()
            req = urllib.request.Request(f"http://127.0.0.1:{port}/score", body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(req) as r:
                out += [res["score"] for res in json.loads(r.read())["results"]]
        return np.array(out)
    finally:
        proc.terminate()
        proc.wait()


def compare(lib: np.ndarray, other: np.ndarray, threshold: float) -> dict[str, float]:
    diff = np.abs(other - lib)
    return {"max_rel_each": float((diff / np.maximum(np.abs(lib), 1e-30)).max()),
            "max_rel_largest": float(diff.max() / np.abs(lib).max()),
            "verdicts_differ": int(np.sum((other > threshold) != (lib > threshold)))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", type=Path, nargs="+")
    ap.add_argument("--n", type=int, default=10000, help="MNIST test images (the first N)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    x = load("mnist", "test").images[: a.n]
    results = []
    for path in a.models:
        det = load_model(path)
        lib = det.score(x)
        with tempfile.TemporaryDirectory() as tmp:
            cli = cli_scores(path, x, a.threads, Path(tmp))
            export_onnx(det, Path(tmp) / "m.onnx")
            onnx = OnnxScorer(Path(tmp) / "m.onnx", threads=a.threads).score(x)
        served = service_scores(path, x, a.threads)
        row = {"model": str(path), "method": det.method, "precision": det.precision, "n": len(x),
               "threshold": det.threshold, "in_at_threshold": int(np.sum(lib <= det.threshold))}
        for name, other in (("cli", cli), ("service", served), ("onnx", onnx)):
            row[name] = compare(lib, other, det.threshold)
        results.append(row)
        print(json.dumps(row), flush=True)
    print("| model | precision | images | vs CLI | vs service | vs ONNX | verdicts differing (CLI / service / ONNX) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in results:
        rel = " | ".join(f"{r[k]['max_rel_each']:.1e} ({r[k]['max_rel_largest']:.1e})" for k in ("cli", "service", "onnx"))
        print(f"| {r['method']} | {r['precision']} | {r['n']:,} | {rel} | "
              f"{r['cli']['verdicts_differ']} / {r['service']['verdicts_differ']} / {r['onnx']['verdicts_differ']} |")
    if a.out:
        a.out.write_text(json.dumps({"threads": a.threads, "results": results}, indent=2))


if __name__ == "__main__":
    main()
