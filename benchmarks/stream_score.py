"""Streaming scoring of a large folder: `oodscope score MODEL FOLDER --out scores.csv` on `--n`
PNG files generated from MNIST (the 70,000 train and test digits, then shifted copies) in a
temporary folder. Records images/s and the peak resident memory of the scoring process, then
kills a second run part-way (SIGKILL after `--kill-after` seconds), resumes it, and checks that
the resumed CSV holds exactly one row per file, in order, with the scores of the uninterrupted run.

    python benchmarks/stream_score.py runs/deploy/layers-mnist0 --n 100000 --out runs/deploy/stream.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from oodscope.data import load


def write_pngs(folder: Path, n: int) -> None:
    """``n`` MNIST digits as PNG files in ``folder`` (1,000 per sub-folder)."""
    digits = np.concatenate([load("mnist", "train").images[:, 0], load("mnist", "test").images[:, 0]])
    for i in range(n):
        a = digits[i % len(digits)]
        if i >= len(digits):  # further copies shifted by one to three pixels
            a = np.roll(a, (i // len(digits)) % 3 + 1, axis=1)
        sub = folder / f"{i // 1000:03d}"
        if i % 1000 == 0:
            sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(a).save(sub / f"{i:06d}.png", compress_level=1)


def score(model: Path, folder: Path, out: Path, threads: int, kill_after: float | None = None) -> dict:
    cmd = [sys.executable, "-m", "oodscope.cli", "score", str(model), str(folder), "--out", str(out),
           "--threads", str(threads), "--no-progress"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    killed = False
    if kill_after is not None:
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            killed = True
    _, err = proc.communicate()
    if not killed and proc.returncode != 0:
        raise SystemExit(f"oodscope score failed: {err}")
    return {"wall_s": time.perf_counter() - start, "killed": killed, "stderr": err.strip().splitlines()[-1:] if err else []}


def rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))[1:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--kill-after", type=float, default=30.0)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="oodscope-stream-"))
    try:
        t = time.perf_counter()
        write_pngs(tmp / "images", a.n)
        made = time.perf_counter() - t
        full = score(a.model, tmp / "images", tmp / "full.csv", a.threads)
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
        first = score(a.model, tmp / "images", tmp / "resumed.csv", a.threads, kill_after=a.kill_after)
        rows_at_kill = len(rows(tmp / "resumed.csv"))
        resumed = score(a.model, tmp / "images", tmp / "resumed.csv", a.threads)
        r_full, r_res = rows(tmp / "full.csv"), rows(tmp / "resumed.csv")
        same_files = [r[0] for r in r_full] == [r[0] for r in r_res]
        diff = max(abs(float(x[1]) - float(y[1])) for x, y in zip(r_full, r_res))
        result = {
            "n": a.n, "threads": a.threads, "cpu_count": os.cpu_count(), "png_write_s": made,
            "full": {**full, "rows": len(r_full), "images_per_s": a.n / full["wall_s"], "peak_rss_mib": peak_mib},
            "kill": {"after_s": a.kill_after, "killed": first["killed"], "rows_at_kill": rows_at_kill},
            "resumed": {**resumed, "rows": len(r_res), "unique_files": len({r[0] for r in r_res}),
                        "same_files_in_order": same_files, "max_score_difference": diff},
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result, indent=2))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
