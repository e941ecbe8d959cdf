"""Geometric certificates (oodscope.verify.geometric, after DeepG): the bilinear transformation
against per-pixel and scipy references, soundness of the pixel bounds against sampled parameters,
of the certificates against a dense grid of angles, and their monotonicity in splits and θ."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from oodscope.data import load
from oodscope.upstream.classifier import Classifier
from oodscope.inputs import as_images
from oodscope.errors import InputError
from oodscope.verify import as_layers, certify, certify_box, certify_rotation, forward, input_box
from oodscope.verify.geometric import (certify_geometric, certify_scaling, certify_translation, coordinate_box,
                                       interpolate, interpolation_range, parameter_boxes, pixel_bounds,
                                       source_coordinates, transform)
from oodscope.verify.rounding import pixel_rounding

torch.set_num_threads(1)
D = torch.float64
THETAS = (2.0, 5.0, 10.0)
N_TEST = 30


@pytest.fixture(scope="module")
def digits() -> dict[str, torch.Tensor]:
    train, test = load("digits", "train"), load("digits", "test")
    return {"x": as_images(train, "train"), "y": torch.as_tensor(train.labels),
            "xt": as_images(test, "test")[:N_TEST].double(), "yt": torch.as_tensor(test.labels)[:N_TEST]}


@pytest.fixture(scope="module")
def clf(digits) -> Classifier:
    return Classifier(widths=[8, 16], hidden=32, epochs=10, batch_size=64, progress=False).fit(digits["x"], digits["y"])


@pytest.fixture(scope="module")
def rotations(clf, digits) -> dict[tuple[str, float, int], object]:
    """Rotation certificates by (method, θ, splits), computed once."""
    cache: dict[tuple[str, float, int], object] = {}

    def get(method: str, theta: float, splits: int = 20):
        key = (method, theta, splits)
        if key not in cache:
            cache[key] = certify_rotation(clf, digits["xt"], theta, method, splits=splits, label=digits["yt"])
        return cache[key]

    return get


def reference_transform(img: torch.Tensor, angle: float, tx: float = 0.0, ty: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    """Pixel by pixel, from the forward description: a source point ``p`` (column, row) lands at
    ``q = c + t + scale · R(angle) (p - c)``, ``R`` the counter-clockwise rotation as displayed (rows
    down); each output pixel ``q`` inverts this map (a 2×2 solve) and reads the source by bilinear
    interpolation of its four neighbours, 0 outside the image."""
    h, w = img.shape
    a = math.radians(angle)
    rot = scale * np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])  # (col, row) coordinates
    centre = np.array([(w - 1) / 2, (h - 1) / 2])

    def pixel(i: int, j: int) -> float:
        return float(img[i, j]) if 0 <= i < h and 0 <= j < w else 0.0

    out = torch.zeros(h, w, dtype=D)
    for i in range(h):
        for j in range(w):
            col, row = centre + np.linalg.solve(rot, np.array([j, i]) - centre - np.array([tx, ty]))
            i0, j0 = math.floor(row), math.floor(col)
            fr, fc = row - i0, col - j0
            out[i, j] = ((1 - fr) * (1 - fc) * pixel(i0, j0) + (1 - fr) * fc * pixel(i0, j0 + 1)
                         + fr * (1 - fc) * pixel(i0 + 1, j0) + fr * fc * pixel(i0 + 1, j0 + 1))
    return out


def test_the_bilinear_transformation_matches_per_pixel_and_scipy_references(digits) -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    g = torch.Generator().manual_seed(0)
    images = [digits["xt"][0, 0], torch.rand(7, 10, generator=g, dtype=D), torch.rand(28, 28, generator=g, dtype=D)]
    params = [(7.0, 0.0, 0.0, 1.0), (-33.0, 0.0, 0.0, 1.0), (180.0, 0.0, 0.0, 1.0), (3.0, 0.4, -1.3, 1.0),
              (-12.0, -0.6, 0.25, 0.8), (0.0, 0.0, 0.0, 1.2), (95.0, 2.5, 1.0, 1.1)]
    for img in images:
        for angle, tx, ty, scale in params:
            got = transform(img, angle, (tx, ty), scale)
            torch.testing.assert_close(got, reference_transform(img, angle, tx, ty, scale), atol=1e-12, rtol=0)
            rows, cols = source_coordinates(tuple(img.shape), angle, (tx, ty), scale)
            want = ndimage.map_coordinates(img.numpy(), [rows.numpy(), cols.numpy()], order=1, mode="grid-constant", cval=0.0)
            torch.testing.assert_close(got, torch.from_numpy(want), atol=1e-12, rtol=0)
            if (tx, ty, scale) == (0.0, 0.0, 1.0):
                want = ndimage.rotate(img.numpy(), angle, reshape=False, order=1, mode="grid-constant", cval=0.0)
                torch.testing.assert_close(got, torch.from_numpy(want), atol=1e-12, rtol=0)
    # batches and channels are transformed alike; 90 degrees counter-clockwise is rot90
    x = torch.rand(3, 2, 9, 9, generator=g, dtype=D)
    torch.testing.assert_close(transform(x, 20.0)[1, 1], transform(x[1, 1], 20.0))
    torch.testing.assert_close(transform(x, 90.0), torch.rot90(x, 1, dims=(2, 3)), atol=1e-12, rtol=0)
    dot = torch.zeros(9, 9, dtype=D)
    dot[4, 7] = 1.0  # right of the centre: a positive angle moves it up
    assert divmod(transform(dot, 90.0).argmax().item(), 9) == (1, 4)
    assert divmod(transform(dot, -90.0).argmax().item(), 9) == (7, 4)
    moved = transform(dot, 30.0)  # to row 4 - 3 sin 30° = 2.5, column 4 + 3 cos 30° = 6.6
    assert moved[2:4, 6:8].sum() > 0.99 * moved.sum() and moved.sum() > 0.5


def test_identity_parameters_reproduce_the_image_exactly(clf, digits) -> None:
    g = torch.Generator().manual_seed(1)
    for x in (digits["xt"][:5], torch.rand(2, 3, 7, 10, generator=g, dtype=D)):
        assert torch.equal(transform(x, 0.0), x)
        lo, hi = pixel_bounds(x, (0.0, 0.0))
        assert torch.equal(lo, x) and torch.equal(hi, x)
        # an integer translation is an exact shift with zero fill
        shifted = torch.zeros_like(x)
        shifted[..., 1:, :-2] = x[..., :-1, 2:]  # content 2 columns left, 1 row down
        assert torch.equal(transform(x, 0.0, (-2.0, 1.0)), shifted)
    # θ = 0 is the certificate at eps = 0: the correctly classified images
    for method in ("interval", "deeppoly"):
        r = certify_rotation(clf, digits["xt"], 0.0, method, label=digits["yt"])
        c = certify(clf, digits["xt"], 0.0, method, label=digits["yt"])
        assert torch.equal(r.certified, c.certified) and torch.equal(r.certified, c.correct)
        assert r.extra["boxes"] == 1
        if method == "interval":
            torch.testing.assert_close(r.margin, c.margin, atol=1e-12, rtol=0)


def sampled_parameters(angle, tx, ty, scale, n: int, g: torch.Generator) -> list[tuple[float, float, float, float]]:
    """The vertices of the parameter box and ``n`` uniform points in it."""
    corners = [(a, u, v, s) for a in angle for u in tx for v in ty for s in scale]
    u = torch.rand(n, 4, generator=g, dtype=D)
    box = torch.tensor([angle, tx, ty, scale], dtype=D)
    return corners + [tuple((box[:, 0] + t * (box[:, 1] - box[:, 0])).tolist()) for t in u]


def test_sampled_transformations_lie_inside_the_pixel_bounds(digits) -> None:
    g = torch.Generator().manual_seed(2)
    images = [digits["xt"][:4], torch.rand(2, 1, 28, 28, generator=g, dtype=D), torch.rand(1, 3, 7, 10, generator=g, dtype=D)]
    boxes = [((-10.0, 10.0), (0.0, 0.0), (0.0, 0.0), (1.0, 1.0)), ((2.0, 2.5), (0.0, 0.0), (0.0, 0.0), (1.0, 1.0)),
             ((-0.3, 0.1), (0.0, 0.0), (0.0, 0.0), (1.0, 1.0)), ((170.0, 190.0), (0.0, 0.0), (0.0, 0.0), (1.0, 1.0)),
             ((-60.0, 100.0), (0.0, 0.0), (0.0, 0.0), (1.0, 1.0)), ((0.0, 0.0), (-1.0, 0.5), (0.2, 0.7), (1.0, 1.0)),
             ((0.0, 0.0), (0.0, 0.0), (0.0, 0.0), (0.9, 1.15)), ((-4.0, 3.0), (-0.5, 0.5), (-0.5, 0.5), (0.95, 1.05))]
    for x in images:
        for angle, tx, ty, scale in boxes:
            lo, hi = pixel_bounds(x, angle, (tx, ty), scale)
            r_lo, r_hi, c_lo, c_hi = coordinate_box(tuple(x.shape[-2:]), angle, tx, ty, scale)
            seen = [torch.full_like(r_lo, math.inf), torch.full_like(r_lo, -math.inf)] * 2
            for a, u, v, s in sampled_parameters(angle, tx, ty, scale, 300, g):
                t = transform(x, a, (u, v), s)
                assert bool((t >= lo - 1e-12).all() and (t <= hi + 1e-12).all()), (angle, tx, ty, scale, a, u, v, s)
                rows, cols = source_coordinates(tuple(x.shape[-2:]), a, (u, v), s)
                assert bool((rows >= r_lo).all() and (rows <= r_hi).all() and (cols >= c_lo).all() and (cols <= c_hi).all())
                seen = [torch.minimum(seen[0], rows), torch.maximum(seen[1], rows),
                        torch.minimum(seen[2], cols), torch.maximum(seen[3], cols)]
            # the bounding box of the source points is tight: the samples come close to every side
            for got, want in zip(seen, (r_lo, r_hi, c_lo, c_hi), strict=True):
                assert float((got - want).abs().max()) < 0.02, (angle, tx, ty, scale)
            # and the pixel intervals no wider than the interpolant's Lipschitz bound over that box
            xp = torch.nn.functional.pad(x, (1, 1, 1, 1))
            lip_r, lip_c = xp.diff(dim=-2).abs().amax((-2, -1)), xp.diff(dim=-1).abs().amax((-2, -1))  # per image, channel
            width = lip_r[..., None, None] * (r_hi - r_lo) + lip_c[..., None, None] * (c_hi - c_lo)
            assert bool((hi - lo <= width + 1e-12).all()), (angle, tx, ty, scale)
    # a narrow angle interval gives narrow bounds around the rotated image
    x = images[1]
    lo, hi = pixel_bounds(x, (3.0, 3.0 + 1e-6))
    assert float((hi - lo).max()) < 1e-5 and bool((transform(x, 3.0) >= lo).all() and (transform(x, 3.0) <= hi).all())
    # the bounds nest: a sub-interval's bounds lie inside the interval's
    for sub in ((-5.0, -1.0), (0.0, 0.5), (4.9, 5.0)):
        sl, sh = pixel_bounds(x, sub)
        bl, bh = pixel_bounds(x, (-5.0, 5.0))
        assert bool((sl >= bl).all() and (sh <= bh).all())


def test_the_interpolation_range_is_the_exact_range_over_the_box() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 6, 7, generator=g, dtype=D)
    centre = torch.rand(50, generator=g, dtype=D) * 10 - 2  # boxes partly or wholly outside the image, too
    r_lo, c_lo = centre, torch.rand(50, generator=g, dtype=D) * 11 - 2
    r_hi = r_lo + torch.rand(50, generator=g, dtype=D) * torch.tensor([0.05, 0.5, 2.5]).repeat(17)[:50]
    c_hi = c_lo + torch.rand(50, generator=g, dtype=D) * torch.tensor([0.5, 2.5, 0.05]).repeat(17)[:50]
    lo, hi = interpolation_range(x, r_lo, r_hi, c_lo, c_hi)  # (2, 50)
    t = torch.linspace(0, 1, 61, dtype=D)
    rows = (r_lo[:, None, None] + t[None, :, None] * (r_hi - r_lo)[:, None, None]).expand(50, 61, 61)
    cols = (c_lo[:, None, None] + t[None, None, :] * (c_hi - c_lo)[:, None, None]).expand(50, 61, 61)
    dense = interpolate(x, rows, cols)  # (2, 50, 61, 61)
    # the dense grid holds the box's corners and every integer row and column of 0.05-wide steps...
    assert bool((dense.amin((-2, -1)) >= lo - 1e-12).all() and (dense.amax((-2, -1)) <= hi + 1e-12).all())
    # ...and comes within a grid step's worth of the extremes (exact up to the grid)
    assert float((dense.amin((-2, -1)) - lo).max()) < 0.06 and float((hi - dense.amax((-2, -1))).max()) < 0.06


def test_certified_images_keep_their_class_on_a_dense_grid_of_angles(clf, digits, rotations) -> None:
    x, y = digits["xt"], digits["yt"]
    checked, flipped = 0, 0
    for theta in THETAS:
        angles = torch.linspace(-theta, theta, 201, dtype=D).tolist()
        # the deployed classifier (float32) on the float32 rotated images
        logits = torch.stack([clf.logits(transform(x, a).float()).double() for a in angles], dim=1)  # (N, 201, K)
        k = y.view(-1, 1, 1).expand(-1, len(angles), 1)
        margin = (logits.gather(2, k)[..., 0] - logits.scatter(2, k, -math.inf).amax(2)).amin(1)  # (N,)
        stable = (logits.argmax(2) == y[:, None]).all(1)
        flipped += int((~stable).sum())
        for method in ("interval", "deeppoly"):
            r = rotations(method, theta)
            assert bool(stable[r.certified].all()), (method, theta)
            checked += int(r.certified.sum())
            # the certified margin is a lower bound of the float32 margin on every sampled angle (all images)
            assert bool((margin >= r.margin).all()), (method, theta)
            assert r.seconds.shape == (N_TEST,) and r.seconds_per_certificate > 0
            assert r.extra["boxes"] == 20 and r.eps == theta
    assert checked > 60
    assert flipped > 0  # the grid is live: some images do change class within ±10°


def test_deeppoly_certifies_at_least_what_intervals_do(rotations) -> None:
    for theta in THETAS:
        i, d = rotations("interval", theta), rotations("deeppoly", theta)
        assert bool((d.certified | ~i.certified).all())
        assert i.extra["deeppoly_boxes"].sum() == 0
    assert rotations("deeppoly", 5.0).share > rotations("interval", 5.0).share  # and strictly more at ±5°


@pytest.mark.slow  # ~20 s; the default run keeps the larger-theta monotonicity and the dense-grid soundness
def test_more_splits_never_certify_fewer_images(clf, digits, rotations) -> None:
    for method in ("interval", "deeppoly"):
        runs = [rotations(method, 5.0, s) for s in (5, 10, 20)]  # nested sub-intervals
        for coarse, fine in zip(runs, runs[1:]):
            assert bool((fine.certified | ~coarse.certified).all()), method
            if method == "interval":  # sub-boxes inside boxes: interval margins never fall
                assert bool((fine.margin >= coarse.margin - 1e-12).all())
    assert rotations("interval", 5.0, 20).share > rotations("interval", 5.0, 5).share  # splitting helps


def test_larger_theta_never_certifies_more(clf, digits, rotations) -> None:
    for method in ("interval", "deeppoly"):
        for small, large in zip(THETAS, THETAS[1:]):
            a, b = rotations(method, small), rotations(method, large)
            assert bool((a.certified | ~b.certified).all()), (method, small, large)
        assert rotations(method, 10.0).share < rotations(method, 2.0).share
    # with the same sub-interval width, the sub-intervals of ±2° are sub-intervals of ±4° and ±8°
    nested = [certify_rotation(clf, digits["xt"], t, "interval", splits=s, label=digits["yt"]) for t, s in ((2, 4), (4, 8), (8, 16))]
    for a, b in zip(nested, nested[1:]):
        assert bool((a.margin >= b.margin - 1e-12).all()) and bool((a.certified | ~b.certified).all())


def test_certify_box_is_certify_on_the_ball_and_the_sub_box_certificates(clf, digits) -> None:
    x, y = digits["xt"][:8], digits["yt"][:8]
    for method in ("interval", "deeppoly"):
        c = certify(clf, x, 0.02, method, label=y)
        b = certify_box(clf, *input_box(x, 0.02), method, label=y, center=x)
        torch.testing.assert_close(b.margin, c.margin, atol=0, rtol=0)
        assert torch.equal(b.certified, c.certified) and math.isnan(b.eps)
    # the interval margin of each rotation sub-box is certify_box's on its pixel box
    r = certify_rotation(clf, x[:2], 4.0, "interval", splits=4, label=y[:2])
    for n in range(2):
        for p, (angle, *_) in enumerate(parameter_boxes(rotation=4.0, splits=4)):
            lo, hi = (t.clamp(0, 1) for t in pixel_bounds(x[n:n + 1], angle))
            lo, hi = pixel_rounding(lo, hi)  # rounded outward to float32, as certify_rotation takes them
            m = certify_box(clf, lo, hi, "interval", label=y[n:n + 1]).margin
            torch.testing.assert_close(r.extra["box_margin"][n, p], m[0], atol=1e-12, rtol=0)
    # without labels the class is the prediction on the box's centre
    lo, hi = input_box(x, 0.01)
    b = certify_box(clf, lo, hi, "interval")
    assert torch.equal(b.predicted, forward(as_layers(clf), (lo + hi) / 2).argmax(1))


def test_translation_and_scaling_certificates_hold_on_a_grid(clf, digits) -> None:
    x, y = digits["xt"][:15], digits["yt"][:15]
    cases = [(certify_translation(clf, x, 0.3, "deeppoly", splits=4, label=y), [(0.0, (u, v), 1.0) for u in np.linspace(-0.3, 0.3, 13)
                                                                               for v in np.linspace(-0.3, 0.3, 13)]),
             (certify_scaling(clf, x, 0.05, "deeppoly", splits=8, label=y), [(0.0, (0.0, 0.0), s) for s in np.linspace(0.95, 1.05, 41)]),
             (certify_geometric(clf, x, rotation=2.0, translation=0.1, scaling=0.02, method="interval",
                                splits={"rotation": 8, "translation": 2, "scaling": 2}, label=y),
              [(a, (u, u), s) for a in np.linspace(-2, 2, 11) for u in (-0.1, 0.0, 0.1) for s in (0.98, 1.0, 1.02)])]
    certified = 0
    for r, grid in cases:
        certified += int(r.certified.sum())
        for a, (u, v), s in grid:  # the deployed classifier (float32) on the float32 transformed images
            pred = clf.logits(transform(x, float(a), (float(u), float(v)), float(s)).float()).argmax(1)
            assert bool((pred[r.certified] == y[r.certified]).all())
    assert certified > 10
    assert cases[0][0].extra["boxes"] == 16 and cases[2][0].extra["boxes"] == 8 * 2 * 2 * 2
    assert math.isnan(cases[2][0].eps) and cases[1][0].eps == 0.05


def test_bad_calls_are_refused(clf, digits) -> None:
    x = digits["xt"][:1]
    with pytest.raises(InputError, match="method"):
        certify_rotation(clf, x, 5.0, "crown")
    with pytest.raises(InputError, match="rotation range"):
        certify_rotation(clf, x, -1.0)
    with pytest.raises(InputError, match="scaling range"):
        certify_scaling(clf, x, 1.0)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        certify_rotation(clf, x * 3, 5.0)
    with pytest.raises(InputError, match="N, C, H, W"):
        certify_rotation(clf, x[0], 5.0)
    with pytest.raises(InputError, match="splits"):
        certify_rotation(clf, x, 5.0, splits=0)
    with pytest.raises(InputError, match="lower > upper"):
        certify_box(clf, x + 0.1, x)
