"""Decisions with a stated guarantee on a saved model's scores: conformal p-values from the
model's calibration scores, and the rule that turns them into verdicts
(:mod:`oodscope.metrics.conformal`; Bates, Candès, Lei, Romano & Sesia, "Testing for outliers with
conformal p-values", 2023).

**Calibration scores** are the scores of in-distribution images the model was not fitted on: by
default the held-out 10 % that ``oodscope fit`` keeps to set the threshold (saved with the model),
or an explicit calibration set given to :func:`calibrate` (``oodscope threshold --calibration``).
For a detector that reads a classifier, each calibration image's predicted class is kept too, for
class-conditional p-values.

**Rules** (:class:`DecisionRule`; recorded with the model by :func:`record_rule`, used by
``oodscope score`` and the service unless a run asks for another):

* ``threshold``: today's verdict, ``ood`` when the score is above the model's threshold (no
  stated guarantee beyond the held-out share it accepts);
* ``alpha``: ``ood`` when ``p <= alpha``: an in-distribution image is flagged with probability at
  most ``alpha``;
* ``bh``: Benjamini–Hochberg at FDR level ``q`` over one batch (a scoring run's images, one
  request of the service): the expected share of in-distribution images among the flagged ones is
  at most ``q``;
* ``lond`` / ``lord++``: an online FDR rule at level ``q`` over a stream decided in order; its state
  is saved so that a resumed run or a restarted service continues it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from oodscope.errors import InputError
from oodscope.metrics.conformal import (
    ONLINE_RULES,
    OnlineFDR,
    check_class_level,
    check_level,
    class_counts,
    class_p_values,
    first_online_level,
    flag_alpha,
    flag_bh,
    images_needed,
    p_values,
)

RULES = ("threshold", "alpha", "bh", *ONLINE_RULES)


@dataclass(frozen=True)
class Calibration:
    """In-distribution scores a model was not fitted on (and their predicted classes, if any)."""

    scores: np.ndarray
    classes: np.ndarray | None
    source: str

    @property
    def n(self) -> int:
        return int(self.scores.size)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n": self.n, "source": self.source}
        if self.classes is not None:
            out["per_class"] = {str(k): int(v) for k, v in zip(*np.unique(self.classes, return_counts=True))}
        return out


def calibration_of(model: Any) -> Calibration | None:
    """The calibration scores saved with ``model`` (a detector, or a scorer loaded from a model
    directory or an ONNX file): an explicit calibration set if one was given, else the held-out
    images of ``oodscope fit``; None if it has neither."""
    rule = getattr(model, "threshold_rule", None) or {}
    if "calibration" in rule:
        c = rule["calibration"]
        classes = c.get("classes")
        return Calibration(np.asarray(c["scores"], dtype=np.float64),
                           None if classes is None else np.asarray(classes, dtype=np.int64), str(c.get("source", "given")))
    if "held_out_scores" in rule:
        classes = rule.get("held_out_classes")
        return Calibration(np.asarray(rule["held_out_scores"], dtype=np.float64),
                           None if classes is None else np.asarray(classes, dtype=np.int64), "held-out training images")
    return None


def scores_and_classes(model: Any, x: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """``model``'s scores of ``x`` and, where it reads a classifier, its predicted classes."""
    outputs = getattr(model, "outputs", None)
    if outputs is None:
        return np.asarray(model.score(x), dtype=np.float64), None
    out = outputs(x)
    logits = out.get("logits")
    return np.asarray(out["score"], dtype=np.float64), None if logits is None else np.argmax(logits, axis=1)


