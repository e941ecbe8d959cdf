"""Data-parallel training under torchrun, on the CPU with the gloo backend and 2 processes:
the ranks share each epoch without overlap, end with the same weights, rank 0 alone writes, and
the saved model loads and scores like any other."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from oodscope.data import load
from oodscope.detectors import load as load_model
from oodscope.training import distributed
from oodscope.results import ResultsLog, row_key

# Trains GEOM's f under torchrun and writes, per rank, the indices it trained on and a digest of
# its final weights.
RANK_SCRIPT = '''
import hashlib, json, os, sys
import numpy as np, torch
from oodscope.data import load
from oodscope.training import distributed
from oodscope.upstream.classifier import Classifier
from oodscope.upstream.geom_net import GeomNet
from oodscope.inputs import as_images
torch.set_num_threads(1)
train = load("digits", "train")
x = as_images(train.subset(train.labels == 3), "x")
seen = [int(i) for e in range(2) for b in distributed.epoch_batches(len(x), 32, torch.Generator(), e, 0) for i in b]
net = GeomNet(widths=[8, 8, 8], epochs=2, batch_size=32, transforms="rot4", progress=False).fit(x)
digest = lambda m: hashlib.sha256(b"".join(v.detach().float().numpy().tobytes() for v in m.state_dict().values())).hexdigest()
clf = Classifier(widths=[8, 16], hidden=32, epochs=1, batch_size=64, progress=False).fit(
    as_images(train, "x"), torch.as_tensor(train.labels))
out = {"rank": distributed.rank(), "world": distributed.world_size(), "seen": seen, "weights": digest(net.net),
       "classifier": digest(clf.net), "n": len(x), "steps": distributed.steps_per_epoch(len(x), 32)}
open(os.path.join(sys.argv[1], f"rank{distributed.rank()}.json"), "w").write(json.dumps(out))
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(free_port()), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def test_without_torchrun_nothing_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not distributed.active() and distributed.is_main() and distributed.world_size() == 1
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    got = torch.cat(list(distributed.epoch_batches(100, 32, g1, 0, 0)))
    assert torch.equal(got, torch.randperm(100, generator=g2))  # the one-process order, as before
    assert distributed.steps_per_epoch(100, 32) == 4
    assert distributed.all_agree(True) and not distributed.all_agree(False) and distributed.from_main([1]) == [1]
    net = torch.nn.Linear(2, 2)
    assert distributed.wrap(net, torch.device("cpu")) is net


@pytest.mark.slow  # ~10 s; the default run keeps torchrun end to end (fit saves once and scores)
def test_two_ranks_share_each_epoch_and_end_with_the_same_weights(tmp_path: Path) -> None:
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    torchrun(str(script), str(tmp_path))
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    assert r0["weights"] == r1["weights"], "DDP keeps the ranks' networks identical"
    assert r0["classifier"] == r1["classifier"]
    n, steps = r0["n"], r0["steps"]
    for e in range(2):  # per epoch the two shares cover every image, without overlap
        half = (n + 1) // 2
        a, b = r0["seen"][e * half:(e + 1) * half], r1["seen"][e * half:(e + 1) * half]
        assert sorted(set(a) | set(b)) == list(range(n)) and len(set(a) & set(b)) <= 1  # one pad image if n is odd
    assert steps == -(-half // 16) and r0["seen"][:half] != r0["seen"][half:]  # batch 32 = 16 a rank; reshuffled


def test_torchrun_fit_saves_once_and_the_model_scores_like_any_other(tmp_path: Path) -> None:
    train = load("digits", "train")
    folder = tmp_path / "train"
    folder.mkdir()
    for i, img in enumerate(train.subset(train.labels == 3).images[:120]):
        Image.fromarray(img[0]).save(folder / f"{i}.png")
    out = tmp_path / "model"
    done = torchrun("-m", "oodscope", "fit", "--method", "geom", "--train", str(folder), "--out", str(out),
                    "--preset", "smoke", "--threads", "1", "--set", "progress=false")
    assert done.stdout.count("saved") == 1  # rank 0 alone reports and saves
    det = load_model(out)
    test = load("digits", "test")
    s = det.score(test.images[:200])
    assert s.shape == (200,) and np.isfinite(s).all()


@pytest.mark.slow  # ~10 s; the default run keeps torchrun end to end (fit saves once and scores)
def test_torchrun_bench_writes_each_row_once(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["-m", "oodscope", "bench", "--dataset", "digits", "--oe", "digits", "--classes", "0,1", "--n-oe", "4",
            "--methods", "geom,layers", "--preset", "smoke", "--out", str(out), "--no-disk-cache", "--no-progress",
            "--threads", "1", "--set", "batch_size=64"]
    torchrun(*args)
    counts = Counter(row_key(r) for r in ResultsLog(out / "results.jsonl").rows())
    assert len(counts) == 4 and set(counts.values()) == {1}
    again = torchrun(*args)  # resumed: every rank knows there is nothing left
    assert "all 4 cells already finished" in again.stderr
    assert len(ResultsLog(out / "results.jsonl").rows()) == 4
