"""The adapter's cost as whole processes: ``msp`` scored through ``ModelAdapter`` (A) against the
model's own forward pass and the same score on the same float batches (B), in the same memory format.

Both processes import the same modules, build 20,000 random uint8 28x28 images and score them three
times; A also fits ``msp`` (nothing but the adapter's facts) on 2,000 of them and converts the images
itself (checks, float conversion, batches, the memory format), B converts them once. The model is
``benchmarks/own_features.py``'s letters LeNet (``--models DIR`` there saves ``letters.pt``). Run A
and B alternately several times and compare their wall times pair by pair, e.g. under
``/usr/bin/time -f %e``:

    python benchmarks/adapter_cost.py adapter cl   # A, channels_last (ModelAdapter(..., channels_last=True))
    python benchmarks/adapter_cost.py plain cl     # B, the same format
    python benchmarks/adapter_cost.py adapter nchw # A, the default: what plain torch hands a model
    python benchmarks/adapter_cost.py plain nchw
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from own_features import LeNet  # noqa: E402

from oodscope.detectors import create  # noqa: E402
from oodscope.training.core import in_format  # noqa: E402
from oodscope.upstream.adapter import ModelAdapter  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["adapter", "plain"])
    ap.add_argument("format", choices=["cl", "nchw"])
    ap.add_argument("--model", default="runs/own_features_models/letters.pt")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = LeNet(26)
    model.load_state_dict(torch.load(args.model, weights_only=True))
    model.eval()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20000, 1, 28, 28), dtype=np.uint8)
    cl = args.format == "cl"
    if args.mode == "adapter":
        det = create("msp").fit(images[:2000], labels=rng.integers(0, 26, 2000),
                                upstream=ModelAdapter(model, "hidden", "fc", channels_last=cl))
        for _ in range(3):
            det.score(images)
        return
    create("msp")  # the same imports and registry as A
    with torch.no_grad():
        x = in_format(torch.from_numpy(images).float().div_(255), torch.channels_last if cl else torch.contiguous_format)
        for _ in range(3):
            z = torch.cat([model(x[i:i + 512]) for i in range(0, len(x), 512)])
            -torch.softmax(z.double(), 1).max(1).values.numpy()


if __name__ == "__main__":
    main()