def calibrate(detector: Any, images: Any, source: str = "calibration images") -> dict[str, Any]:
    """Score in-distribution ``images`` the detector was not fitted on and keep their scores (and
    predicted classes) as its calibration set, in place of the held-out images; the threshold and
    its rule are unchanged. Returns the calibration's summary.

    Raises:
        InputError: no images.
    """
    if len(images) == 0:
        raise InputError("calibration needs at least one in-distribution image")
    scores, classes = scores_and_classes(detector, images)
    rule = dict(detector.threshold_rule or {})
    rule["calibration"] = {"source": source, "scores": scores.tolist(),
                           "classes": None if classes is None else classes.tolist()}
    detector.threshold_rule = rule
    return Calibration(scores, classes, source).summary()


@dataclass(frozen=True)
class DecisionRule:
    """How scores become verdicts: ``kind`` one of :data:`RULES`, ``level`` its alpha or q, and
    whether p-values are class-conditional."""

    kind: str = "threshold"
    level: float | None = None
    class_conditional: bool = False

    def __post_init__(self) -> None:
        if self.kind not in RULES:
            raise InputError(f"decision rule must be one of {', '.join(RULES)}, got {self.kind!r}")
        if self.kind != "threshold" and (self.level is None or not 0.0 < self.level < 1.0):
            raise InputError(f"{self.kind}: the level must be in (0, 1), got {self.level}")

    @property
    def uses_p_values(self) -> bool:
        return self.kind != "threshold"

    @property
    def online(self) -> bool:
        return self.kind in ONLINE_RULES

    def record(self) -> dict[str, Any]:
        return {"rule": self.kind, "level": self.level, "class_conditional": self.class_conditional,
                "guarantee": self.guarantee()}

    @classmethod
    def from_record(cls, record: dict[str, Any] | None) -> DecisionRule:
        if not record:
            return cls()
        return cls(str(record["rule"]), record.get("level"), bool(record.get("class_conditional", False)))

    def guarantee(self) -> str:
        """The guarantee this rule states, in one line."""
        if self.kind == "threshold":
            return "none stated: the threshold accepts a share of the held-out images"
        within = " within each predicted class" if self.class_conditional else ""
        level = f"{self.level:g}"
        return {
            "alpha": f"an in-distribution image is flagged with probability at most {level}{within}",
            "bh": f"expected share of in-distribution images among those flagged in a batch at most {level}{within}",
            "lond": f"expected share of in-distribution images among those flagged so far at most {level}{within}",
            "lord++": f"expected share of in-distribution images among those flagged so far at most {level}"
                      f"{within}, for independent p-values (conformal p-values are positively dependent)",
        }[self.kind]


def rule_from_options(alpha: float | None = None, fdr: float | None = None, fdr_rule: str = "bh",
                      class_conditional: bool = False) -> DecisionRule | None:
    """The rule that ``--alpha`` / ``--fdr`` (with ``--fdr-rule``) ask for; None if neither is given.

    Raises:
        InputError: both given, or ``--class-conditional`` without either.
    """
    if alpha is not None and fdr is not None:
        raise InputError("give --alpha (per image) or --fdr (per batch or stream), not both")
    if alpha is None and fdr is None:
        if class_conditional:
            raise InputError("--class-conditional goes with --alpha or --fdr")
        return None
    if alpha is not None:
        return DecisionRule("alpha", float(alpha), class_conditional)
    if fdr_rule not in ("bh", *ONLINE_RULES):
        raise InputError(f"--fdr-rule must be one of bh, {', '.join(ONLINE_RULES)}, got {fdr_rule!r}")
    return DecisionRule(fdr_rule, float(fdr), class_conditional)


