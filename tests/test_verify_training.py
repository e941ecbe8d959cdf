"""Certified training with interval bounds (Gowal et al. 2018), DeepXplore's neuron coverage and
``oodscope verify``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch import nn

from helpers import write_class_folders

from oodscope.cli import cli
from oodscope.data import load
from oodscope.detectors import create
from oodscope.upstream.classifier import Classifier
from oodscope.inputs import as_images
from oodscope.upstream.base import upstream_key
from oodscope.errors import InputError
from oodscope.nets import LeNet
from oodscope.verify import as_layers, certify, ibp_loss, ibp_schedule, input_box, interval_margins, neuron_coverage
from oodscope.verify.coverage import activated
from oodscope.verify.ibp_training import ibp_modules, worst_case_logits

torch.set_num_threads(1)
# the classifiers of the comparison: the same network and schedule, standard or certified training
BASE = {"widths": [8, 16], "hidden": 32, "epochs": 50, "batch_size": 64, "lr": 3e-3, "progress": False}
IBP = {"adversarial": "ibp", "adv_eps": 0.05, "adv_warmup": 0.3}
MEAN, STD = [0.3], [0.4]


@pytest.fixture(scope="module")
def digits() -> dict[str, torch.Tensor]:
    train, test = load("digits", "train"), load("digits", "test")
    return {"x": as_images(train, "train"), "y": torch.as_tensor(train.labels),
            "xt": as_images(test, "test")[:100], "yt": torch.as_tensor(test.labels)[:100]}


def small_lenet(seed: int = 0) -> LeNet:
    torch.manual_seed(seed)
    return LeNet(1, 10, (8, 8), (4, 8), 16)


def margins_of(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``z_y - z_j`` (N, K)."""
    return logits.gather(1, labels[:, None]) - logits


# -- certified training ------------------------------------------------------------------------
def test_the_ibp_loss_at_eps_zero_is_the_cross_entropy_with_its_gradient() -> None:
    net = small_lenet()
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    logits = net((x - MEAN[0]) / STD[0])
    plain = F.cross_entropy(logits, y)
    want = torch.autograd.grad(plain, list(net.parameters()))
    for kappa in (0.0, 0.5, 1.0):
        loss = ibp_loss(net, x, y, 0.0, kappa, MEAN, STD)
        torch.testing.assert_close(loss, plain, atol=1e-5, rtol=1e-5)
        for g, w in zip(torch.autograd.grad(loss, list(net.parameters())), want, strict=True):
            torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-4)
    # the worst-case logits at eps 0 are the logits shifted by -z_y
    torch.testing.assert_close(worst_case_logits(net, x, y, 0.0, MEAN, STD), -margins_of(logits, y), atol=1e-5, rtol=1e-5)
    assert ibp_loss(net, x, y, 0.1, 0.0, MEAN, STD) > plain + 0.1  # a positive radius costs


@pytest.mark.parametrize("tail", ["linear", "relu"])
def test_worst_case_logits_are_the_verifiers_interval_margins_and_bound_sampled_points(tail: str) -> None:
    torch.manual_seed(1)
    if tail == "linear":
        net = small_lenet(1)
    else:  # a network not ending with a linear layer: lower(z_y) - upper(z_j)
        net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(48, 5), nn.ReLU())
    x = torch.rand(6, 1, 8, 8)
    y = net((x - MEAN[0]) / STD[0]).argmax(1)
    for eps in (0.01, 0.05):
        worst = worst_case_logits(net, x, y, eps, MEAN, STD)
        want = interval_margins(as_layers(net, MEAN, STD), *input_box(x, eps), y, rounding=False)  # float64, +inf at j = y
        torch.testing.assert_close(-worst.double(), want.masked_fill(want.isinf(), 0.0), atol=1e-4, rtol=1e-4)
        lo, hi = input_box(x, eps)
        for _ in range(20):
            z = (lo + torch.rand(x.shape, dtype=lo.dtype) * (hi - lo)).float()
            assert bool((margins_of(net((z - MEAN[0]) / STD[0]), y) >= -worst - 1e-4).all())
    # differentiable in the weights
    grads = torch.autograd.grad(F.cross_entropy(worst_case_logits(net, x, y, 0.05, MEAN, STD), y), list(net.parameters()))
    assert all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_the_schedule_ramps_eps_up_and_kappa_down_over_the_warm_up() -> None:
    total, warmup = 100, 0.2
    eps, kappa = zip(*(ibp_schedule(t, total, warmup, 0.1) for t in range(total)), strict=True)
    assert eps[0] == pytest.approx(0.1 / 20) and kappa[0] == pytest.approx(1 - 0.5 / 20)
    assert eps[19] == pytest.approx(0.1) and kappa[19] == pytest.approx(0.5)
    assert all(a <= b for a, b in zip(eps, eps[1:])) and all(a >= b for a, b in zip(kappa, kappa[1:]))
    assert all(e == pytest.approx(0.1) for e in eps[19:]) and set(kappa[19:]) == {0.5}
    assert ibp_schedule(0, 10, 0.0, 0.3) == (0.3, 0.5)  # no warm-up: the target from the start


