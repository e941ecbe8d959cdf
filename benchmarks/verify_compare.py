"""The verification suite's certificates of the same networks and images with the former bounds
(float64, exact arithmetic: rounding=False), beside the suite's rows (sound float32 bounds).

usage: python benchmarks/verify_compare.py [--sound] OUT.jsonl MODEL[:method:eps,...] ...   e.g. standard:deeppoly:0.01 certified

``--sound``: the sound float32 bounds instead (rounding=True, as the suite computes them), without
the suite's attacks: to recompute the certificates alone after a change of the bounds.
"""
import json
import sys
import time

import torch

from oodscope.bench.measured.verification import VerificationPlan, suite_context
from oodscope.verify import certify
from oodscope.verify.geometric import certify_geometric

torch.set_num_threads(1)
sound = sys.argv[1] == "--sound"
if sound:
    sys.argv.pop(1)
bounds = "float32" if sound else "float64"
out = open(sys.argv[1], "a")
plan = VerificationPlan.for_preset("cpu")
ctx = suite_context(plan, "runs/cache-verify")
for spec in sys.argv[2:]:
    model, *rest = spec.split(":")
    jobs = [(rest[0], float(e)) for e in rest[1].split(",")] if rest and rest[0] != "rotation" else \
        [] if rest else [(m, e) for m in plan.methods for e in plan.eps]
    clf, _ = ctx.net(model)
    for method, eps in jobs:
        x, y = ctx.images(plan.n_interval if method == "interval" else plan.n_deeppoly)
        start = time.perf_counter()
        r = certify(clf, x, eps, method, label=y, rounding=sound)
        row = {"model": model, "kind": "certify", "method": method, "eps": eps, "bounds": bounds, "n": len(y),
               "certified": 100 * r.share, "seconds_per_certificate": r.seconds_per_certificate,
               "wall": time.perf_counter() - start}
        print(json.dumps(row), file=out, flush=True)
        print(row, flush=True)
    if not rest or rest[0] == "rotation":
        for theta in plan.rotations:
            x, y = ctx.images(plan.n_rotation)
            splits = max(1, round(2 * theta * plan.splits_per_degree))
            r = certify_geometric(clf, x, rotation=theta, method=plan.rotation_method, splits={"rotation": splits},
                                  label=y, rounding=sound)
            row = {"model": model, "kind": "rotation", "theta": theta, "bounds": bounds, "n": len(y),
                   "certified": 100 * r.share, "seconds_per_image": r.seconds_per_certificate}
            print(json.dumps(row), file=out, flush=True)
            print(row, flush=True)
