"""Conformal p-values of OOD scores, and decisions with a stated guarantee.

From the scores ``s_1..s_n`` of ``n`` calibration images drawn from the in-distribution (held out
from training), the conformal p-value of a new image scoring ``s`` is

    p = (1 + #{i : s_i >= s}) / (n + 1)

(Vovk, Gammerman & Shafer, "Algorithmic Learning in a Random World", 2005; Bates, Candès, Lei,
Romano & Sesia, "Testing for outliers with conformal p-values", Annals of Statistics, 2023). If the
new image and the calibration images are exchangeable (an in-distribution image), then
P(p <= a) <= a for every a: the p-value is valid. The smallest p-value ``n`` images give is
``1 / (n + 1)``, so a level below it can never flag anything; :func:`check_level` refuses it with
the number of images it needs.

Decisions built on them (higher score = more OOD, small p-value = flagged):

* **per image** at level ``alpha``: flag when ``p <= alpha``; an in-distribution image is flagged
  with probability at most ``alpha``.
* **per batch** at false-discovery-rate level ``q``: Benjamini & Hochberg ("Controlling the false
  discovery rate", JRSS B, 1995) on the batch's p-values, computed by
  ``scipy.stats.false_discovery_control``. Conformal p-values sharing one calibration set are
  positively dependent (PRDS), under which BH keeps the expected share of in-distribution images
  among the flagged ones at most ``q`` (Bates et al. 2023).
* **over a stream** (images decided one at a time, in order): ``lond`` (Javanmard & Montanari,
  "Online rules for control of false discovery rate and false discovery exceedance", Annals of
  Statistics, 2018), whose FDR guarantee holds under the same positive dependence, and ``lord++``
  (Ramdas, Yang, Wainwright & Jordan, "Online control of the false discovery rate with decaying
  memory", NeurIPS 2017), more powerful, whose theorem assumes independent p-values (conformal
  p-values sharing a calibration set are not: its FDR is measured, docs/lab/BENCHMARKS.md). Both spend
  the sequence ``gamma_j = C log(max(j, 2)) / (j exp(sqrt(log j)))`` of Javanmard & Montanari, with
  ``C = 0.07720838`` so that it sums to 1. The rule's state (its time and past rejections) is a
  small JSON object: saved and restored, it continues the same rule.

* **class-conditional** p-values (Vovk et al. 2005's Mondrian conformal prediction): the
  calibration images of the same predicted class only, for detectors that read a classifier;
  the guarantee then holds within each predicted class.

There is no maintained Python package of online FDR rules (the reference implementation is the R
package onlineFDR), so the two rules are written here from their papers' formulas, with reference
tests against those formulas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import false_discovery_control

from oodscope.errors import InputError

GAMMA_C = 0.07720838  # normalises Javanmard & Montanari's gamma sequence to sum 1
ONLINE_RULES = ("lond", "lord++")
ONLINE_DEFAULT = "lond"


def _finite(x: Any, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    if not np.all(np.isfinite(a)):
        raise InputError(f"{what}: scores must be finite (found NaN or inf)")
    return a


def images_needed(level: float) -> int:
    """The fewest calibration images whose smallest p-value ``1/(n+1)`` is at most ``level``."""
    if not 0.0 < level < 1.0:
        raise InputError(f"a level must be in (0, 1), got {level}")
    n = max(1, math.ceil(1.0 / level - 1.0 - 1e-9))
    while 1.0 / (n + 1) > level:  # rounding of 1/level
        n += 1
    return n


def check_level(n: int, level: float, what: str = "level") -> None:
    """Refuse a level that ``n`` calibration images cannot reach (their smallest p-value is 1/(n+1)).

    Raises:
        InputError: naming the level, the images it needs and the images there are.
    """
    need = images_needed(level)
    if n < need:
        raise InputError(f"{what} {level:g} needs at least {need} calibration images (the smallest p-value of n "
                         f"images is 1/(n+1)); there are {n}: calibrate on more in-distribution images or ask for a "
                         f"level of at least {1.0 / (n + 1):.4g}")


def p_values(calibration: Any, scores: Any) -> np.ndarray:
    """Conformal p-values ``(1 + #{calibration >= score}) / (n + 1)`` of ``scores``.

    Raises:
        InputError: no calibration scores, or non-finite scores.
    """
    cal = np.sort(_finite(calibration, "calibration"))
    if cal.size == 0:
        raise InputError("conformal p-values need at least one calibration score")
    s = _finite(scores, "scores")
    at_least = cal.size - np.searchsorted(cal, s, side="left")  # calibration scores >= s
    return (1.0 + at_least) / (cal.size + 1.0)


def class_counts(classes: Any) -> dict[int, int]:
    """How many calibration images each predicted class has."""
    k, n = np.unique(np.asarray(classes, dtype=np.int64), return_counts=True)
    return {int(a): int(b) for a, b in zip(k, n)}


def class_p_values(calibration: Any, calibration_classes: Any, scores: Any, classes: Any) -> np.ndarray:
    """Class-conditional p-values: each image against the calibration images of its own predicted
    class (an image of a class no calibration image has gets p = 1, the valid value for n = 0)."""
    cal, cal_k = _finite(calibration, "calibration"), np.asarray(calibration_classes, dtype=np.int64).ravel()
    s, k = _finite(scores, "scores"), np.asarray(classes, dtype=np.int64).ravel()
    if cal.shape != cal_k.shape or s.shape != k.shape:
        raise InputError("class-conditional p-values need one class per score")
    out = np.ones_like(s)
    for c in np.unique(k):
        mine = cal_k == c
        if mine.any():
            out[k == c] = p_values(cal[mine], s[k == c])
    return out


def check_class_level(calibration_classes: Any, level: float, what: str = "level") -> None:
    """Refuse class-conditional p-values at ``level`` when some class has too few calibration images."""
    need = images_needed(level)
    short = {c: n for c, n in class_counts(calibration_classes).items() if n < need}
    if short:
        named = ", ".join(f"class {c}: {n}" for c, n in sorted(short.items()))
        raise InputError(f"class-conditional {what} {level:g} needs {need} calibration images per predicted class; "
                         f"{named}: calibrate on more images, or use marginal p-values")


def flag_alpha(p: Any, alpha: float) -> np.ndarray:
    """Per-image decision at level ``alpha``: flag (True = OOD) where ``p <= alpha``."""
    if not 0.0 < alpha < 1.0:
        raise InputError(f"alpha must be in (0, 1), got {alpha}")
    return np.asarray(p, dtype=np.float64) <= alpha


def flag_bh(p: Any, q: float) -> np.ndarray:
    """Benjamini–Hochberg at FDR level ``q`` on one batch of p-values (True = flagged as OOD):
    the images whose BH-adjusted p-value (``scipy.stats.false_discovery_control``) is at most q."""
    if not 0.0 < q < 1.0:
        raise InputError(f"the FDR level q must be in (0, 1), got {q}")
    a = np.asarray(p, dtype=np.float64).ravel()
    if a.size == 0:
        return np.zeros(0, dtype=bool)
    return false_discovery_control(a, method="bh") <= q


def gamma(j: Any) -> np.ndarray:
    """Javanmard & Montanari's spending sequence at times ``j`` (1, 2, ...); 0 for ``j < 1``."""
    j = np.asarray(j, dtype=np.float64)
    safe = np.maximum(j, 1.0)
    g = GAMMA_C * np.log(np.maximum(safe, 2.0)) / (safe * np.exp(np.sqrt(np.log(safe))))
    return np.where(j >= 1, g, 0.0)


def first_online_level(q: float, rule: str = ONLINE_DEFAULT, w0: float | None = None) -> float:
    """The level of an online rule's first test (``lond``: q gamma_1; ``lord++``: w0 gamma_1).
    Without rejections the levels only fall from there, so a calibration set whose smallest
    p-value 1/(n+1) is above it can never flag anything."""
    return float(gamma(1)) * (q if rule == "lond" else (q / 2 if w0 is None else w0))


@dataclass
class OnlineFDR:
    """An online FDR rule at level ``q`` (``lond`` or ``lord++``), decided one p-value at a time.

    ``t`` is the number of p-values tested so far, ``rejections`` their 1-based times of rejection;
    ``w0`` is LORD++'s initial wealth (default ``q / 2``; any ``0 < w0 <= q`` keeps its guarantee).
    """

    q: float
    rule: str = ONLINE_DEFAULT
    w0: float | None = None
    t: int = 0
    rejections: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.rule not in ONLINE_RULES:
            raise InputError(f"online FDR rule must be one of {', '.join(ONLINE_RULES)}, got {self.rule!r}")
        if not 0.0 < self.q < 1.0:
            raise InputError(f"the FDR level q must be in (0, 1), got {self.q}")
        if self.w0 is None:
            self.w0 = self.q / 2
        if not 0.0 < self.w0 <= self.q:
            raise InputError(f"lord++: w0 must be in (0, q], got {self.w0}")
        self.rejections = [int(r) for r in self.rejections]
        if self.t < 0 or any(not 1 <= r <= self.t for r in self.rejections):
            raise InputError("online FDR state: rejection times must lie in 1..t")

    def level(self) -> float:
        """The test level of the next p-value (time ``t + 1``)."""
        t = self.t + 1
        if self.rule == "lond":
            return float(self.q * gamma(t) * (len(self.rejections) + 1))
        level = float(gamma(t)) * float(self.w0)
        if self.rejections:
            taus = np.asarray(self.rejections, dtype=np.float64)
            level += (self.q - float(self.w0)) * float(gamma(t - taus[0]))
            level += self.q * float(gamma(t - taus[1:]).sum())
        return level

    def test(self, p: float) -> bool:
        """Test the next p-value; True = rejected (flagged as OOD). Advances the rule."""
        if not 0.0 <= p <= 1.0:
            raise InputError(f"a p-value must lie in [0, 1], got {p}")
        reject = bool(p <= self.level())
        self.t += 1
        if reject:
            self.rejections.append(self.t)
        return reject

    def test_many(self, ps: Any) -> np.ndarray:
        """Test p-values in order; their decisions."""
        return np.array([self.test(float(p)) for p in np.asarray(ps, dtype=np.float64).ravel()], dtype=bool)

    def state(self) -> dict[str, Any]:
        """The rule and its state as JSON-ready values; :meth:`from_state` continues it."""
        return {"rule": self.rule, "q": self.q, "w0": self.w0, "t": self.t, "rejections": list(self.rejections)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> OnlineFDR:
        """The rule saved by :meth:`state`.

        Raises:
            InputError: a state that is not one (missing or inconsistent fields).
        """
        try:
            return cls(q=float(state["q"]), rule=str(state["rule"]), w0=float(state["w0"]), t=int(state["t"]),
                       rejections=[int(r) for r in state["rejections"]])
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"not an online FDR state ({e})") from None