@pytest.mark.slow  # ~30 s; the verification suite's end-to-end test checks the same claim on MNIST
def test_ibp_training_certifies_far_more_than_standard_training(digits) -> None:
    standard = Classifier(**BASE).fit(digits["x"], digits["y"])
    certified = Classifier(**BASE, **IBP).fit(digits["x"], digits["y"])
    x, y = digits["xt"], digits["yt"]
    assert float((certified.logits(x).argmax(1) == y).float().mean()) > 0.8
    for method, gain in (("interval", 0.5), ("deeppoly", 0.25)):
        s, c = (certify(clf, x, 0.03, method, label=y).share for clf in (standard, certified))
        assert c > s + gain, (method, s, c)
    # interval certificates at the training radius
    assert certify(certified, x, 0.05, "interval", label=y).share > 0.5


def test_ibp_is_a_kind_of_adversarial_training_kept_out_of_old_cache_keys(digits) -> None:
    x, y = digits["x"][:64], digits["y"][:64]
    assert upstream_key(Classifier, {**BASE, **IBP}, x, y) != upstream_key(Classifier, BASE, x, y)
    with pytest.raises(InputError, match="adversarial"):
        Classifier(adversarial="crown")
    # networks the verifiers do not accept are refused before training
    with pytest.raises(InputError, match="not supported"):
        Classifier(arch="small", widths=[4, 8, 8], epochs=1, progress=False, adversarial="ibp").fit(x, y)
    assert [type(m).__name__ for m in ibp_modules(small_lenet())] == [
        "Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear", "ReLU", "Identity", "Linear"]


# -- neuron coverage ---------------------------------------------------------------------------
def hand_network() -> nn.Sequential:
    """conv 1x1 to two channels (x and -x), ReLU, flatten, linear to 2 (sum of channel 0, sum of
    channel 1 - 1), ReLU."""
    net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2), nn.ReLU())
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
        net[0].bias.zero_()
        net[3].weight.copy_(torch.tensor([[1.0] * 4 + [0.0] * 4, [0.0] * 4 + [1.0] * 4]))
        net[3].bias.copy_(torch.tensor([0.0, -1.0]))
    return net


def test_neuron_coverage_by_hand() -> None:
    net = hand_network()
    a = torch.tensor([[[[0.0, 1.0], [2.0, 0.0]]]])  # channel 0 = a, channel 1 = relu(-a) = 0; fc: (3, -1) -> (3, 0)
    b = torch.tensor([[[[-1.0, 0.0], [0.0, -3.0]]]])  # channel 0 = 0, channel 1 = (1, 0, 0, 3); fc: (0, 3) -> (0, 3)
    # unscaled, t = 0: "the ReLU fired"
    cov = neuron_coverage(net, a, threshold=0.0, scale=False, unit="position")
    assert list(cov.covered) == ["1", "4"] and cov.inputs == 1
    assert cov.counts == {"1": (2, 8), "4": (1, 2)} and cov.overall == pytest.approx(3 / 10)
    assert cov.covered["1"][0].tolist() == [[False, True], [True, False]] and not bool(cov.covered["1"][1].any())
    cov = neuron_coverage(net, a, threshold=0.0, scale=False)  # channels: channel 0's mean 0.75 > 0
    assert cov.counts == {"1": (1, 2), "4": (1, 2)} and cov.per_layer == {"1": 0.5, "4": 0.5}
    both = neuron_coverage(net, torch.cat([a, b]), threshold=0.0, scale=False)
    assert both.counts == {"1": (2, 2), "4": (2, 2)} and both.overall == 1.0
    # scaled per input and layer (DeepXplore): a's first layer (0, 1, 2, 0 | 0, 0, 0, 0) -> /2;
    # channel means 0.375 and 0; b's: (0, 0, 0, 0 | 1, 0, 0, 3) -> /3, means 0 and 1/3
    for t, want in ((0.25, (2, 2)), (0.35, (1, 2)), (0.4, (0, 2))):
        assert neuron_coverage(net, torch.cat([a, b]), threshold=t).counts["1"] == want, t
    pos = neuron_coverage(net, torch.cat([a, b]), threshold=0.6, unit="position")
    assert pos.covered["1"].tolist() == [[[False, False], [True, False]], [[False, False], [False, True]]]
    # the last layer of a: (3, 0) scaled (1, 0); of b: (0, 3) -> (0, 1)
    assert pos.counts["4"] == (2, 2) and neuron_coverage(net, a, threshold=0.6).counts["4"] == (1, 2)
    # a constant layer output (all zero) activates nothing when scaled
    assert not bool(activated(torch.zeros(3, 4)).any()) and bool(activated(torch.zeros(3, 4), -0.1, scale=False).all())
    with pytest.raises(InputError, match="unit"):
        neuron_coverage(net, a, unit="layer")
    with pytest.raises(InputError, match="ReLU"):
        neuron_coverage(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), a)