def check_rule(model: Any, rule: DecisionRule) -> Calibration | None:
    """The calibration ``rule`` reads, checked: it exists, it can reach the level, and it has the
    predicted classes a class-conditional rule needs.

    Raises:
        InputError: naming what is missing (and, for a level too small, the images it needs).
    """
    if not rule.uses_p_values:
        return None
    cal = calibration_of(model)
    method = getattr(model, "method", "model")
    if cal is None:
        raise InputError(f"{method}: this model holds no calibration scores, so it gives no p-values; fit it with "
                         "oodscope fit (which keeps held-out scores) or calibrate it (oodscope threshold --calibration)")
    what = "alpha" if rule.kind == "alpha" else "FDR level"
    if rule.class_conditional:
        if cal.classes is None:
            raise InputError(f"{method}: class-conditional p-values need a detector that reads a classifier "
                             "(its calibration has no predicted classes)")
        check_class_level(cal.classes, float(rule.level), what)
    else:
        check_level(cal.n, float(rule.level), what)
    if rule.online:  # its first level is about q / 20 and falls from there until a first rejection
        first = first_online_level(float(rule.level), rule.kind)
        counts = list(class_counts(cal.classes).values()) if rule.class_conditional else [cal.n]
        if min(counts) < images_needed(first):
            raise InputError(f"{method}: {rule.kind} at q={rule.level:g} tests its first image at level {first:.3g}, "
                             f"which needs at least {images_needed(first)} calibration images"
                             f"{' per predicted class' if rule.class_conditional else ''} (there are {min(counts)}); "
                             "with fewer it can never flag an image: calibrate on more images, or use --fdr-rule bh")
    return cal


def record_rule(detector: Any, rule: DecisionRule) -> None:
    """Save ``rule`` with the detector (checked against its calibration) as the rule ``oodscope
    score`` and the service apply by default."""
    check_rule(detector, rule)
    detector.threshold_rule = {**(detector.threshold_rule or {}), "decision": rule.record()}


def model_rule(model: Any) -> DecisionRule:
    """The rule recorded with ``model`` (``threshold`` if none)."""
    return DecisionRule.from_record((getattr(model, "threshold_rule", None) or {}).get("decision"))


class Decider:
    """Turns scores into p-values and verdicts by one rule. An online rule keeps its state across
    calls (:attr:`online`; start it from a saved state with ``state``)."""

    def __init__(self, model: Any, rule: DecisionRule, state: dict[str, Any] | None = None) -> None:
        self.model, self.rule = model, rule
        self.calibration = check_rule(model, rule)
        if self.calibration is None:
            self.calibration = calibration_of(model)  # p-values are shown whenever the model has calibration
        self.online: OnlineFDR | None = None
        if rule.online:
            self.online = OnlineFDR.from_state(state) if state is not None else OnlineFDR(float(rule.level), rule.kind)
            if (self.online.rule, self.online.q) != (rule.kind, rule.level):
                raise InputError(f"the saved online FDR state is for {self.online.rule} at q={self.online.q:g}, "
                                 f"not {rule.kind} at q={rule.level:g}")

    @property
    def needs_classes(self) -> bool:
        return self.rule.class_conditional

    def p_values(self, scores: np.ndarray, classes: np.ndarray | None = None) -> np.ndarray | None:
        """Conformal p-values of ``scores`` (None if the model has no calibration)."""
        cal = self.calibration
        if cal is None:
            return None
        if self.rule.class_conditional:
            if classes is None:
                raise InputError("class-conditional p-values need the predicted classes of the images")
            return class_p_values(cal.scores, cal.classes, scores, classes)
        return p_values(cal.scores, scores)

    def flags(self, scores: np.ndarray, p: np.ndarray | None) -> np.ndarray | None:
        """True = ``ood`` for one batch by the rule (None: no threshold to decide by). An online rule
        advances its state by the batch, in order."""
        kind = self.rule.kind
        if kind == "threshold":
            threshold = getattr(self.model, "threshold", None)
            return None if threshold is None else np.asarray(scores) > threshold
        assert p is not None
        if kind == "alpha":
            return flag_alpha(p, float(self.rule.level))
        if kind == "bh":
            return flag_bh(p, float(self.rule.level))
        assert self.online is not None
        return self.online.test_many(p)

    def decide(self, scores: np.ndarray, classes: np.ndarray | None = None) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(p-values, flags) of one batch."""
        p = self.p_values(scores, classes)
        return p, self.flags(scores, p)
