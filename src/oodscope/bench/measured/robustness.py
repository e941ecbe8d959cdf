"""The ``robustness`` suite (Takahashi, "Deep learning: reliability of inference", University of
Aizu lecture notes, n.d.: adversarial examples, transferability, adversarial training): classifiers
of a multi-class benchmark under attack, and OOD detectors under attack.

Per seed s it measures, on a fixed subset of the in-distribution test images:

* robust accuracy of each model — ``standard`` (the benchmark's classifier), ``adversarial``
  (PGD adversarial training, Madry et al. 2018) and ``fgsm-rs`` (FGSM with random start, Wong et
  al. 2020) — under FGSM and PGD-``steps`` at every ε, and under PGD-``strong_steps`` ×
  ``restarts`` random restarts at the largest ε for the adversarially trained ones;
* the targeted L1 attack of the notes (target class y + 1 mod K) on each model: success rate, and
  the L1 and L0 size of the perturbations that succeed;
* transfer success between two independently trained standard classifiers (seeds s and
  s + 100, i.e. ensemble member 1), both directions, PGD at every ε > 0;
* detectors under attack: the AUROC of each detector with a differentiable score when the OOD
  test images are perturbed by PGD (L∞, ε) to lower its score, i.e. to look in-distribution.

Each measurement is one row of ``results.jsonl`` in the common format (a cell of the benchmark
with ``method`` = the model, the detector or ``transfer`` and the attack as its ``variant``);
a rerun skips finished rows (:mod:`oodscope.bench.measured.common`). ``table.md`` shows the four
tables; ``experiment.json`` records the plan (its ``measured`` section). Networks come from the
upstream cache, so the standard classifier is the one every classifier-based detector of that
seed reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oodscope.adversarial import ascend, targeted_l1
from oodscope.adversarial.robust import make_attack, robust_accuracy, transfer_success
from oodscope.bench.config import RunOptions
from oodscope.bench.fitting import shared_upstream
from oodscope.bench.paper.methods import ROBUSTNESS_DETECTORS
from oodscope.bench.measured.common import classifier_settings, fixed_subset, measurement_cell, run_measured, shared_classifier
from oodscope.detectors import UpstreamCache, default_cache_dir, detector_class, settings_for
from oodscope.upstream.classifier import ROBUST_SETTINGS
from oodscope.upstream.ensemble_net import SEED_STRIDE
from oodscope.inputs import as_images
from oodscope.errors import InputError
from oodscope.metrics import evaluate
from oodscope.protocols import Cell, MultiClass, Task

# the classifier settings each model adds to the preset's, per preset
ROBUST_MODELS: dict[str, dict[str, dict[str, Any]]] = {
    "cpu": {"standard": {}, "adversarial": ROBUST_SETTINGS, "fgsm-rs": {**ROBUST_SETTINGS, "adversarial": "fgsm-rs"}},
    # Madry et al.: PGD-40 with step 0.01 while training
    "paper": {"standard": {}, "adversarial": {**ROBUST_SETTINGS, "adv_steps": 40, "adv_alpha": 0.01, "epochs": 30},
              "fgsm-rs": {**ROBUST_SETTINGS, "adversarial": "fgsm-rs", "epochs": 30}},
    "smoke": {"standard": {}, "adversarial": {"adversarial": "pgd", "adv_steps": 2},
              "fgsm-rs": {"adversarial": "fgsm-rs"}},
}
ROBUST_MODELS["demo"] = ROBUST_MODELS["smoke"]


@dataclass
class RobustnessPlan:
    """What the suite measures (defaults: the cpu preset's).

    Attributes:
        benchmark: The multi-class benchmark (``--protocol``).
        preset: Settings preset of the classifiers.
        seeds: Seeds.
        models: Models whose robust accuracy is measured.
        eps: L∞ radii (pixels in [0, 1]); 0 gives the clean accuracy.
        steps: PGD steps (step size 2.5 ε / steps, random start).
        strong_steps: Steps of the strong PGD, with ``restarts`` random restarts, at the largest
            ε, for the adversarially trained models.
        restarts: Random restarts of the strong PGD.
        n_test: In-distribution test images attacked (a fixed random subset; 0 = all).
        n_strong: Images attacked by the strong PGD.
        detectors: Detectors attacked (each with a differentiable score).
        detector_models: Models the single-network detectors are also attacked on.
        detector_eps: ε of the attacks on the detectors.
        n_ood: OOD test images attacked for the detectors (a fixed random subset).
        n_targeted: Images given to the targeted L1 attack.
    """

    benchmark: str = "mnist-vs-letters"
    preset: str = "cpu"
    seeds: list[int] = field(default_factory=lambda: [0])
    models: list[str] = field(default_factory=lambda: ["standard", "adversarial", "fgsm-rs"])
    eps: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.2, 0.3])
    steps: int = 40
    strong_steps: int = 100
    restarts: int = 10
    n_test: int = 2000
    n_strong: int = 500
    detectors: list[str] = field(default_factory=lambda: list(ROBUSTNESS_DETECTORS))
    detector_models: list[str] = field(default_factory=lambda: ["standard", "adversarial"])
    detector_eps: list[float] = field(default_factory=lambda: [0.1, 0.3])
    n_ood: int = 1000
    n_targeted: int = 100

    @classmethod
    def for_preset(cls, preset: str, **given: Any) -> RobustnessPlan:
        """The plan of ``preset``: the paper preset attacks the whole test set; smoke and demo a
        few images with short attacks (for tests)."""
        small = {"n_test": 200, "n_strong": 40, "n_ood": 200, "n_targeted": 20, "steps": 5, "strong_steps": 10, "restarts": 2,
                 "eps": [0.0, 0.3], "detectors": ROBUSTNESS_DETECTORS[:1], "detector_eps": [0.3]}
        base = {"paper": {"n_test": 0, "n_strong": 1000, "n_ood": 0}, "smoke": small, "demo": small}.get(preset, {})
        return cls(preset=preset, **{**base, **given})

    def check(self) -> None:
        if self.preset not in ROBUST_MODELS:
            raise InputError(f"robustness: no models for preset {self.preset!r}; known: {', '.join(ROBUST_MODELS)}")
        unknown = [m for m in [*self.models, *self.detector_models] if m not in ROBUST_MODELS[self.preset]]
        if unknown:
            raise InputError(f"robustness: unknown models {unknown}; known: {', '.join(ROBUST_MODELS[self.preset])}")
        if any(not 0 <= e <= 1 for e in [*self.eps, *self.detector_eps]):
            raise InputError("robustness: every eps must be in [0, 1]")
        for d in self.detectors:
            detector_class(d)
        if self.steps < 1 or self.strong_steps < 1 or self.restarts < 1 or self.n_test < 0 or self.n_strong < 1:
            raise InputError("robustness: steps, strong steps, restarts and n-strong must be positive, n-test >= 0")


def model_settings(model: str, preset: str, device: str | None = None, seed: int = 0) -> dict[str, Any]:
    """The classifier settings (as a ``msp`` config) of ``model`` under ``preset``."""
    return classifier_settings(ROBUST_MODELS, model, preset, device, seed)


def plan_cells(plan: RobustnessPlan) -> list[tuple[Cell, dict[str, Any]]]:
    """Every measurement as (cell, what to do), seed by seed."""
    protocol = MultiClass(plan.benchmark)
    top = max(plan.eps)
    out: list[tuple[Cell, dict[str, Any]]] = []
    for s in plan.seeds:
        for m in plan.models:
            for e in plan.eps:
                attacks = [("none", 0)] if e == 0 else [("fgsm", 1), ("pgd", plan.steps)]
                for name, steps in attacks:
                    v = {"attack": name, "eps": e, "steps": steps, "restarts": 1}
                    out.append((measurement_cell(protocol, m, s, plan.preset, v), {"kind": "accuracy", "model": m, **v}))
            if m != "standard" and top > 0:
                v = {"attack": "pgd", "eps": top, "steps": plan.strong_steps, "restarts": plan.restarts}
                out.append((measurement_cell(protocol, m, s, plan.preset, v), {"kind": "accuracy", "model": m, **v}))
            if plan.n_targeted > 0:
                v = {"attack": "targeted-l1", "target": "y+1"}
                out.append((measurement_cell(protocol, m, s, plan.preset, v), {"kind": "targeted", "model": m, **v}))
        for e in [e for e in plan.eps if e > 0]:
            for src, tgt in (("standard", "standard-b"), ("standard-b", "standard")):
                v = {"attack": "pgd", "eps": e, "steps": plan.steps, "source": src, "target": tgt}
                out.append((measurement_cell(protocol, "transfer", s, plan.preset, v), {"kind": "transfer", **v}))
        for d in plan.detectors:
            for m in plan.detector_models if detector_class(d).requires.upstream.kind == "classifier" else ["standard"]:
                for e in [0.0, *plan.detector_eps]:
                    v = {"model": m, "attack": "none" if e == 0 else "pgd", "eps": e, "steps": 0 if e == 0 else plan.steps}
                    out.append((measurement_cell(protocol, d, s, plan.preset, v), {"kind": "detector", "detector": d, **v}))
    return out


class _Context:
    """The task, cache and networks of one seed."""

    def __init__(self, plan: RobustnessPlan, task: Task, cache: UpstreamCache, seed: int, device: str | None) -> None:
        self.plan, self.task, self.cache, self.seed, self.device = plan, task, cache, seed, device
        inside = np.flatnonzero(~task.is_ood)
        self.id_idx = inside[fixed_subset(len(inside), plan.n_test, 0)]
        outside = np.flatnonzero(task.is_ood)
        self.ood_idx = outside[fixed_subset(len(outside), plan.n_ood, 1)]
        self.x = as_images(task.test.images[self.id_idx], "test images")
        self.y = torch.as_tensor(task.test_class[self.id_idx], dtype=torch.int64)
        self.nets: dict[str, tuple[Any, Any]] = {}

    def net(self, model: str) -> tuple[Any, Any]:
        """The classifier ``model`` (``standard-b``: the standard one of seed s + 100) and its info."""
        if model not in self.nets:
            base = "standard" if model == "standard-b" else model
            seed = self.seed + (SEED_STRIDE if model == "standard-b" else 0)
            self.nets[model] = shared_classifier(model_settings(base, self.plan.preset, self.device, seed), self.task, self.cache)
        return self.nets[model]


def _accuracy(ctx: _Context, job: dict[str, Any]) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    clf, info = ctx.net(job["model"])
    n = ctx.plan.n_strong if job["restarts"] > 1 else len(ctx.x)
    attack = make_attack("fgsm" if job["attack"] == "none" else job["attack"], job["eps"], job["steps"],
                         restarts=job["restarts"], seed=ctx.seed)
    result = robust_accuracy(clf.differentiable(amp=False), ctx.x[:n], ctx.y[:n], attack, show=False)
    return {"accuracy": result["accuracy"], "clean_accuracy": result["clean_accuracy"], "n_attacked": n}, info, clf.settings


def _transfer(ctx: _Context, job: dict[str, Any]) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    (src, info), (tgt, _) = ctx.net(job["source"]), ctx.net(job["target"])
    attack = make_attack(job["attack"], job["eps"], job["steps"], seed=ctx.seed)
    r = transfer_success(src.differentiable(amp=False), tgt.differentiable(amp=False), ctx.x, ctx.y, attack)
    return {"source_success": r["source_success"], "transfer_success": r["transfer_success"], "n_attacked": r["n"]}, \
        info, src.settings


def _detector(ctx: _Context, job: dict[str, Any]) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    config = {**settings_for(job["detector"], ctx.plan.preset, ctx.device),
              **ROBUST_MODELS[ctx.plan.preset][job["model"]], "seed": ctx.seed}
    cls = detector_class(job["detector"])
    det = cls(**{k: v for k, v in config.items() if k in cls.defaults})
    upstream, info = shared_upstream(cls, det.config, ctx.task, ctx.cache)
    det.fit(ctx.task.train, validation=ctx.task.validation, upstream=upstream)
    x_ood = as_images(ctx.task.test.images[ctx.ood_idx], "OOD test images")
    if job["eps"] > 0:
        g = torch.Generator().manual_seed(ctx.seed)
        alpha = 2.5 * job["eps"] / job["steps"]
        parts = [ascend(lambda z: -det.differentiable_score(z), x_ood[i:i + 250], job["eps"], alpha, job["steps"], True, g)
                 for i in range(0, len(x_ood), 250)]
        x_ood = torch.cat(parts)
    scores = np.r_[det.score(ctx.x), det.score(x_ood)]
    is_ood = np.r_[np.zeros(len(ctx.x), bool), np.ones(len(x_ood), bool)]
    return {**evaluate(scores, is_ood), "n_attacked": len(x_ood)}, info, det.config


def _targeted(ctx: _Context, job: dict[str, Any]) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    clf, info = ctx.net(job["model"])
    n = min(ctx.plan.n_targeted, len(ctx.x))
    x, y = ctx.x[:n], ctx.y[:n]
    target = (y + 1) % int(clf.fitted["classes"])
    xa, ok = targeted_l1(clf.differentiable(amp=False), x, target, steps=200)
    delta = (xa - x).flatten(1)[ok]
    l1 = delta.abs().sum(dim=1)
    l0 = (delta.abs() > 1e-3).float().mean(dim=1)
    metrics = {"success": 100.0 * float(ok.float().mean()), "n_attacked": n}
    if len(l1):  # sizes of the successful perturbations
        metrics.update(mean_l1=float(l1.mean()), changed_pixels=100.0 * float(l0.mean()),
                       mean_linf=float(delta.abs().max(dim=1).values.mean()))
    return metrics, info, clf.settings


RUNNERS = {"accuracy": _accuracy, "transfer": _transfer, "detector": _detector, "targeted": _targeted}


def run_robustness(plan: RobustnessPlan, out: str | Path, run: RunOptions, command: list[str] | None = None) -> list[dict[str, Any]]:
    """Run every unfinished measurement of ``plan`` into ``out``; returns every row of the plan."""
    plan.check()
    cache = UpstreamCache(run.cache_dir or default_cache_dir() if run.disk_cache else None)
    return run_measured("robustness", plan, plan_cells(plan), RUNNERS,
                        lambda task, seed: _Context(plan, task, cache, seed, run.device), out, run, command)
