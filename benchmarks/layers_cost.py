"""Where the time of a ``layers`` score goes, on MNIST test images: f's forward passes over the
transformations, g_theta, the kNN similarities, and the whole score (images per batch of 512, best
of three, seconds); the multiply-accumulates per image and transformation of f, g_theta and the kNN
part (counted on the modules, independent of any engine); and f alone in float32, in bfloat16
autocast and compiled by ``torch.compile`` (float32), to show what bounds torch's float32 path.

    python benchmarks/layers_cost.py runs/deploy/layers-mnist --threads 2 [--compile] [--profile]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from oodscope.data import load
from oodscope.detectors import load as load_model


def best(fn, rounds: int = 3) -> float:
    fn()
    out = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        out = min(out, time.perf_counter() - t)
    return out


def macs(det) -> dict[str, int]:
    """Multiply-accumulates per image and transformation of f's and g_theta's convolutions and linear
    layers, and of the kNN similarities (one dot product per bank image)."""
    count = {"f": 0, "g": 0}

    def hook(tag: str):
        def h(m, _inputs, out):
            if isinstance(m, torch.nn.Conv2d):
                count[tag] += out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
            elif isinstance(m, torch.nn.Linear):
                count[tag] += m.in_features * m.out_features
        return h

    handles = [m.register_forward_hook(hook("f")) for m in det.base.net.modules()]
    handles += [m.register_forward_hook(hook("g")) for m in det.head.modules()]
    with torch.inference_mode():
        xt = det.base.normalize(torch.rand(1, det.fitted["channels"], *det.fitted["size"]))
        taps = det.base.taps(xt, det._needed_taps())
        det.head.eval()(det._features(xt, 0, taps))
    for h in handles:
        h.remove()
    count["knn"] = int(det.bank.features.shape[1] * det.bank.features.shape[2]) if det.bank is not None else 0
    return count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--compile", action="store_true", help="also time f under torch.compile (tens of seconds)")
    ap.add_argument("--profile", action="store_true", help="also print torch's profile of g_theta over the 8 batches")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    det = load_model(a.model)
    x = torch.from_numpy(load("mnist", "test").images[:512]).float().div_(255)
    f, need, parts = det.base, det._needed_taps(), det._modules()
    row: dict[str, object] = {"threads": a.threads, "macs": macs(det)}
    with torch.inference_mode():
        xn = f.normalize(x)
        xts = [f.transforms.one(xn, k).contiguous(memory_format=f.memory) for k in range(len(f.transforms))]
        taps = [f.taps(xt, need) for xt in xts]
        row["f"] = best(lambda: [f.taps(xt, need) for xt in xts])
        row["g"] = best(lambda: [parts["g"](det._features(xts[k], k, taps[k])) for k in range(len(xts))])
        if "knn" in parts:
            row["knn"] = best(lambda: [parts["knn"].similarity(taps[k][det.config["knn_tap"]], k) for k in range(len(xts))])
        row["whole"] = best(lambda: det._sums(x))
        if a.profile:
            from torch.profiler import ProfilerActivity, profile
            feats = [det._features(xts[k], k, taps[k]) for k in range(len(xts))]
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for k in range(len(xts)):
                    parts["g"](feats[k])
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))
        net = f.net.eval()
        one = xts[0]
        row["f_one_float32"] = best(lambda: net(one))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            row["f_one_bfloat16"] = best(lambda: net(one))
        if a.compile:
            compiled = torch.compile(net)
            start = time.perf_counter()
            compiled(one)
            row["compile_seconds"] = time.perf_counter() - start
            row["f_one_compiled_float32"] = best(lambda: compiled(one))
    m = row["macs"]
    row["macs_g_knn_over_f"] = (m["g"] + m["knn"]) / m["f"]
    row["time_whole_over_f"] = row["whole"] / row["f"]
    print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
