"""ONNX export against torch on MNIST: export a saved model, score the 10,000 MNIST test images
with torch (bfloat16 autocast as saved, and in float32) and with onnxruntime, at `--threads`
threads; print images/s and how far the scores differ.

    python benchmarks/onnx_speed.py runs/deploy/layers-mnist0 runs/deploy/geom-mnist0 --threads 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from oodscope.data import load
from oodscope.detectors import load as load_model
from oodscope.export import OnnxScorer, export_onnx


def timed(fn, x: np.ndarray, batch: int = 256) -> tuple[np.ndarray, float]:
    fn(x[:batch])  # warm-up
    t = time.perf_counter()
    out = np.concatenate([fn(x[i: i + batch]) for i in range(0, len(x), batch)])
    return out, len(x) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", type=Path, nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    x = load("mnist", "test").images
    results = []
    for path in a.models:
        det = load_model(path)
        onnx_path = path.with_suffix(".onnx")
        t = time.perf_counter()
        export_onnx(det, onnx_path)
        export_s = time.perf_counter() - t
        ort = OnnxScorer(onnx_path, threads=a.threads)
        s_amp, ips_amp = timed(det.score, x)
        with mock.patch("torch.autocast", lambda *args, **kw: contextlib.nullcontext()):
            s_f32, ips_f32 = timed(det.score, x)
        s_ort, ips_ort = timed(ort.score, x)
        scale = np.abs(s_f32).max()
        results.append({
            "model": str(path), "method": det.method, "amp": bool(det.config.get("amp")), "export_s": export_s,
            "onnx_mib": onnx_path.stat().st_size / 2**20,
            "torch_images_per_s": ips_amp, "torch_float32_images_per_s": ips_f32, "onnxruntime_images_per_s": ips_ort,
            "max_diff_vs_float32_relative_to_largest": float(np.abs(s_ort - s_f32).max() / scale),
            "max_diff_vs_saved_relative_to_largest": float(np.abs(s_ort - s_amp).max() / np.abs(s_amp).max()),
        })
    print("| model | torch (as saved) img/s | torch float32 img/s | onnxruntime img/s | max diff vs float32 | vs as saved |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['method']} | {r['torch_images_per_s']:.0f} | {r['torch_float32_images_per_s']:.0f} | "
              f"{r['onnxruntime_images_per_s']:.0f} | {r['max_diff_vs_float32_relative_to_largest']:.1e} | "
              f"{r['max_diff_vs_saved_relative_to_largest']:.1e} |")
    if a.out:
        a.out.write_text(json.dumps({"threads": a.threads, "results": results}, indent=2))


if __name__ == "__main__":
    main()
