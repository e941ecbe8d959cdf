"""Geometric certificates in the style of DeepG (Balunović, Baader, Singh, Gehr & Vechev, "Certifying
geometric robustness of neural networks", NeurIPS 2019): a proof that the class is the same for
every rotation of an image by an angle in ``[-θ, θ]`` degrees (optionally also every translation
by up to ``±t`` pixels along each axis, every scaling by a factor in ``[1 - s, 1 + s]``, or any
combination of the three).

The transformation
------------------
``T_φ(x)`` for parameters ``φ = (α, tx, ty, σ)`` (angle in degrees, translation in pixels, scale)
moves the content of ``x``: scaled by ``σ`` about the image centre, rotated by ``α`` about the
centre, counter-clockwise as displayed (rows downward; the direction of ``scipy.ndimage.rotate``),
then shifted ``tx`` columns to the right and ``ty`` rows down. Pixel centres sit at integer
coordinates (row ``i``, column ``j``), the centre at ``(cy, cx) = ((H - 1) / 2, (W - 1) / 2)``.
Output pixel ``(i, j)`` takes the value of ``x`` at its inverse-mapped source point ::

    du = (j - cx - tx) / σ,   dv = (i - cy - ty) / σ
    column = cx + cos α · du - sin α · dv,   row = cy + sin α · du + cos α · dv

by bilinear interpolation of the four pixels around it, pixels outside the image being 0 (black
fill): ``scipy.ndimage.map_coordinates(x, (row, column), order=1, mode="grid-constant", cval=0)``.
At the identity (``α = 0``, no shift, ``σ = 1``) every source point is a pixel centre and the
transformed image is the image, exactly.

The relaxation: per-pixel intervals (the interval-box variant, coarser than DeepG)
-----------------------------------------------------------------------------------
For a box ``Φ`` of parameters, the set ``{T_φ(x) : φ ∈ Φ}`` is enclosed in a box of images (one
interval per pixel) in two sound steps:

1. **Source coordinates.** Per output pixel, the bounding box of its source points over ``Φ``,
   computed exactly (up to a widening of ``1e-9`` pixels against float rounding). For a fixed angle
   each coordinate is multilinear in ``(tx, ty, 1/σ)`` (affine in each one), so its extremes over
   the parameter box lie at the box's (up to) 8 vertices. At a vertex, with ``du = R cos β`` and
   ``dv = R sin β``, the column is ``cx + R cos(α + β)`` and the row ``cy + R sin(α + β)``, whose
   range over an angle interval is spanned by the values at its ends and ``±R`` wherever
   ``α + β`` crosses a multiple of ``π/2`` at which the cosine or sine is ``±1``. The maximum over
   ``Φ`` is the maximum over the vertices of the maximum over angles (and likewise the minimum).
2. **Pixel values.** The exact range of the bilinear interpolant over that coordinate box. Inside
   each cell between four pixel centres (zeros outside the image) the interpolant is bilinear,
   affine in the row for a fixed column and vice versa, so its extremes over the part of the box
   inside a cell are at that part's corners. Those corners have rows in ``{r_lo, the integers
   strictly between, r_hi}`` and columns likewise, so the minimum and maximum of the interpolant
   at that grid of points are its range over the whole box. (The cruder bound by the min and max
   of every pixel the box touches would not shrink with the parameter interval: even a tiny box
   around a pixel centre touches its 3×3 neighbours.)

The pixel boxes are clipped to ``[0, 1]`` (the interpolant of an image in ``[0, 1]`` is a convex
combination of its pixels and zeros, so this is sound), rounded outward to float32 numbers (so that
they contain the float32 number nearest to every value of the interval;
:func:`oodscope.verify.rounding.pixel_rounding`; 0 and 1 are float32 numbers) and handed to the
interval or DeepPoly verifier as an input box (:func:`oodscope.verify.certify.box_margins`), which
bounds the deployed float32 network on every float32 image of the box, its own rounding included
(:mod:`oodscope.verify.rounding`). What is certified is thus the float32 classifier on the float32
image nearest to the exact transformed image ``T_φ(x)`` (computed in exact arithmetic, then
rounded once), for every ``φ`` of the range; a transformation computed in float32 by other code
rounds differently and is not covered. The parameter range is split into ``splits`` equal
sub-intervals per parameter (a grid of sub-boxes when several parameters vary); each sub-box is certified on its own, and the image is certified only if every
sub-box is. Narrower sub-intervals give narrower pixel intervals (about linearly), at the cost of
more verifier calls.

This is coarser than DeepG. DeepG bounds each pixel by linear functions of the parameters (found by
sampling and Lipschitz optimisation) and lets DeepPoly carry those constraints back to the
parameters, which keeps the pixels correlated (they all move with the one angle). Here each pixel
may take any value of its interval independently of the others, so the region certified is a box
that contains many images that are no rotation of ``x``: the certificates are sound but miss more
images than DeepG's at the same number of splits.

With the ``"deeppoly"`` method every sub-box is first bounded with intervals (cheap, all sub-boxes
at once); DeepPoly runs only on the sub-boxes that intervals do not certify, in increasing order of
their interval margin, and with ``early_stop`` stops at the first it cannot certify. The
certified flag is the same as running DeepPoly on every sub-box (DeepPoly's margin in
:func:`~oodscope.verify.certify.certify` is never below the interval margin); the margin of a
sub-box skipped this way is its interval margin (still a sound lower bound), and the margin of an
image that is not certified is that of a failing sub-box, not necessarily the smallest.

Small images are transformed coarsely: on the 8×8 digits a rotation by 5° moves a corner pixel by
about 0.4 pixels, and bilinear interpolation of so few pixels blurs the image noticeably.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from oodscope.errors import InputError
from oodscope.verify.certify import METHODS, TOLERANCE, CertResult, box_margins, predicted_classes, verified_layers
from oodscope.verify.deeppoly import BUDGET
from oodscope.verify.interval import interval_margins
from oodscope.verify.layers import DTYPE
from oodscope.verify.rounding import pixel_rounding

Interval = tuple[float, float]
PARAMETERS = ("rotation", "translation", "scaling")
DEFAULT_SPLITS = {"rotation": 20, "translation": 8, "scaling": 10}  # sub-intervals per parameter (axis)
SLACK = 1e-9  # pixels by which the bounding box of the source coordinates is widened (float rounding)
RANGE_TOLERANCE = 1e-6  # images may stray this far outside [0, 1]


# -- the transformation ------------------------------------------------------------------------
def _grid(shape: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column indices (H, W), float64."""
    h, w = shape
    return (torch.arange(h, dtype=DTYPE)[:, None].expand(h, w), torch.arange(w, dtype=DTYPE)[None, :].expand(h, w))


