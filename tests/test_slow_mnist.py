"""Slow end-to-end run (excluded by default; `bash scripts/test.sh -m slow`): the spine's benchmark
command for one hard MNIST class with the cpu preset, as documented in docs/lab/BENCHMARKS.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_mnist_class8_cpu_preset(tmp_path, data_root):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "oodscope.cli", "bench", "--dataset", "mnist", "--methods", "geom,layers",
           "--classes", "8", "--oe", "emnist-letters", "--n-oe", "16", "--seeds", "0", "--preset", "cpu",
           "--data-root", str(data_root), "--no-progress", "--out", str(out)]
    subprocess.run(cmd, check=True, timeout=900)
    rows = {r["method"]: r["metrics"] for r in map(json.loads, Path(out / "results.jsonl").read_text().splitlines())}
    assert rows["layers"]["auroc"] > 95.0 and rows["layers"]["auroc"] > rows["geom"]["auroc"]