def test_neuron_coverage_grows_with_the_inputs_on_a_classifier(digits) -> None:
    clf = Classifier(**{**BASE, "epochs": 3}).fit(digits["x"], digits["y"])
    x = digits["xt"]
    for unit, scale in (("channel", True), ("position", True), ("position", False)):
        covs = [neuron_coverage(clf, x[:k], unit=unit, scale=scale) for k in (1, 5, 20, 100)]
        assert list(covs[0].covered) == ["block1.1", "block2.1", "hidden.2"]
        for small, large in zip(covs, covs[1:]):
            assert large.overall >= small.overall
            for name in small.covered:  # what fewer inputs cover, more inputs cover too
                assert bool((large.covered[name] | ~small.covered[name]).all())
        assert covs[-1].overall > covs[0].overall
    assert neuron_coverage(clf, x[:5]).covered["block1.1"].shape == (8,)
    assert neuron_coverage(clf, x[:5], unit="position").covered["block1.1"].shape == (8, 8, 8)
    assert clf.net.training is False
    record = neuron_coverage(clf, x[:5]).to_dict()
    assert record["layers"]["hidden.2"]["neurons"] == 32 and 0 < record["overall"] <= 1


# -- oodscope verify ---------------------------------------------------------------------------
def test_verify_command_on_a_saved_model(tmp_path: Path) -> None:
    train, test = load("digits", "train"), load("digits", "test")
    det = create("msp", **{**BASE, "epochs": 15}).fit(train)
    det.save(tmp_path / "model")
    write_class_folders(test.images, test.labels, 30, tmp_path / "images")
    runner = CliRunner()
    args = ["verify", str(tmp_path / "model"), "--images", str(tmp_path / "images"), "--no-progress"]
    r = runner.invoke(cli, [*args, "--method", "interval", "--eps", "0,0.01", "--eps", "0.05", "--out", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["n"] == 30 and record["verifier"] == "interval" and record["method"] == "msp"
    rows = record["results"]
    assert [row["eps"] for row in rows] == [0.0, 0.01, 0.05]
    assert rows[0]["certified_accuracy"] == record["clean_accuracy"] > 70
    assert all(a["certified_accuracy"] >= b["certified_accuracy"] for a, b in zip(rows, rows[1:]))
    assert all(row["seconds_per_certificate"] > 0 for row in rows)
    assert f"30 images: clean accuracy {record['clean_accuracy']:.2f} %, certified (interval) at eps 0.01:" in r.output
    dp = runner.invoke(cli, [*args, "--eps", "0.01", "--n", "10", "--out", str(tmp_path / "d.json")])
    assert dp.exit_code == 0, dp.output
    d = json.loads((tmp_path / "d.json").read_text())
    assert d["n"] == 10 and d["verifier"] == "deeppoly" and "certified (deeppoly) at eps 0.01" in dp.output
    bad = runner.invoke(cli, [*args, "--eps", "0.1,2"])
    assert bad.exit_code == 2 and "--eps" in bad.output
    ae = create("ae", epochs=1, progress=False).fit(train.images[:50])
    ae.save(tmp_path / "ae")
    refused = runner.invoke(cli, ["verify", str(tmp_path / "ae"), *args[2:]])
    assert refused.exit_code == 2 and "does not read one classifier; verify needs" in refused.output
    create("msp", arch="small", widths=[4, 8, 8], epochs=1, progress=False).fit(train).save(tmp_path / "resnet")
    resnet = runner.invoke(cli, ["verify", str(tmp_path / "resnet"), *args[2:]])
    assert resnet.exit_code == 2 and "SmallResNet layers are not supported" in resnet.output