def _offsets(shape: tuple[int, int], tx: float, ty: float, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``du, dv`` (H, W): the output pixels' offsets from the centre, translation undone, over the scale."""
    i, j = _grid(shape)
    cy, cx = (shape[0] - 1) / 2, (shape[1] - 1) / 2
    return (j - cx - tx) / scale, (i - cy - ty) / scale


def source_coordinates(shape: tuple[int, int], angle: float = 0.0, translation: tuple[float, float] = (0.0, 0.0),
                       scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows and columns (H, W) of the source points of the output pixels of an image of ``shape``
    (H, W) under the rotation by ``angle`` degrees, the translation ``(tx, ty)`` pixels (columns,
    rows) and the scaling by ``scale`` (see the module's docstring)."""
    if scale <= 0:
        raise InputError(f"verify: the scale must be > 0, got {scale}")
    h, w = shape
    a = math.radians(angle)
    ca, sa = math.cos(a), math.sin(a)
    du, dv = _offsets(shape, translation[0], translation[1], scale)
    return (h - 1) / 2 + (sa * du + ca * dv), (w - 1) / 2 + (ca * du - sa * dv)


def _interp_padded(xp: torch.Tensor, r: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Bilinear interpolation of ``xp`` (..., H + 2, W + 2), the image with a ring of zeros, at
    padded coordinates ``r``, ``c`` (any shape S, within ``[0, H + 1]`` and ``[0, W + 1]``): (..., *S)."""
    hp, wp = xp.shape[-2:]
    r0, c0 = r.floor().clamp(max=hp - 2), c.floor().clamp(max=wp - 2)
    fr, fc = r - r0, c - c0
    r0, c0 = r0.long(), c0.long()
    flat = xp.flatten(-2)

    def at(rr: torch.Tensor, cc: torch.Tensor) -> torch.Tensor:
        return flat[..., (rr * wp + cc).flatten()].reshape(*flat.shape[:-1], *r.shape)

    return ((1 - fr) * (1 - fc) * at(r0, c0) + (1 - fr) * fc * at(r0, c0 + 1)
            + fr * (1 - fc) * at(r0 + 1, c0) + fr * fc * at(r0 + 1, c0 + 1))


def interpolate(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Bilinear interpolation of images ``x`` (..., H, W) at the points ``rows``, ``cols`` (any shape
    S, the same for both), pixels outside the image 0: (..., *S) in float64."""
    x = x.to(DTYPE)
    h, w = x.shape[-2:]
    r = (rows.to(DTYPE) + 1).clamp(0, h + 1)  # beyond the ring of zeros the interpolant is 0 as well
    c = (cols.to(DTYPE) + 1).clamp(0, w + 1)
    return _interp_padded(F.pad(x, (1, 1, 1, 1)), r, c)


def transform(x: torch.Tensor, angle: float = 0.0, translation: tuple[float, float] = (0.0, 0.0),
              scale: float = 1.0) -> torch.Tensor:
    """``T_φ(x)`` of images ``x`` (..., H, W) (float64): rotated by ``angle`` degrees
    counter-clockwise, shifted by ``translation = (tx, ty)`` pixels (right, down), scaled by
    ``scale``, all about the image centre; bilinear interpolation, zero fill."""
    rows, cols = source_coordinates(tuple(x.shape[-2:]), angle, translation, scale)
    return interpolate(x, rows, cols)


def rotate(x: torch.Tensor, angle: float) -> torch.Tensor:
    """``x`` (..., H, W) rotated by ``angle`` degrees counter-clockwise about its centre (float64)."""
    return transform(x, angle)


# -- bounds over a box of parameters -------------------------------------------------------------
def _crosses(lo: float, hi: float, beta: torch.Tensor, target: float) -> torch.Tensor:
    """Whether ``α + β`` equals ``target`` modulo 2π for some ``α`` in ``[lo, hi]`` (radians), per element of ``beta``."""
    two_pi = 2 * math.pi
    return torch.ceil((lo + beta - target) / two_pi) <= torch.floor((hi + beta - target) / two_pi)


def coordinate_box(shape: tuple[int, int], angle: Interval = (0.0, 0.0), tx: Interval = (0.0, 0.0),
                   ty: Interval = (0.0, 0.0), scale: Interval = (1.0, 1.0)) -> tuple[torch.Tensor, ...]:
    """``(r_lo, r_hi, c_lo, c_hi)`` (H, W): per output pixel, the bounding box of its source point
    (:func:`source_coordinates`) over every angle (degrees), translation and scale of the intervals;
    widened by ``SLACK`` unless every interval is a single point."""
    if angle[0] > angle[1] or tx[0] > tx[1] or ty[0] > ty[1] or scale[0] > scale[1]:
        raise InputError(f"verify: empty parameter interval: angle {angle}, tx {tx}, ty {ty}, scale {scale}")
    if scale[0] <= 0:
        raise InputError(f"verify: the scale must be > 0, got {scale}")
    h, w = shape
    cy, cx = (h - 1) / 2, (w - 1) / 2
    al, ah = math.radians(angle[0]), math.radians(angle[1])
    ends = [(math.cos(a), math.sin(a)) for a in dict.fromkeys((al, ah))]
    inf = torch.full(shape, math.inf, dtype=DTYPE)
    r_lo, r_hi, c_lo, c_hi = inf, -inf, inf, -inf
    for t_x in dict.fromkeys(tx):
        for t_y in dict.fromkeys(ty):
            for s in dict.fromkeys(scale):  # the vertices of the box of (tx, ty, scale)
                du, dv = _offsets(shape, t_x, t_y, s)
                cols = torch.stack([cx + (ca * du - sa * dv) for ca, sa in ends])
                rows = torch.stack([cy + (sa * du + ca * dv) for ca, sa in ends])
                cmin, cmax, rmin, rmax = cols.amin(0), cols.amax(0), rows.amin(0), rows.amax(0)
                if ah > al:  # extremes of R cos(α + β) and R sin(α + β) inside the angle interval
                    radius, beta = torch.hypot(du, dv), torch.atan2(dv, du)
                    cmax = torch.where(_crosses(al, ah, beta, 0.0), cx + radius, cmax)
                    cmin = torch.where(_crosses(al, ah, beta, math.pi), cx - radius, cmin)
                    rmax = torch.where(_crosses(al, ah, beta, math.pi / 2), cy + radius, rmax)
                    rmin = torch.where(_crosses(al, ah, beta, -math.pi / 2), cy - radius, rmin)
                r_lo, r_hi = torch.minimum(r_lo, rmin), torch.maximum(r_hi, rmax)
                c_lo, c_hi = torch.minimum(c_lo, cmin), torch.maximum(c_hi, cmax)
    if any(b > a for a, b in (angle, tx, ty, scale)):
        r_lo, r_hi, c_lo, c_hi = r_lo - SLACK, r_hi + SLACK, c_lo - SLACK, c_hi + SLACK
    return r_lo, r_hi, c_lo, c_hi


def _candidates(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Per element, ``lo``, the integers strictly between ``lo`` and ``hi``, and ``hi`` (repeated to a
    common count): (*shape, K)."""
    base = lo.floor()
    m = int((hi.ceil() - base - 1).clamp_min(0).max()) if lo.numel() else 0
    steps = base[..., None] + torch.arange(m + 1, dtype=DTYPE)
    inner = torch.minimum(torch.maximum(steps, lo[..., None]), hi[..., None])
    return torch.cat([inner, hi[..., None]], dim=-1)


def interpolation_range(x: torch.Tensor, r_lo: torch.Tensor, r_hi: torch.Tensor, c_lo: torch.Tensor,
                        c_hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The minimum and maximum of the bilinear interpolant of images ``x`` (..., H, W) (zero
    outside) over the coordinate box ``[r_lo, r_hi] × [c_lo, c_hi]`` of each element (any shape
    S, e.g. (H, W) for one box per output pixel): (..., *S) each. Exact: the interpolant's extremes
    over a box are at the points whose row and column are each an end of the box or an integer in
    between (see the module's docstring)."""
    x = x.to(DTYPE)
    h, w = x.shape[-2:]
    rows = _candidates((r_lo + 1).clamp(0, h + 1), (r_hi + 1).clamp(0, h + 1))  # padded coordinates
    cols = _candidates((c_lo + 1).clamp(0, w + 1), (c_hi + 1).clamp(0, w + 1))
    kr, kc = rows.shape[-1], cols.shape[-1]
    r = rows[..., :, None].expand(*rows.shape, kc)
    c = cols[..., None, :].expand(*cols.shape[:-1], kr, kc)
    values = _interp_padded(F.pad(x, (1, 1, 1, 1)), r, c)  # (..., *S, kr, kc)
    return values.amin(dim=(-2, -1)), values.amax(dim=(-2, -1))


def pixel_bounds(x: torch.Tensor, angle: Interval = (0.0, 0.0), translation: tuple[Interval, Interval] = ((0.0, 0.0), (0.0, 0.0)),
                 scale: Interval = (1.0, 1.0)) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower and upper bounds (..., H, W) of ``T_φ(x)`` for images ``x`` (..., H, W) over every angle
    in ``angle`` (degrees), translation in ``translation = (tx interval, ty interval)`` and scale in
    ``scale``: the range of the interpolant over the bounding box of each pixel's source points
    (not clipped)."""
    box = coordinate_box(tuple(x.shape[-2:]), tuple(angle), tuple(translation[0]), tuple(translation[1]), tuple(scale))
    return interpolation_range(x, *box)


# -- certificates ----------------------------------------------------------------------------------
def _edges(lo: float, hi: float, n: int) -> list[float]:
    """``n + 1`` edges of ``n`` equal sub-intervals of ``[lo, hi]``; halving a sub-interval's width
    (``2n``) reproduces the edges of ``n`` bit for bit, so the sub-intervals nest."""
    return [lo + (hi - lo) * k / n for k in range(n)] + [hi]


def _split_counts(splits: int | Mapping[str, int] | None) -> dict[str, int]:
    if splits is None:
        counts = dict(DEFAULT_SPLITS)
    elif isinstance(splits, Mapping):
        unknown = set(splits) - set(PARAMETERS)
        if unknown:
            raise InputError(f"verify: splits for unknown parameters {sorted(unknown)} (known: {PARAMETERS})")
        counts = {**DEFAULT_SPLITS, **{k: int(v) for k, v in splits.items()}}
    else:
        counts = dict.fromkeys(PARAMETERS, int(splits))
    if any(v < 1 for v in counts.values()):
        raise InputError(f"verify: splits must be >= 1, got {counts}")
    return counts


def parameter_boxes(rotation: float = 0.0, translation: float = 0.0, scaling: float = 0.0,
                    splits: int | Mapping[str, int] | None = None) -> list[tuple[Interval, Interval, Interval, Interval]]:
    """The sub-boxes ``(angle, tx, ty, scale)`` intervals of the parameter range ``[-rotation,
    rotation]`` degrees × ``[-translation, translation]`` pixels² × ``[1 - scaling, 1 + scaling]``;
    a parameter of range 0 is not split."""
    counts = _split_counts(splits)

    def parts(lo: float, hi: float, key: str) -> list[Interval]:
        if hi == lo:
            return [(lo, hi)]
        e = _edges(lo, hi, counts[key])
        return list(zip(e[:-1], e[1:], strict=True))

    angles = parts(-rotation, rotation, "rotation")
    shifts = parts(-translation, translation, "translation")
    scales = parts(1.0 - scaling, 1.0 + scaling, "scaling")
    return [(a, u, v, s) for a in angles for u in shifts for v in shifts for s in scales]


def certify_geometric(model: Any, x: torch.Tensor, rotation: float = 0.0, translation: float = 0.0, scaling: float = 0.0,
                      method: str = "deeppoly", splits: int | Mapping[str, int] | None = None,
                      label: torch.Tensor | None = None, budget: int = BUDGET, early_stop: bool = True,
                      rounding: bool = True) -> CertResult:
    """Certificates that the class of each image ``x`` (N, C, H, W) in [0, 1] stays the same for
    every rotation by up to ``±rotation`` degrees, translation by up to ``±translation`` pixels
    along each axis and scaling by a factor in ``[1 - scaling, 1 + scaling]`` (all combined; a
    range of 0 leaves that parameter fixed). See the module's docstring for the transformation and
    the relaxation.

    ``model``: a Classifier, an ``nn.Module`` or a list of verify ops. ``method``: ``"deeppoly"`` or
    ``"interval"``, the verifier of each sub-box. ``splits``: sub-intervals per parameter (per axis
    for the translation), an int for all or a mapping ``{"rotation": ..., "translation": ...,
    "scaling": ...}`` (default :data:`DEFAULT_SPLITS`). ``label``: the classes (N,); default the
    network's predictions on ``x``; an image whose prediction differs is never certified.
    ``rounding``: the float32 network on float32 images (the default; ``False``: the network in
    exact arithmetic on the exact transformed images, see :func:`oodscope.verify.certify`).

    The result's ``margin`` is the smallest sub-box margin (see the docstring about ``early_stop``),
    ``eps`` the single non-zero parameter range (NaN when several are), and ``extra`` holds the
    ranges, the split counts, the number of sub-boxes, ``box_margin`` (N, boxes) and
    ``deeppoly_boxes`` (N,), the sub-boxes DeepPoly was run on.
    """
    if method not in METHODS:
        raise InputError(f"verify: method must be one of {METHODS}, got {method!r}")
    for name, v in (("rotation", rotation), ("translation", translation), ("scaling", scaling)):
        if not math.isfinite(v) or v < 0:
            raise InputError(f"verify: the {name} range must be a finite number >= 0, got {v}")
    if scaling >= 1:
        raise InputError(f"verify: the scaling range must be < 1 (scales in [1 - s, 1 + s] > 0), got {scaling}")
    if not torch.is_tensor(x) or x.ndim != 4 or x.shape[0] == 0:
        raise InputError("verify: x must be a non-empty batch of images (N, C, H, W)")
    x = x.detach().to(DTYPE).cpu()
    if bool(torch.isnan(x).any()) or float(x.min()) < -RANGE_TOLERANCE or float(x.max()) > 1 + RANGE_TOLERANCE:
        raise InputError("verify: geometric certificates need images in [0, 1] without NaN")
    x = x.clamp(0.0, 1.0)
    ops = verified_layers(model)
    boxes = parameter_boxes(rotation, translation, scaling, splits)
    shape = tuple(x.shape[-2:])
    coords = [coordinate_box(shape, a, u, v, s) for a, u, v, s in boxes]
    r_lo, r_hi, c_lo, c_hi = (torch.stack([c[i] for c in coords]) for i in range(4))  # (P, H, W)
    top, k = predicted_classes(ops, x, label)
    with torch.no_grad():
        margins, seconds, ran = [], [], []
        for n in range(x.shape[0]):
            start = time.perf_counter()
            lo, hi = interpolation_range(x[n], r_lo, r_hi, c_lo, c_hi)  # (C, P, H, W)
            lo, hi = lo.transpose(0, 1).clamp(0.0, 1.0), hi.transpose(0, 1).clamp(0.0, 1.0)
            if rounding:  # the float32 image nearest to each transformed image
                lo, hi = pixel_rounding(lo, hi)
            kk = k[n].repeat(len(boxes))
            m = interval_margins(ops, lo, hi, kk, rounding=rounding).min(dim=1).values  # (P,)
            count = 0
            if method == "deeppoly":
                for b in m.argsort().tolist():
                    if m[b] > TOLERANCE:
                        break
                    dp = box_margins(ops, lo[b:b + 1], hi[b:b + 1], kk[b:b + 1], "deeppoly", budget, rounding)[0][0]
                    m[b], count = torch.maximum(m[b], dp), count + 1
                    if early_stop and dp <= TOLERANCE:
                        break
            margins.append(m)
            ran.append(count)
            seconds.append(time.perf_counter() - start)
    box_margin = torch.stack(margins)
    margin = box_margin.min(dim=1).values
    correct = top == k
    ranges = {"rotation": float(rotation), "translation": float(translation), "scaling": float(scaling)}
    nonzero = [v for v in ranges.values() if v > 0]
    eps = nonzero[0] if len(nonzero) == 1 else (0.0 if not nonzero else float("nan"))
    counts = _split_counts(splits)
    extra = {"transform": ranges, "splits": {p: counts[p] for p in PARAMETERS if ranges[p] > 0}, "boxes": len(boxes),
             "box_margin": box_margin, "deeppoly_boxes": torch.tensor(ran), "rounding": rounding}
    return CertResult(method, eps, k, (margin > TOLERANCE) & correct, margin, correct,
                      torch.tensor(seconds, dtype=torch.float64), extra)


def certify_rotation(model: Any, x: torch.Tensor, theta_degrees: float, method: str = "deeppoly", splits: int = 20,
                     label: torch.Tensor | None = None, budget: int = BUDGET, early_stop: bool = True) -> CertResult:
    """Certificates that the class of each image ``x`` (N, C, H, W) in [0, 1] is the same for every
    rotation by an angle in ``[-theta_degrees, theta_degrees]`` about the image centre (bilinear
    interpolation, zero fill), the range split into ``splits`` equal sub-intervals each certified
    with ``method`` on its per-pixel interval box. See :func:`certify_geometric`."""
    return certify_geometric(model, x, rotation=theta_degrees, method=method, splits={"rotation": splits}, label=label,
                             budget=budget, early_stop=early_stop)


def certify_translation(model: Any, x: torch.Tensor, pixels: float, method: str = "deeppoly", splits: int = 8,
                        label: torch.Tensor | None = None, budget: int = BUDGET, early_stop: bool = True) -> CertResult:
    """Certificates for every translation by up to ``±pixels`` along each axis (``splits`` sub-intervals
    per axis, ``splits²`` sub-boxes). See :func:`certify_geometric`."""
    return certify_geometric(model, x, translation=pixels, method=method, splits={"translation": splits}, label=label,
                             budget=budget, early_stop=early_stop)


def certify_scaling(model: Any, x: torch.Tensor, factor: float, method: str = "deeppoly", splits: int = 10,
                    label: torch.Tensor | None = None, budget: int = BUDGET, early_stop: bool = True) -> CertResult:
    """Certificates for every scaling about the centre by a factor in ``[1 - factor, 1 + factor]``.
    See :func:`certify_geometric`."""
    return certify_geometric(model, x, scaling=factor, method=method, splits={"scaling": splits}, label=label,
                             budget=budget, early_stop=early_stop)
