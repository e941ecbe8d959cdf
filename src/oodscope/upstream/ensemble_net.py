"""A deep ensemble (Lakshminarayanan, Pritzel & Blundell, "Simple and scalable predictive
uncertainty estimation using deep ensembles", NeurIPS 2017; Takahashi's lecture notes "Deep
learning: reliability of inference", University of Aizu, n.d.): ``members`` classifiers of the same
architecture and data that differ only in their seed (initial weights and batch order).

Member i of the ensemble with seed s is the :class:`~oodscope.upstream.classifier.Classifier`
with seed s + 100 i, so member 0 is the classifier every other classifier-based detector of that
seed reads, and ensembles of different seeds share no member. It is a composite upstream: an
:class:`~oodscope.upstream.base.UpstreamCache` gets (and caches) each member on its own, so a
member is trained once, whichever ensemble or detector asks for it.
"""

from __future__ import annotations

from typing import Any

import torch

from oodscope.upstream.classifier import CLASSIFIER_CHOICES, CLASSIFIER_DEFAULTS, CLASSIFIER_HELP, Classifier
from oodscope.upstream.base import Upstream
from oodscope.errors import InputError

ENSEMBLE_DEFAULTS: dict[str, Any] = {**CLASSIFIER_DEFAULTS, "members": 5}
ENSEMBLE_HELP: dict[str, str] = {**CLASSIFIER_HELP, "members": "N: classifiers in the ensemble, seeds seed + 100 i (at least 2)"}
SEED_STRIDE = 100


class Ensemble(Upstream):
    """``members`` classifiers; ``fitted["members"]`` holds each one's facts."""

    kind = "ensemble"
    defaults = ENSEMBLE_DEFAULTS
    help = ENSEMBLE_HELP
    choices = CLASSIFIER_CHOICES
    needs_labels = True
    member_cls = Classifier

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        if self.settings["members"] < 2:
            raise InputError(f"ensemble: members must be >= 2, got {self.settings['members']}")
        self.members: list[Classifier] = []

    @classmethod
    def member_settings(cls, settings: dict[str, Any]) -> list[dict[str, Any]]:
        """The settings of each member classifier."""
        full = {**cls.defaults, **settings}
        base = Classifier.settings_from(full)
        return [{**base, "seed": int(full["seed"]) + SEED_STRIDE * i} for i in range(int(full["members"]))]

    def assemble(self, members: list[Classifier]) -> Ensemble:
        """The ensemble of already trained ``members`` (in order, with :meth:`member_settings`)."""
        want = self.member_settings(self.settings)
        if len(members) != len(want) or any(m.settings["seed"] != w["seed"] for m, w in zip(members, want)):
            raise InputError("ensemble: members do not match the ensemble's settings")
        self.members = list(members)
        self.fitted = {**{k: members[0].fitted[k] for k in ("channels", "size", "mean", "std", "classes")},
                       "members": [m.fitted for m in members]}
        return self

    def _fit(self, x: torch.Tensor, labels: torch.Tensor | None, validation: torch.Tensor | None,
             validation_labels: torch.Tensor | None, **extra: Any) -> None:
        self.assemble([Classifier(**s).fit(x, labels, validation, validation_labels)
                       for s in self.member_settings(self.settings)])

    def _facts(self, x: torch.Tensor, labels: torch.Tensor | None) -> dict[str, Any]:
        return {"classes": int(labels.max()) + 1}

    def _build(self) -> None:
        if self.members:
            return  # assembled from trained members
        facts = self.fitted.get("members")
        if not facts:
            return  # _fit trains the members
        self.members = [Classifier(**s).restore(f) for s, f in zip(self.member_settings(self.settings), facts)]

    def modules(self) -> dict[str, torch.nn.Module]:
        return {f"ens{i}": m.net for i, m in enumerate(self.members)}

    def _after_view(self) -> None:
        self.members = [m.scoring_view(self.settings) for m in self.members]

    def member_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(members, N, K) logits of images ``x`` in [0, 1]."""
        return torch.stack([m.logits(x) for m in self.members])

    def summary(self) -> dict[str, Any]:
        acc = [m.fitted["val_accuracy"] for m in self.members if "val_accuracy" in m.fitted]
        out: dict[str, Any] = {"classes": self.fitted["classes"], "members": len(self.members)}
        if acc:
            out["val_accuracy"] = round(sum(acc) / len(acc), 4)
        return out
