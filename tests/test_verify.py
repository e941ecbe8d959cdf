"""Certified robustness (oodscope.verify): interval bound propagation and DeepPoly against hand
computation, a dense-matrix reference, sampled points and PGD; refusal of unsupported layers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import digits_tensors

from oodscope.adversarial import ascend, pgd
from oodscope.upstream.classifier import Classifier
from oodscope.errors import InputError
from oodscope.nets import LeNet, build_backbone
from oodscope.verify import (as_layers, certify, deeppoly_bounds, deeppoly_margins, forward, input_box, interval_bounds,
                             interval_margins)
from oodscope.verify.interval import interval_step
from oodscope.verify.layers import Affine, Conv, Flatten, MaxPool, Relu, shapes
from oodscope.verify.rounding import affine_rounding

torch.set_num_threads(1)
D = torch.float64
EPSILONS = (0.0, 0.002, 0.005, 0.01, 0.02, 0.05)


@pytest.fixture(scope="module")
def digits() -> dict[str, torch.Tensor]:
    return digits_tensors(40)


@pytest.fixture(scope="module")
def clf(digits) -> Classifier:
    return Classifier(widths=[8, 16], hidden=32, epochs=10, batch_size=64, progress=False).fit(digits["x"], digits["y"])


@pytest.fixture(scope="module")
def certs(clf, digits) -> dict[tuple[str, float], object]:
    return {(m, e): certify(clf, digits["xt"], e, m, label=digits["yt"]) for m in ("interval", "deeppoly") for e in EPSILONS}


def paper_network() -> nn.Sequential:
    """The running example of Singh et al. (POPL 2019): x3 = x1 + x2, x4 = x1 - x2, ReLU,
    x7 = x5 + x6, x8 = x5 - x6, ReLU, x11 = x9 + x10 + 1, x12 = x10."""
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2))
    with torch.no_grad():
        for lin, w, b in zip(net[::2], ([[1, 1], [1, -1]], [[1, 1], [1, -1]], [[1, 1], [0, 1]]), ([0, 0], [0, 0], [1, 0]),
                             strict=True):
            lin.weight.copy_(torch.tensor(w, dtype=torch.float32))
            lin.bias.copy_(torch.tensor(b, dtype=torch.float32))
    return net


def test_the_papers_example_gives_the_hand_computed_bounds() -> None:
    ops = as_layers(paper_network())
    lo, hi = -torch.ones(1, 2, dtype=D), torch.ones(1, 2, dtype=D)
    # intervals: x3, x4 in [-2, 2]; x5, x6 in [0, 2]; x7 in [0, 4], x8 in [-2, 2]; x9 in [0, 4],
    # x10 in [0, 2]; x11 in [1, 7], x12 in [0, 2]
    want_ibp = [([-2, -2], [2, 2]), ([0, 0], [2, 2]), ([0, -2], [4, 2]), ([0, 0], [4, 2]), ([1, 0], [7, 2])]
    # DeepPoly: x5 <= x3 / 2 + 1 (lambda = 0 as u = -l), so x7 = x5 + x6 <= x1 + 2 <= 3; x9 = x7 (stable);
    # x10 <= x8 / 2 + 1; x11 <= 1.5 x5 + 0.5 x6 + 2 <= x1 + x2 / 2 + 4 <= 5.5
    want_dp = [([-2, -2], [2, 2]), ([0, 0], [2, 2]), ([0, -2], [3, 2]), ([0, 0], [3, 2]), ([1, 0], [5.5, 2])]
    # in exact arithmetic (rounding=False); the float32 rounding bounds only widen them, by < 1e-5
    exact = ((interval_bounds(ops, lo, hi, rounding=False), want_ibp), (deeppoly_bounds(ops, lo, hi, rounding=False), want_dp),
             (deeppoly_bounds(ops, lo, hi, intersect=False, rounding=False), want_dp))
    for got, want in exact:
        for (l, u), (wl, wu) in zip(got, want, strict=True):
            torch.testing.assert_close(l[0], torch.tensor(wl, dtype=D))
            torch.testing.assert_close(u[0], torch.tensor(wu, dtype=D))
    for got, want in ((interval_bounds(ops, lo, hi), want_ibp), (deeppoly_bounds(ops, lo, hi), want_dp)):
        for (l, u), (wl, wu) in zip(got, want, strict=True):
            wl, wu = torch.tensor(wl, dtype=D), torch.tensor(wu, dtype=D)
            assert bool((l[0] <= wl).all() and (l[0] > wl - 1e-5).all() and (u[0] > wu).all() and (u[0] < wu + 1e-5).all())
    # class 0: x11 - x12 = x9 + 1 >= 1 both ways once the difference is folded into the last layer
    # (separate bounds would give 1 - 2 = -1); class 1: x12 - x11 = x10 - x9 - 1 is >= -5 by intervals
    # (0 - 4 - 1) and >= -x7 - 1 >= -x1 - 3 >= -4 by DeepPoly
    for label, want_i, want_d in ((0, 1.0, 1.0), (1, -5.0, -4.0)):
        y = torch.tensor([label])
        assert interval_margins(ops, lo, hi, y, rounding=False)[0, 1 - label].item() == pytest.approx(want_i)
        assert deeppoly_margins(ops, lo, hi, y, rounding=False)[0, 1 - label].item() == pytest.approx(want_d)
        for got, want in ((interval_margins(ops, lo, hi, y), want_i), (deeppoly_margins(ops, lo, hi, y), want_d)):
            assert want - 1e-5 < got[0, 1 - label].item() < want  # of the float32 logits: a little lower
        assert deeppoly_margins(ops, lo, hi, y)[0, label].item() == float("inf")
    for method in ("interval", "deeppoly"):
        r = certify(paper_network(), torch.zeros(1, 2), 1.0, method, clip=None)
        assert r.predicted.tolist() == [0] and r.certified.tolist() == [True] and r.margin.item() == pytest.approx(1.0, abs=1e-5)
        r = certify(paper_network(), torch.zeros(1, 2), 1.0, method, label=torch.tensor([1]), clip=None)
        assert r.certified.tolist() == [False] and not r.correct.item()  # misclassified: never certified


def test_the_flat_ops_compute_the_classifier_and_the_conv_transpose_is_its_adjoint(clf, digits) -> None:
    ops = as_layers(clf)
    assert [type(op).__name__ for op in ops] == ["ChannelAffine", "Conv", "Relu", "MaxPool", "Conv", "Relu", "MaxPool",
                                                 "Flatten", "Dense", "Relu", "Dense"]
    with torch.no_grad():
        want = clf.differentiable(amp=False)(digits["xt"]).double()
    torch.testing.assert_close(forward(ops, digits["xt"]), want, atol=1e-4, rtol=1e-4)
    g = torch.Generator().manual_seed(0)
    for stride, padding, dilation, size in (((1, 1), (2, 2), (1, 1), (8, 8)), ((2, 3), (1, 0), (2, 1), (11, 9))):
        conv = Conv(torch.randn(4, 3, 3, 2, generator=g), torch.randn(4, generator=g), stride, padding, dilation)
        x = torch.randn(2, 3, *size, generator=g, dtype=D)
        y = conv.linear(x)
        a = torch.randn(y.shape, generator=g, dtype=D)
        assert (a * y).sum().item() == pytest.approx((conv.transpose(a, x.shape[1:]) * x).sum().item())


def dense_deeppoly(ops, lo: torch.Tensor, hi: torch.Tensor, intersect: bool = False,
                   rounding: bool = False) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """DeepPoly with explicit matrices, as in the paper (one image): every layer's symbolic bounds as
    matrices, back-substitution by matrix products, max pooling neuron by neuron; ``intersect``:
    affine layers' bounds intersected with the interval step from the layer before; ``rounding``:
    each affine layer's float32 rounding bound ``E`` (on its input bounds) as a constant slack,
    ``W x + b - E <= y <= W x + b + E``."""
    shp = shapes(ops, tuple(lo.shape[1:]))
    rel, bounds = [], [(lo.flatten(), hi.flatten())]
    for i, op in enumerate(ops):
        (l, u), n = bounds[-1], bounds[-1][0].numel()
        zero = torch.zeros(n, dtype=D)
        if isinstance(op, Affine):
            m = op.linear(torch.eye(n, dtype=D).view(n, *shp[i])).reshape(n, -1).T
            b = op.forward(torch.zeros(1, *shp[i], dtype=D)).flatten()
            e = affine_rounding(op, l.view(1, *shp[i]), u.view(1, *shp[i])).flatten() if rounding else torch.zeros_like(b)
            rel.append((m, b - e, m, b + e))
            al, cl, au, cu = m, b - e, m, b + e
            for lm, lc, um, uc in reversed(rel[:-1]):
                al, cl = al.clamp_min(0) @ lm + al.clamp_max(0) @ um, cl + al.clamp_min(0) @ lc + al.clamp_max(0) @ uc
                au, cu = au.clamp_min(0) @ um + au.clamp_max(0) @ lm, cu + au.clamp_min(0) @ uc + au.clamp_max(0) @ lc
            x0, x1 = bounds[0]
            new_l, new_u = cl + al.clamp_min(0) @ x0 + al.clamp_max(0) @ x1, cu + au.clamp_min(0) @ x1 + au.clamp_max(0) @ x0
            if intersect:
                il, iu = (t.flatten() for t in interval_step(op, l.view(1, *shp[i]), u.view(1, *shp[i]), rounding))
                new_l, new_u = torch.maximum(new_l, il), torch.minimum(new_u, iu)
            bounds.append((new_l, new_u))
        elif isinstance(op, Relu):
            lam, up, shift = zero.clone(), zero.clone(), zero.clone()
            for k in range(n):
                if l[k] >= 0:
                    lam[k] = up[k] = 1.0
                elif u[k] > 0:
                    up[k], shift[k] = u[k] / (u[k] - l[k]), -u[k] * l[k] / (u[k] - l[k])
                    lam[k] = float(u[k] > -l[k])
            rel.append((torch.diag(lam), zero, torch.diag(up), shift))
            bounds.append((l.clamp_min(0), u.clamp_min(0)))
        elif isinstance(op, MaxPool):
            (c, h, w), (k0, k1) = shp[i], op.kernel
            ho, wo = h // k0, w // k1
            lm, um, uc = torch.zeros(c * ho * wo, n, dtype=D), torch.zeros(c * ho * wo, n, dtype=D), torch.zeros(c * ho * wo, dtype=D)
            for o in range(c * ho * wo):
                ch, a, b = o // (ho * wo), (o // wo) % ho, o % wo
                cells = [(ch * h + a * k0 + p) * w + b * k1 + q for p in range(k0) for q in range(k1)]
                best = max(cells, key=lambda t: l[t].item())
                lm[o, best] = 1.0
                if all(l[best] >= u[t] for t in cells if t != best):
                    um[o, best] = 1.0
                else:
                    uc[o] = max(u[t].item() for t in cells)
            rel.append((lm, torch.zeros(c * ho * wo, dtype=D), um, uc))
            bounds.append(tuple(F.max_pool2d(t.view(1, c, h, w), op.kernel).flatten() for t in (l, u)))
        else:
            assert isinstance(op, Flatten)
            rel.append((torch.eye(n, dtype=D), zero, torch.eye(n, dtype=D), zero))
            bounds.append((l, u))
    return bounds[1:]


def test_deeppoly_equals_a_dense_matrix_reference() -> None:
    torch.manual_seed(0)
    nets = [(LeNet(1, 10, (8, 8), (2, 4), 16).eval(), (1, 8, 8)),
            (nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(3, 4, 3, padding=2, dilation=2),
                           nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 3, 2, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(3, 5)),
             (2, 9, 11)),
            (nn.Sequential(nn.Conv2d(1, 3, 3, stride=2, dilation=2), nn.ReLU(), nn.MaxPool2d((2, 3)), nn.Flatten(),
                           nn.Linear(6, 4)), (1, 11, 13))]
    for net, shape in nets:
        ops = as_layers(net, [0.3] * shape[0], [0.4] * shape[0])
        lo, hi = input_box(torch.rand(2, *shape), 0.05)
        for n, intersect, rounding in ((0, False, False), (1, False, True), (0, True, True), (1, True, False)):
            got = deeppoly_bounds(ops, lo[n:n + 1], hi[n:n + 1], intersect=intersect, rounding=rounding)
            want = dense_deeppoly(ops, lo[n:n + 1], hi[n:n + 1], intersect, rounding)
            assert len(got) == len(want) == len(ops)
            for i, ((gl, gu), (wl, wu)) in enumerate(zip(got, want, strict=True)):
                # intersected: neurons an interval step proves inactive before a ReLU keep its bounds
                live = wu > 0 if intersect and i + 1 < len(ops) and isinstance(ops[i + 1], Relu) else torch.ones_like(wu).bool()
                torch.testing.assert_close(gl.flatten()[live], wl[live], atol=1e-10, rtol=0)
                torch.testing.assert_close(gu.flatten()[live], wu[live], atol=1e-10, rtol=0)
                assert bool((gu.flatten()[~live] <= 0).all())


def box_samples(lo: torch.Tensor, hi: torch.Tensor, n: int, g: torch.Generator) -> torch.Tensor:
    """``n`` uniform points of the box and ``n`` random corners of it."""
    u = torch.rand(n, *lo.shape[1:], generator=g, dtype=D)
    corner = torch.randint(0, 2, (n, *lo.shape[1:]), generator=g).to(D)
    return torch.cat([lo + u * (hi - lo), lo + corner * (hi - lo)])


def test_bounds_contain_sampled_outputs_at_every_layer_and_deeppoly_is_tighter(clf, digits) -> None:
    ops, g = as_layers(clf), torch.Generator().manual_seed(0)
    x, y = digits["xt"][:4], digits["yt"][:4]
    for eps in (0.02, 0.1):
        lo, hi = input_box(x, eps)
        ibp = interval_bounds(ops, lo, hi)
        dp = deeppoly_bounds(ops, lo, hi)
        pure = deeppoly_bounds(ops, lo, hi, intersect=False)
        for n in range(x.shape[0]):
            z = box_samples(lo[n:n + 1], hi[n:n + 1], 256, g)
            for i, op in enumerate(ops):
                z = op.forward(z)
                for bounds in (ibp, dp, pure):
                    l, u = bounds[i]
                    assert bool((z >= l[n] - 1e-9).all() and (z <= u[n] + 1e-9).all()), (eps, n, i)
        for (il, iu), (dl, du) in zip(ibp, dp, strict=True):  # intersected DeepPoly: inside IBP at every layer
            assert bool((dl >= il - 1e-12).all() and (du <= iu + 1e-12).all())
        # DeepPoly on its own: the final margins are never looser than IBP's, and strictly tighter on average
        m_ibp = interval_margins(ops, lo, hi, y).min(1).values
        m_dp = deeppoly_margins(ops, lo, hi, y, intersect=False).min(1).values
        assert bool((m_dp >= m_ibp - 1e-9).all()) and m_dp.mean() > m_ibp.mean() + 1
        # and below the smallest margin of the sampled points
        z = forward(ops, torch.cat([box_samples(lo[n:n + 1], hi[n:n + 1], 64, g) for n in range(4)])).view(4, 128, -1)
        k = y.view(4, 1, 1).expand(4, 128, 1)
        sampled = (z.gather(2, k)[..., 0] - z.scatter(2, k, float("-inf")).amax(2)).amin(1)
        assert bool((m_dp <= sampled + 1e-9).all())


def test_certified_images_survive_pgd_and_lower_bound_the_attacked_margin(clf, digits, certs) -> None:
    model = clf.differentiable()  # the deployed network: float32, the classifier's precision
    x, y = digits["xt"], digits["yt"]

    def margin(z: torch.Tensor) -> torch.Tensor:
        logits = model(z)
        return logits.gather(1, y[:, None])[:, 0] - logits.scatter(1, y[:, None], float("-inf")).amax(1)

    checked = 0
    for eps in (0.005, 0.01, 0.02):
        for method in ("interval", "deeppoly"):
            r = certs[(method, eps)]
            xa = pgd(model, x, y, eps, eps / 4, 20, restarts=5, generator=torch.Generator().manual_seed(1))
            with torch.no_grad():
                pred = model(xa).argmax(1)
            assert bool((pred[r.certified] == y[r.certified]).all()), (method, eps)
            checked += int(r.certified.sum())
            # the smallest margin PGD finds on the region is never below the certified lower bound
            xm = ascend(lambda z: -margin(z), x, eps, eps / 4, 20, generator=torch.Generator().manual_seed(2))
            with torch.no_grad():
                assert bool((margin(xm).double() >= r.margin - 1e-3).all()), (method, eps)
    assert checked > 50
    xa = pgd(model, x, y, 0.05, 0.0125, 20, restarts=5, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert int((model(xa).argmax(1) != y).sum()) > 5  # the attack is live where nothing is certified


def test_certified_shares_start_at_the_accuracy_and_fall_with_eps(clf, digits, certs) -> None:
    correct = forward(as_layers(clf), digits["xt"]).argmax(1) == digits["yt"]
    for method in ("interval", "deeppoly"):
        r0 = certs[(method, 0.0)]
        assert torch.equal(r0.certified, correct) and torch.equal(r0.correct, correct)
        shares = [certs[(method, e)].share for e in EPSILONS]
        assert all(a >= b for a, b in zip(shares, shares[1:])), (method, shares)
        assert shares[-1] < shares[0]
        assert r0.seconds.shape == (40,) and r0.seconds_per_certificate > 0
    ops = as_layers(clf)
    for e in EPSILONS:
        i, d = certs[("interval", e)], certs[("deeppoly", e)]
        assert bool((d.margin >= i.margin - 1e-9).all()) and bool((d.certified | ~i.certified).all())
        lo, hi = input_box(digits["xt"], e)  # certify takes, per class, the better of two sound bounds
        assert bool((d.margin >= deeppoly_margins(ops, lo, hi, digits["yt"]).min(1).values - 1e-12).all())
        assert torch.equal(i.predicted, digits["yt"])
    assert certs[("deeppoly", 0.01)].share > certs[("interval", 0.01)].share + 0.5  # DeepPoly certifies far more
    # without labels the class is the network's arg-max
    r = certify(clf, digits["xt"][:5], 0.01, "interval")
    torch.testing.assert_close(r.predicted, forward(as_layers(clf), digits["xt"][:5]).argmax(1))
    # interval bounds of a smaller box nest inside those of a larger one, layer by layer
    small, large = input_box(digits["xt"][:5], 0.005), input_box(digits["xt"][:5], 0.01)
    for (sl, su), (gl, gu) in zip(interval_bounds(ops, *small), interval_bounds(ops, *large), strict=True):
        assert bool((sl >= gl - 1e-12).all() and (su <= gu + 1e-12).all())


@pytest.mark.parametrize("net, name", [
    (nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU()), "BatchNorm2d"),
    (nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AvgPool2d(2)), "AvgPool2d"),
    (nn.Sequential(nn.Flatten(), nn.Linear(64, 4), nn.Tanh()), "Tanh"),
    (nn.Sequential(nn.Conv2d(1, 4, 3), nn.MaxPool2d(3, stride=2)), "MaxPool2d"),
    (nn.Sequential(nn.Conv2d(2, 4, 3, groups=2)), "Conv2d"),
    (build_backbone("wrn", 1, 10, depth=10, width=1), "WideResNet"),
    (build_backbone("small", 1, 10, widths=(4, 8, 8)), "SmallResNet"),
])
def test_unsupported_layers_are_refused(net, name) -> None:
    with pytest.raises(InputError, match=rf"verify: {name} layers are not supported.*supported: Conv2d"):
        certify(net, torch.rand(1, 1, 8, 8), 0.01)


def test_bad_calls_are_refused(clf, digits) -> None:
    with pytest.raises(InputError, match="method"):
        certify(clf, digits["xt"][:1], 0.01, method="crown")
    with pytest.raises(InputError, match="eps"):
        certify(clf, digits["xt"][:1], -0.1)
    with pytest.raises(InputError, match="Flatten"):
        certify(nn.Sequential(nn.Linear(8, 2)), torch.rand(1, 1, 8, 8), 0.01)
    with pytest.raises(InputError, match="Classifier"):
        as_layers("lenet")
