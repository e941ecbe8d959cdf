"""Scoring speed by precision and engine on MNIST: a saved float32 model scored by the library in
float32 (torch, the default), by the library in bfloat16 (the opt-in: the same weights with
``precision=bfloat16``), and by the engine of `oodscope score` / `oodscope serve` (its ONNX graph
under onnxruntime); beside them f's bare forward passes (every transformation, the taps only)
in float32 and bfloat16, the floor of a GEOM-family score. Images per second at `--threads`.

    python benchmarks/precision_speed.py runs/deploy/geom-mnist runs/deploy/layers-mnist --threads 1
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from oodscope.data import load
from oodscope.detectors import load as load_model
from oodscope.training.core import scoring_autocast
from oodscope.export.engine import GraphScorer


def timed(fn, x: np.ndarray, batch: int = 512, rounds: int = 2) -> tuple[np.ndarray, float]:
    """Scores and the best of ``rounds`` images-per-second over ``x`` in batches of ``batch``."""
    fn(x[:batch])  # warm-up
    best, out = 0.0, None
    for _ in range(rounds):
        t = time.perf_counter()
        out = np.concatenate([fn(x[i: i + batch]) for i in range(0, len(x), batch)])
        best = max(best, len(x) / (time.perf_counter() - t))
    return out, best


def bare_passes(det, precision: str):
    """f's forward passes over every transformation of a batch (uint8 images), nothing else."""
    f = det.upstream

    @torch.no_grad()
    def run(xb: np.ndarray) -> np.ndarray:
        xn = f.normalize(torch.from_numpy(xb).float().div_(255)).to(f.device)
        for k in range(len(f.transforms)):
            with scoring_autocast(f.device, precision):
                f.net.taps(f.transforms.one(xn, k).contiguous(memory_format=f.memory))
        return np.zeros(len(xb))

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", type=Path, nargs="+")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    x = load("mnist", "test").images[: a.n]
    results = []
    for path in a.models:
        det = load_model(path)
        assert det.precision == "float32", f"{path}: expected a float32 model"
        s32, ips32 = timed(det.score, x)
        bf = load_model(path)
        bf.config["precision"] = "bfloat16"
        bf.upstream = bf.upstream.scoring_view(bf.config)
        s16, ips16 = timed(bf.score, x)
        engine = GraphScorer(det, threads=a.threads)
        s_ort, ips_ort = timed(engine.score, x)
        row = {"model": str(path), "method": det.method, "threads": a.threads, "torch_float32": ips32,
               "torch_bfloat16": ips16, "onnxruntime_float32": ips_ort,
               "max_rel_bfloat16_vs_float32": float(np.abs(s16 - s32).max() / np.abs(s32).max()),
               "max_rel_onnxruntime_vs_float32": float(np.abs(s_ort - s32).max() / np.abs(s32).max())}
        if det.requires.upstream is not None and hasattr(det.upstream, "transforms"):
            row["f_bare_float32"] = timed(bare_passes(det, "float32"), x)[1]
            row["f_bare_bfloat16"] = timed(bare_passes(det, "bfloat16"), x)[1]
        results.append(row)
        print(json.dumps(row), flush=True)
    print("| model | threads | torch float32 | torch bfloat16 | onnxruntime float32 | f bare float32 | f bare bfloat16 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        bare = " | ".join(f"{r[k]:.0f}" if k in r else "" for k in ("f_bare_float32", "f_bare_bfloat16"))
        print(f"| {r['method']} | {r['threads']} | {r['torch_float32']:.0f} | {r['torch_bfloat16']:.0f} | "
              f"{r['onnxruntime_float32']:.0f} | {bare} |")
    if a.out:
        a.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
