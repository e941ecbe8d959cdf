"""AUROC and FPR95 of the deployment models (benchmarks/deploy_model.py: `geom` and `layers` on
MNIST digit 0, `msp` on digits 0-5) on the whole MNIST test set, scored in float32 and in bfloat16
(the same weights): how far the scoring precision moves the headline figures.

    python benchmarks/precision_auroc.py   # writes runs/auroc_precision.json
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from oodscope.data import load
from oodscope.detectors import load as load_model
from oodscope.metrics import evaluate

MODELS = {"geom-mnist": lambda y: y != 0, "layers-mnist": lambda y: y != 0, "msp-mnist": lambda y: y > 5}


def main() -> None:
    torch.set_num_threads(1)
    test = load("mnist", "test")
    out = {}
    for name, is_ood in MODELS.items():
        det = load_model(Path("runs/deploy") / name)
        s32 = det.score(test.images)
        det.config["precision"] = "bfloat16"
        det.upstream = det.upstream.scoring_view(det.config)
        s16 = det.score(test.images)
        out[name] = {"float32": evaluate(s32, is_ood(test.labels)), "bfloat16": evaluate(s16, is_ood(test.labels))}
        print(name, json.dumps(out[name]), flush=True)
    Path("runs/auroc_precision.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
