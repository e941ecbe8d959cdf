"""Seconds per certificate with the float64 bounds (rounding=False) and the sound float32 bounds
(rounding=True), interleaved on the same images, networks and machine state (one thread).

usage: python benchmarks/verify_timing.py MODEL N_DEEPPOLY N_INTERVAL EPS...
"""
import json
import sys

import torch

from oodscope.bench.measured.verification import VerificationPlan, suite_context
from oodscope.verify import certify

torch.set_num_threads(1)
model, n_dp, n_iv, eps_list = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), [float(e) for e in sys.argv[4:]]
plan = VerificationPlan.for_preset("cpu")
ctx = suite_context(plan, "runs/cache-verify")
clf, _ = ctx.net(model)
for method, n in (("interval", n_iv), ("deeppoly", n_dp)):
    x, y = ctx.images(n)
    for eps in eps_list:
        secs = {False: [], True: []}
        share, margin = {}, {}
        for i in range(x.shape[0]):  # alternate per image
            for rounding in ((False, True) if i % 2 == 0 else (True, False)):
                r = certify(clf, x[i:i + 1], eps, method, label=y[i:i + 1], rounding=rounding)
                secs[rounding].append(float(r.seconds[0]))
                share.setdefault(rounding, []).append(bool(r.certified[0]))
                margin.setdefault(rounding, []).append(float(r.margin[0]))
        row = {"model": model, "method": method, "eps": eps, "n": int(x.shape[0]),
               **{f"s_{'float32' if k else 'float64'}": sum(v) / len(v) for k, v in secs.items()},
               **{f"certified_{'float32' if k else 'float64'}": 100 * sum(v) / len(v) for k, v in share.items()}}
        drop = sorted(a - b for a, b in zip(margin[False], margin[True], strict=True))
        row.update(margin_drop_median=drop[len(drop) // 2], margin_drop_max=drop[-1],
                   margin_float64_median=sorted(margin[False])[len(drop) // 2])
        print(json.dumps(row), flush=True)
