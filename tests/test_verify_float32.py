"""Certificates cover the deployed float32 classifier (oodscope.verify.rounding): the reviewer's
segment walk between test images, the float32 network's values inside every layer's bounds, the
rounding bound by hand, and the refusal of models that score in bfloat16."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from helpers import digits_tensors, write_class_folders

from oodscope.cli import cli
from oodscope.data import load
from oodscope.detectors import create
from oodscope.upstream.classifier import Classifier
from oodscope.errors import InputError
from oodscope.verify import as_layers, certify, certify_rotation, forward, input_box, interval_bounds, layer_bounds
from oodscope.verify.layers import Dense
from oodscope.precision import precision_of
from oodscope.verify.rounding import SAFETY, TINY32, U32, affine_rounding, gamma, require_float32

torch.set_num_threads(1)
D = torch.float64
N_PAIRS = 24  # pairs of test images whose segments are walked
GRID = 17  # evenly spaced points on each segment
# offsets in t on either side of each segment's first change of class, 1e-12 ... 1e-2
OFFSETS = torch.cat([-torch.logspace(-12, -2, 21, dtype=D).flip(0), torch.logspace(-12, -2, 21, dtype=D)])
EPSILONS = (0.0, 1e-8, 1e-6, 1e-5, 1e-4, 1e-3)
DEEPPOLY_PAIRS, DEEPPOLY_EPSILONS = 4, (1e-8, 1e-5)  # DeepPoly on every point of the first pairs
SAMPLES = 4  # random points and random corners per certified ball


@pytest.fixture(scope="module")
def digits() -> dict[str, torch.Tensor]:
    return digits_tensors(200)


@pytest.fixture(scope="module")
def clf(digits) -> Classifier:
    # trained in bfloat16 autocast (amp, the default), scoring in float32 (the precision verified)
    return Classifier(widths=[8, 16], hidden=32, epochs=10, batch_size=64, precision="float32",
                      progress=False).fit(digits["x"], digits["y"])


def segment_walk(clf: Classifier, x: torch.Tensor) -> torch.Tensor:
    """Float32 points (clipped to [0, 1]) on the segments between consecutive test images of
    different predicted classes: ``GRID`` evenly spaced, and ``OFFSETS`` around the first change of
    the float64 network's class along the segment (found by bisection), where the float32 and
    float64 networks disagree. Returns the points (P, M, C, H, W)."""
    ops = as_layers(clf)
    pred = forward(ops, x).argmax(1)
    pairs = [(i, i + 1) for i in range(0, x.shape[0] - 1, 2) if pred[i] != pred[i + 1]][:N_PAIRS]
    a, b = x[[i for i, _ in pairs]].to(D), x[[j for _, j in pairs]].to(D)

    def points(t: torch.Tensor) -> torch.Tensor:  # t (P, M) -> (P, M, C, H, W) float32
        return (a[:, None] + t[..., None, None, None] * (b - a)[:, None]).clamp(0.0, 1.0).float()

    def classes(t: torch.Tensor) -> torch.Tensor:
        p = points(t)
        return forward(ops, p.flatten(0, 1)).argmax(1).view(p.shape[:2])

    grid = torch.linspace(0, 1, GRID, dtype=D).expand(len(pairs), GRID)
    c = classes(grid)
    first = (c != c[:, :1]).double().argmax(1)  # the first grid point of another class
    rows = torch.arange(len(pairs))
    lo, hi = grid[rows, first - 1].clone(), grid[rows, first].clone()
    for _ in range(60):
        mid = (lo + hi) / 2
        same = classes(mid[:, None])[:, 0] == c[:, 0]
        lo, hi = torch.where(same, mid, lo), torch.where(same, hi, mid)
    return torch.cat([points(grid), points((lo[:, None] + OFFSETS).clamp(0.0, 1.0))], dim=1)


def inside_ball(center: torch.Tensor, eps: float, g: torch.Generator) -> torch.Tensor:
    """``SAMPLES`` uniform points and ``SAMPLES`` random corners (2 SAMPLES, N, ...) of the ball of
    radius ``eps`` about each float32 ``center`` inside [0, 1], as float32 numbers inside it (a value
    rounded out of the ball is moved one float32 step in)."""
    lo, hi = input_box(center, eps)
    n = (SAMPLES, *center.shape)
    z = torch.cat([lo + torch.rand(n, generator=g, dtype=D) * (hi - lo),
                   torch.where(torch.rand(n, generator=g) < 0.5, lo, hi)])
    z32 = z.float()
    z32 = torch.where(z32.double() < lo, torch.nextafter(z32, torch.tensor(2.0)), z32)
    z32 = torch.where(z32.double() > hi, torch.nextafter(z32, torch.tensor(-1.0)), z32)
    assert bool(((z32.double() >= lo) & (z32.double() <= hi)).all())
    return z32


def counterexamples(clf: Classifier, points: torch.Tensor, eps: float, method: str, rounding: bool,
                    g: torch.Generator) -> tuple[int, int]:
    """(certified points, certified points whose ball holds a float32 image that ``Classifier.logits``
    puts in another class: the point itself, random points and random corners)."""
    r = certify(clf, points, eps, method, rounding=rounding)
    center, k = points[r.certified], r.predicted[r.certified]
    if center.shape[0] == 0:
        return 0, 0
    wrong = clf.logits(center).argmax(1) != k
    if eps > 0:
        z = inside_ball(center, eps, g)
        wrong |= (clf.logits(z.flatten(0, 1)).argmax(1).view(z.shape[0], -1) != k).any(0)
    return int(r.certified.sum()), int(wrong.sum())


def test_no_certified_point_of_the_segment_walk_is_predicted_otherwise(clf, digits) -> None:
    walk = segment_walk(clf, digits["xt"])
    points = walk.flatten(0, 1)
    assert points.shape[0] == N_PAIRS * (GRID + OFFSETS.numel()) and points.dtype == torch.float32
    g = torch.Generator().manual_seed(0)
    # the walk is sharp: certificates of the float64 copy (exact arithmetic, a tolerance of 1e-9, as
    # before the rounding bounds) are contradicted by the float32 classifier at many points
    old_certified, old_wrong = counterexamples(clf, points, 0.0, "interval", False, g)
    assert old_wrong >= 10, old_wrong
    certified = {}
    for eps in EPSILONS:
        certified[eps], wrong = counterexamples(clf, points, eps, "interval", True, g)
        assert wrong == 0, ("interval", eps, wrong)
    dp_points = walk[:DEEPPOLY_PAIRS].flatten(0, 1)
    for eps in DEEPPOLY_EPSILONS:
        n, wrong = counterexamples(clf, dp_points, eps, "deeppoly", True, g)
        assert wrong == 0 and n > 0, ("deeppoly", eps, wrong)
    # the rounding bounds cost the points nearest the boundary; from eps 1e-4 hardly any certificate
    assert certified[0.0] > 0.3 * old_certified
    for eps in (1e-4, 1e-3):
        assert certified[eps] >= 0.95 * int(certify(clf, points, eps, "interval", rounding=False).certified.sum()), eps


def test_every_layers_bounds_hold_the_float32_networks_values(clf, digits) -> None:
    x = digits["xt"][:16]
    with torch.no_grad():
        taps = {k: v.double() for k, v in clf.taps(x).items()}  # float32 values of the deployed network
    at = {3: "z1", 6: "z2", 9: "z3", 10: "logits"}  # op index of each tap's output
    for eps, method in ((0.0, "interval"), (0.0, "deeppoly"), (0.01, "interval"), (0.01, "deeppoly")):
        bounds = layer_bounds(clf, x, eps, method)
        for i, name in at.items():
            l, u = bounds[i]
            assert bool(((taps[name] >= l) & (taps[name] <= u)).all()), (eps, method, name)
    # the exact-arithmetic bounds at eps 0 are the float64 network's values, which float32 misses
    l, u = interval_bounds(as_layers(clf), *input_box(x, 0.0), rounding=False)[-1]
    assert not bool(((taps["logits"] >= l) & (taps["logits"] <= u)).all())
    assert float((taps["logits"] - l).abs().max()) > 1e-7


def test_the_rounding_bound_of_a_linear_layer_by_hand() -> None:
    op = Dense(torch.tensor([[1.0, -2.0], [0.5, 0.25]]), torch.tensor([0.5, -1.0]))
    lo, hi = torch.tensor([[-1.0, 0.0]], dtype=D), torch.tensor([[3.0, 2.0]], dtype=D)  # |x| <= (3, 2)
    g3 = 3 * U32 / (1 - 3 * U32)  # two products and the bias
    # the underflow term: 2^-126 (the largest row sum of |W|, 3, + 2 (n + 1) = 6)
    want = SAFETY * torch.tensor([g3 * (3 + 4 + 0.5) + TINY32 * (3 + 6), g3 * (1.5 + 0.5 + 1) + TINY32 * (3 + 6)], dtype=D)
    torch.testing.assert_close(affine_rounding(op, lo, hi)[0], want, rtol=1e-12, atol=0)
    assert gamma(3) == g3
    # float32 sums of many terms stay inside: the worst float32 error of a long dot product
    w = torch.rand(1, 4000, generator=torch.Generator().manual_seed(0)) + 0.5
    big = Dense(w, torch.zeros(1))
    xs = torch.rand(64, 4000, generator=torch.Generator().manual_seed(1))
    exact = xs.double() @ w.double().T
    err = ((xs @ w.T).double() - exact).abs()
    bound = affine_rounding(big, xs.double(), xs.double())
    assert bool((err <= bound).all()) and float(bound.max()) < 1e-2 * float(exact.min())


def test_models_that_score_in_bfloat16_are_refused(clf, digits) -> None:
    x = digits["xt"][:2]
    bf16 = Classifier(precision="bfloat16")
    for call in (lambda: certify(bf16, x, 0.01), lambda: certify_rotation(bf16, x, 2.0),
                 lambda: require_float32(bf16)):
        with pytest.raises(InputError, match=r"scores in bfloat16 .*--set precision=float32"):
            call()
    old = Classifier()  # a model written before the precision setting: amp on meant bfloat16 scoring
    del old.settings["precision"]
    assert precision_of(old.settings) == "bfloat16"
    with pytest.raises(InputError, match="bfloat16"):
        certify(old, x, 0.01)
    old.settings["amp"] = False
    assert precision_of(old.settings) == "float32"
    with pytest.raises(InputError, match="not fitted"):  # taken as float32: refused only for being untrained
        certify(old, x, 0.01)
    assert precision_of({"precision": "float32", "amp": True}) == "float32"
    require_float32(clf)
    require_float32(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)))  # bare networks: float32
    assert certify(clf, x, 0.01, "interval").extra["rounding"] is True


def test_the_verify_command_refuses_a_saved_bfloat16_model(tmp_path: Path) -> None:
    train, test = load("digits", "train"), load("digits", "test")
    write_class_folders(test.images, test.labels, 10, tmp_path / "images")
    settings = {"widths": [4, 8], "hidden": 8, "epochs": 1, "progress": False}
    runner = CliRunner()
    for precision, code in (("bfloat16", 2), ("float32", 0)):
        create("msp", precision=precision, **settings).fit(train).save(tmp_path / precision)
        r = runner.invoke(cli, ["verify", str(tmp_path / precision), "--images", str(tmp_path / "images"), "--method",
                                "interval", "--eps", "0.01", "--no-progress"])
        assert r.exit_code == code, r.output
    refused = runner.invoke(cli, ["verify", str(tmp_path / "bfloat16"), "--images", str(tmp_path / "images"), "--no-progress"])
    lines = [line for line in refused.output.splitlines() if line.strip()]
    assert refused.exit_code == 2 and len(lines) == 1 and "--set precision=float32" in lines[0], refused.output
