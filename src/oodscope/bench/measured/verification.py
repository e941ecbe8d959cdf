"""The ``verification`` suite (Takahashi, "Deep learning: reliability of inference", University of
Aizu lecture notes, n.d., section "品質保証の取り組み"): certified robustness, geometric certificates and
neuron coverage of the classifiers of a multi-class benchmark.

Per seed s, on fixed subsets of the in-distribution test images (the same for every model):

* certified accuracy — the share of images whose true class is proven to stay the arg-max of the
  deployed classifier (float32 scoring, its ``precision``; the bounds include its float32 rounding,
  :mod:`oodscope.verify.rounding`) on the whole L∞ ball of radius ε (inside [0, 1]) — for each
  model (``standard``: the benchmark's classifier; ``adversarial``: PGD-trained, Madry et al. 2018; ``certified``: trained with interval
  bounds, Gowal et al. 2018), each ε and each bound method (``interval``, ``deeppoly``;
  :mod:`oodscope.verify`), with the seconds per certificate. A DeepPoly row also records the
  interval certificates of the same images, and how many of those DeepPoly lost (must be 0);
* the soundness check: PGD with random restarts inside the ball of every certified image, against
  the deployed model (``clf.differentiable()``: the classifier in its scoring precision, float32,
  as ``Classifier.logits`` computes it; not the float64 copy the bounds are computed on); the
  number of images whose prediction it changes must be 0 (``pgd_flips``), and PGD's accuracy on
  all images is an upper bound of the certified accuracy;
* geometric certificates (DeepG-style, :func:`oodscope.verify.certify_rotation`): the share of
  images whose class is proven constant for every rotation within ±θ, with a check on densely
  sampled angles (``sampled_flips``, must be 0): the deployed classifier (``Classifier.logits``,
  float32) on each rotated image (computed in float64, rounded to float32);
* neuron coverage (DeepXplore) of the test images, of PGD adversarial examples of them and of OOD
  test images, per layer and overall, under each coverage definition of the plan: DeepXplore's
  (each channel of a feature map one neuron, activations min-max scaled per layer and input,
  threshold 0.25), the same with every channel × position a neuron, and "the ReLU fired" (raw
  activation > 0, per position).

A model that scores in bfloat16 is refused (:func:`oodscope.verify.require_float32`). The
certificate and rotation cells carry ``"bounds": "float32"`` in their variant: rows measured before
the bounds included the float32 rounding (float64 bounds of the network in exact arithmetic) have
other keys, so a rerun in their directory measures anew instead of reusing them, and the tables
label them "(float64 bounds)".

Rows follow the common format (``method`` = the model, ``variant`` = what is measured); a rerun
skips finished rows. ``table.md`` shows the suite's tables; ``experiment.json`` records the plan (its
``measured`` section).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oodscope.adversarial.robust import make_attack
from oodscope.bench.config import RunOptions
from oodscope.bench.measured.common import Job, classifier_settings, fixed_subset, measurement_cell, run_measured, shared_classifier
from oodscope.bench.measured.robustness import ROBUST_MODELS
from oodscope.detectors import UpstreamCache, default_cache_dir
from oodscope.upstream.classifier import ROBUST_SETTINGS
from oodscope.inputs import as_images
from oodscope.errors import InputError
from oodscope.protocols import Cell, DataStore, MultiClass, Task
from oodscope.verify import METHODS, certify, certify_rotation, neuron_coverage
from oodscope.verify.geometric import rotate
from oodscope.verify.layers import DTYPE

# the cpu LeNet trained with interval bounds at the largest ε certified, the radius ramped over
# the first 40 % of 10 epochs (a slow ramp, as Gowal et al. stress)
CERTIFIED_SETTINGS: dict[str, Any] = {"adversarial": "ibp", "adv_eps": 0.3, "adv_warmup": 0.4, "epochs": 10}
# the verifiers take LeNets (convolution, ReLU, max pooling, linear), so the paper preset replaces
# its Wide-ResNet by the same LeNets trained longer, the certified one at a radius above the largest
# certified (never run: no GPU was lent)
_LENET: dict[str, Any] = {"arch": "lenet", "widths": [32, 64], "hidden": 128, "dropout": 0.0}
# the classifier settings each model adds to the preset's, per preset
VERIFY_MODELS: dict[str, dict[str, dict[str, Any]]] = {
    "cpu": {"standard": {}, "adversarial": ROBUST_SETTINGS, "certified": CERTIFIED_SETTINGS},
    "paper": {"standard": {**_LENET, "epochs": 30}, "adversarial": {**_LENET, **ROBUST_MODELS["paper"]["adversarial"]},
              "certified": {**_LENET, **CERTIFIED_SETTINGS, "adv_eps": 0.4, "epochs": 100}},
    "smoke": {"standard": {}, "adversarial": ROBUST_MODELS["smoke"]["adversarial"],
              "certified": {**CERTIFIED_SETTINGS, "epochs": 1, "adv_eps": 0.1}},
}
VERIFY_MODELS["demo"] = VERIFY_MODELS["smoke"]
COVERAGE_INPUTS = ("test", "adversarial", "ood")
BOUNDS = "float32"  # what the certificates bound: the float32 network, its rounding included
COVERAGE_DEFINITIONS: tuple[dict[str, Any], ...] = (
    {"unit": "channel", "scale": True, "threshold": 0.25},  # DeepXplore's code: channel means of the scaled map
    {"unit": "position", "scale": True, "threshold": 0.25},
    {"unit": "position", "scale": False, "threshold": 0.0},  # the ReLU fired
)


@dataclass
class VerificationPlan:
    """What the suite measures (defaults: the cpu preset's).

    Attributes:
        benchmark: The multi-class benchmark (``--protocol``).
        preset: Settings preset of the classifiers.
        seeds: Seeds.
        models: Models verified (keys of :data:`VERIFY_MODELS`).
        eps: L∞ radii of the certificates (pixels in [0, 1]).
        methods: Bound methods.
        n_interval: Test images certified with interval bounds (a fixed random subset; 0 = all).
        n_deeppoly: Test images certified with DeepPoly (the first of the same subset).
        pgd_steps: Steps of the soundness check's PGD.
        pgd_restarts: Its random restarts.
        rotations: Rotation ranges ±θ in degrees.
        splits_per_degree: Sub-intervals of the angle per degree of the range.
        rotation_method: Bound method of the rotation certificates.
        n_rotation: Test images of the rotation certificates.
        sampled_angles: Angles sampled over ±θ to check the certified images.
        n_coverage: Images of each coverage input set.
        coverage: Coverage definitions, each ``{"unit", "scale", "threshold"}``
            (:func:`oodscope.verify.neuron_coverage`).
        coverage_eps: ε of the PGD examples whose coverage is measured.
    """

    benchmark: str = "mnist-vs-letters"
    preset: str = "cpu"
    seeds: list[int] = field(default_factory=lambda: [0])
    models: list[str] = field(default_factory=lambda: ["standard", "adversarial", "certified"])
    eps: list[float] = field(default_factory=lambda: [0.01, 0.05, 0.1, 0.2, 0.3])
    methods: list[str] = field(default_factory=lambda: ["interval", "deeppoly"])
    n_interval: int = 1000
    n_deeppoly: int = 100
    pgd_steps: int = 40
    pgd_restarts: int = 5
    rotations: list[float] = field(default_factory=lambda: [5.0, 10.0, 15.0])
    splits_per_degree: float = 1.0
    rotation_method: str = "deeppoly"
    n_rotation: int = 20
    sampled_angles: int = 61
    n_coverage: int = 1000
    coverage: list[dict[str, Any]] = field(default_factory=lambda: [dict(c) for c in COVERAGE_DEFINITIONS])
    coverage_eps: float = 0.3

    @classmethod
    def for_preset(cls, preset: str, **given: Any) -> VerificationPlan:
        """The plan of ``preset``: the paper preset certifies the whole test set with intervals and
        1,000 images with DeepPoly; smoke and demo a few images (for tests)."""
        small = {"n_interval": 20, "n_deeppoly": 4, "eps": [0.01, 0.1], "pgd_steps": 5, "pgd_restarts": 2,
                 "rotations": [2.0], "splits_per_degree": 1.0, "n_rotation": 3, "sampled_angles": 9, "n_coverage": 50}
        base = {"paper": {"n_interval": 0, "n_deeppoly": 1000, "n_rotation": 100},
                "smoke": small, "demo": small}.get(preset, {})
        return cls(preset=preset, **{**base, **given})

    def check(self) -> None:
        if self.preset not in VERIFY_MODELS:
            raise InputError(f"verification: no models for preset {self.preset!r}; known: {', '.join(VERIFY_MODELS)}")
        unknown = [m for m in self.models if m not in VERIFY_MODELS[self.preset]]
        if unknown or not self.models:
            raise InputError(f"verification: unknown models {unknown}; known: {', '.join(VERIFY_MODELS[self.preset])}")
        bad = [m for m in [*self.methods, self.rotation_method] if m not in METHODS]
        if bad:
            raise InputError(f"verification: unknown bound methods {bad}; known: {', '.join(METHODS)}")
        if any(set(c) != {"unit", "scale", "threshold"} for c in self.coverage):
            raise InputError("verification: each coverage definition needs exactly unit, scale and threshold")
        if any(not 0 < e <= 1 for e in [*self.eps, self.coverage_eps]):
            raise InputError("verification: every eps must be in (0, 1]")
        if any(not 0 < t < 180 for t in self.rotations) or self.splits_per_degree <= 0:
            raise InputError("verification: rotations must be in (0, 180) degrees and splits per degree > 0")
        if min(self.n_interval, self.n_deeppoly, self.n_rotation, self.n_coverage) < 0 or self.pgd_steps < 1 \
                or self.pgd_restarts < 1 or self.sampled_angles < 2:
            raise InputError("verification: image counts must be >= 0, PGD steps and restarts >= 1, sampled angles >= 2")


def model_settings(model: str, preset: str, device: str | None = None, seed: int = 0) -> dict[str, Any]:
    """The classifier settings (as a ``msp`` config) of ``model`` under ``preset``."""
    return classifier_settings(VERIFY_MODELS, model, preset, device, seed)


def plan_cells(plan: VerificationPlan) -> list[tuple[Cell, Job]]:
    """Every measurement as (cell, what to do), seed by seed: certificates, coverage, then the
    rotation certificates (the slowest) model by model."""
    protocol = MultiClass(plan.benchmark)
    out: list[tuple[Cell, Job]] = []

    def add(model: str, seed: int, variant: dict[str, Any]) -> None:
        out.append((measurement_cell(protocol, model, seed, plan.preset, variant), {**variant, "model": model}))

    for s in plan.seeds:
        for m in plan.models:
            for method in plan.methods:
                n = plan.n_interval if method == "interval" else plan.n_deeppoly
                for e in plan.eps:
                    add(m, s, {"kind": "certify", "method": method, "eps": e, "n": n, "bounds": BOUNDS,
                               "pgd_steps": plan.pgd_steps, "pgd_restarts": plan.pgd_restarts})
            for inputs in COVERAGE_INPUTS:
                for definition in plan.coverage:
                    add(m, s, {"kind": "coverage", "inputs": inputs, "n": plan.n_coverage, **definition,
                               **({"eps": plan.coverage_eps, "pgd_steps": plan.pgd_steps} if inputs == "adversarial" else {})})
        for m in plan.models:
            for theta in plan.rotations:
                add(m, s, {"kind": "rotation", "theta": theta, "method": plan.rotation_method, "n": plan.n_rotation,
                           "bounds": BOUNDS, "splits": max(1, round(2 * theta * plan.splits_per_degree)),
                           "sampled_angles": plan.sampled_angles})
    return out


class _Context:
    """The task, cache, test subsets and networks of one seed."""

    def __init__(self, plan: VerificationPlan, task: Task, cache: UpstreamCache, seed: int, device: str | None) -> None:
        self.plan, self.task, self.cache, self.seed, self.device = plan, task, cache, seed, device
        inside = np.flatnonzero(~task.is_ood)
        counts = (plan.n_interval, plan.n_deeppoly, plan.n_rotation, plan.n_coverage)
        self.id_idx = inside[fixed_subset(len(inside), 0 if 0 in counts else max(counts), 0)]  # each takes its first n
        outside = np.flatnonzero(task.is_ood)
        self.ood_idx = outside[fixed_subset(len(outside), plan.n_coverage, 1)]
        self.nets: dict[str, tuple[Any, Any]] = {}
        self.attacked: dict[tuple[Any, ...], torch.Tensor] = {}

    def images(self, n: int, ood: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The first ``n`` images of the in-distribution subset (0 = all) and their classes, or of
        the OOD subset (no classes)."""
        idx = self.ood_idx if ood else self.id_idx
        idx = idx if n == 0 else idx[:n]
        x = as_images(self.task.test.images[idx], "OOD test images" if ood else "test images")
        return x, None if ood else torch.as_tensor(self.task.test_class[idx], dtype=torch.int64)

    def net(self, model: str) -> tuple[Any, Any]:
        if model not in self.nets:
            self.nets[model] = shared_classifier(model_settings(model, self.plan.preset, self.device, self.seed), self.task,
                                                 self.cache)
        return self.nets[model]


def _certify(ctx: _Context, job: Job) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    clf, info = ctx.net(job["model"])
    x, y = ctx.images(job["n"])
    result = certify(clf, x, job["eps"], job["method"], label=y)  # refuses a model scoring in bfloat16
    attack = make_attack("pgd", job["eps"], job["pgd_steps"], restarts=job["pgd_restarts"], seed=ctx.seed)
    model = clf.differentiable()  # the deployed model: its scoring precision (float32, certify checked)
    x_adv = attack(model, x, y).detach()
    with torch.no_grad():
        adv_pred = model(x_adv).argmax(dim=1).cpu()
    certified = result.certified
    metrics: dict[str, Any] = {
        "certified": 100.0 * result.share, "clean_accuracy": 100.0 * float(result.correct.double().mean()),
        "pgd_accuracy": 100.0 * float((adv_pred == y).double().mean()),
        "pgd_flips": int((certified & (adv_pred != y)).sum()), "n_certified": int(certified.sum()), "n_images": len(y),
        "seconds_per_certificate": result.seconds_per_certificate,
        "median_margin": float(result.margin[result.correct].median()) if bool(result.correct.any()) else float("nan"),
    }
    if job["method"] == "deeppoly":  # the interval certificates of the same images: never more
        box = certify(clf, x, job["eps"], "interval", label=y).certified
        metrics.update(interval_certified_same=100.0 * float(box.double().mean()), lost_to_interval=int((box & ~certified).sum()))
    return metrics, info, clf.settings


def _rotation(ctx: _Context, job: Job) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    clf, info = ctx.net(job["model"])
    x, y = ctx.images(job["n"])
    result = certify_rotation(clf, x, job["theta"], job["method"], splits=job["splits"], label=y)
    flips = 0
    certified = result.certified
    if bool(certified.any()):  # every sampled angle must keep the class of a certified image
        xc, yc = x[certified].to(DTYPE), y[certified]
        for angle in np.linspace(-job["theta"], job["theta"], job["sampled_angles"]):
            # the deployed classifier (float32 logits) on the float32 image nearest to the rotation
            pred = clf.logits(rotate(xc, float(angle)).clamp(0.0, 1.0).float()).argmax(dim=1)
            flips += int((pred != yc).sum())
    boxes = result.extra["deeppoly_boxes"].double()
    metrics = {"certified": 100.0 * result.share, "clean_accuracy": 100.0 * float(result.correct.double().mean()),
               "n_certified": int(certified.sum()), "n_images": len(y), "seconds_per_image": result.seconds_per_certificate,
               "deeppoly_boxes": float(boxes.mean()) if boxes.numel() else 0.0, "sampled_flips": flips}
    return metrics, info, clf.settings


def _coverage(ctx: _Context, job: Job) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    clf, info = ctx.net(job["model"])
    x, y = ctx.images(job["n"], ood=job["inputs"] == "ood")
    if job["inputs"] == "adversarial":  # the same examples for every coverage definition
        key = (job["model"], job["n"], job["eps"], job["pgd_steps"])
        if key not in ctx.attacked:
            attack = make_attack("pgd", job["eps"], job["pgd_steps"], seed=ctx.seed)
            ctx.attacked = {key: attack(clf.differentiable(amp=False), x, y).detach()}
        x = ctx.attacked[key]
    cov = neuron_coverage(clf, x, threshold=job["threshold"], scale=job["scale"], unit=job["unit"])
    metrics: dict[str, Any] = {"coverage": 100.0 * cov.overall, "n_images": int(x.shape[0])}
    metrics.update({f"coverage:{layer}": 100.0 * share for layer, share in cov.per_layer.items()})
    return metrics, info, clf.settings


RUNNERS = {"certify": _certify, "rotation": _rotation, "coverage": _coverage}


def suite_context(plan: VerificationPlan, cache_dir: str | Path, seed: int = 0, device: str | None = None,
                  data_root: str | Path | None = None) -> _Context:
    """The networks and test images of ``plan``'s rows for one seed, outside a run: the same task (the
    split the suite's cells share), the same fixed subsets (``images(n)`` takes the first ``n``) and the
    networks from the cache ``cache_dir`` (trained there first if absent). For scripts that recompute
    a measurement of the suite in another way, e.g. with other bounds."""
    protocol = MultiClass(plan.benchmark)
    task = protocol.task(protocol.cell("msp", seed, plan.preset, 0), DataStore(data_root, False))
    return _Context(plan, task, UpstreamCache(cache_dir), seed, device)


def run_verification(plan: VerificationPlan, out: str | Path, run: RunOptions, command: list[str] | None = None) -> list[dict[str, Any]]:
    """Run every unfinished measurement of ``plan`` into ``out``; returns every row of the plan."""
    plan.check()
    cache = UpstreamCache(run.cache_dir or default_cache_dir() if run.disk_cache else None)
    return run_measured("verification", plan, plan_cells(plan), RUNNERS,
                        lambda task, seed: _Context(plan, task, cache, seed, run.device), out, run, command)
