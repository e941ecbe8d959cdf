"""What the sound float32 bounds cost in margin: the same network and images certified with the float64
bounds (rounding=False) and the sound ones (rounding=True); prints how many images each certifies,
the float64 and sound margins of the images only the float64 bounds certify, and the median margin
lost on the images the float64 bounds certify.

usage: python benchmarks/verify_margins.py MODEL METHOD EPS   e.g. adversarial interval 0.01
"""
import json
import sys

import torch

from oodscope.bench.measured.verification import VerificationPlan, suite_context
from oodscope.verify import certify

torch.set_num_threads(1)
model, method, eps = sys.argv[1], sys.argv[2], float(sys.argv[3])
plan = VerificationPlan.for_preset("cpu")
ctx = suite_context(plan, "runs/cache-verify")
clf, _ = ctx.net(model)
x, y = ctx.images(plan.n_interval if method == "interval" else plan.n_deeppoly)
f64 = certify(clf, x, eps, method, label=y, rounding=False)
sound = certify(clf, x, eps, method, label=y, rounding=True)
lost = f64.certified & ~sound.certified
both = f64.certified
print(json.dumps({
    "model": model, "method": method, "eps": eps, "n": len(y),
    "certified_float64": int(f64.certified.sum()), "certified_sound": int(sound.certified.sum()),
    "lost_float64_margins": sorted(round(v, 4) for v in f64.margin[lost].tolist()),
    "lost_sound_margins": sorted(round(v, 4) for v in sound.margin[lost].tolist()),
    "median_float64_margin_certified": float(f64.margin[both].median()) if both.any() else None,
    "median_margin_lost_certified": float((f64.margin[both] - sound.margin[both]).median()) if both.any() else None,
}, indent=1))
