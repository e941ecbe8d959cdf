"""Adversarial examples (FGSM, PGD, the notes' targeted L1 attack), robust accuracy, transfer,
adversarial training, ``oodscope attack`` and the robustness suite."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from helpers import digits_tensors, write_class_folders

from oodscope.adversarial import adversarial_batch, ascend, fgsm, pgd, targeted_l1
from oodscope.adversarial.robust import make_attack, robust_accuracy, transfer_success
from oodscope.cli import cli
from oodscope.data import load
from oodscope.detectors import create
from oodscope.upstream.classifier import LATE_SETTINGS, Classifier
from oodscope.settings import settings_key
from oodscope.upstream.base import _digest, upstream_key

SMALL = {"widths": [8, 16], "hidden": 64, "epochs": 15, "batch_size": 64, "progress": False}


def linear_model(seed: int = 0, d: int = 16, k: int = 3) -> tuple[torch.nn.Linear, callable]:
    torch.manual_seed(seed)
    lin = torch.nn.Linear(d, k).double()
    return lin, lambda x: lin(x.flatten(1))


@pytest.fixture(scope="module")
def digits() -> dict[str, torch.Tensor]:
    return digits_tensors(200)


@pytest.fixture(scope="module")
def standard(digits) -> Classifier:
    return Classifier(**SMALL).fit(digits["x"], digits["y"])


def test_fgsm_is_the_sign_of_the_analytic_gradient() -> None:
    lin, model = linear_model()
    x = torch.rand(5, 1, 4, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1])
    p = torch.softmax(model(x), dim=1).detach()
    grad = (p - F.one_hot(y, 3).double()) @ lin.weight.detach()  # d CE / d x of a linear model
    want = (x + 0.1 * grad.sign().view_as(x)).clamp(0, 1)
    torch.testing.assert_close(fgsm(model, x, y, 0.1), want)
    assert torch.equal(fgsm(model, x, y, 0.0), x)


def test_pgd_stays_in_the_ball_and_the_pixel_range_and_beats_fgsm(standard, digits) -> None:
    model = standard.differentiable(amp=False)
    x, y = digits["xt"], digits["yt"]
    g = torch.Generator().manual_seed(0)
    xa = pgd(model, x, y, 0.1, 0.025, 10, generator=g)
    assert (xa - x).abs().max() <= 0.1 + 1e-6 and xa.min() >= 0 and xa.max() <= 1
    loss = lambda z: F.cross_entropy(model(z), y).item()  # noqa: E731
    assert loss(xa) > loss(fgsm(model, x, y, 0.1)) > loss(x)
    # one step of size eps from x itself is FGSM
    torch.testing.assert_close(pgd(model, x, y, 0.1, 0.1, 1, random_start=False), fgsm(model, x, y, 0.1))
    # restarts keep, per image, an example that fools the model once one does
    xr = pgd(model, x, y, 0.1, 0.025, 10, restarts=3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fooled_once, fooled_restarts = (model(xa).argmax(1) != y).sum(), (model(xr).argmax(1) != y).sum()
    assert fooled_restarts >= fooled_once


def test_ascend_raises_any_objective_within_the_ball() -> None:
    x = torch.full((4, 1, 3, 3), 0.5)
    out = ascend(lambda z: -(z - 0.9).pow(2).flatten(1).sum(1), x, 0.2, 0.05, 10, random_start=False)
    torch.testing.assert_close(out, torch.full_like(x, 0.7))  # pulled to 0.9 but stopped by the ball


def test_the_targeted_l1_attack_reaches_its_target_with_a_sparse_perturbation(standard, digits) -> None:
    model = standard.differentiable(amp=False)
    x, y = digits["xt"][:20], digits["yt"][:20]
    target = (y + 1) % 10
    xa, ok = targeted_l1(model, x, target, steps=60)
    with torch.no_grad():
        pred = model(xa).argmax(1)
    assert ok.float().mean() > 0.8 and torch.equal(pred[ok], target[ok])
    assert xa.min() >= 0 and xa.max() <= 1
    changed_l1 = (xa - x)[ok].abs().flatten(1)
    # the L1 penalty leaves most pixels untouched, unlike a targeted L-infinity step that moves all of them
    assert (changed_l1 > 1e-6).float().mean() < 0.5
    lam_small, _ = targeted_l1(model, x, target, lam_range=(1e-3, 1e-3), searches=0, steps=60)
    assert (xa - x)[ok].abs().sum() < (lam_small - x)[ok].abs().sum()  # the search found larger lambdas


def test_robust_accuracy_and_transfer(standard, digits) -> None:
    model = standard.differentiable(amp=False)
    x, y = digits["xt"], digits["yt"]
    clean = robust_accuracy(model, x, y, make_attack("fgsm", 0.0))
    f = robust_accuracy(model, x, y, make_attack("fgsm", 0.1))
    p = robust_accuracy(model, x, y, make_attack("pgd", 0.1, steps=20))
    assert clean["accuracy"] == clean["clean_accuracy"] > 80
    assert p["accuracy"] <= f["accuracy"] < clean["accuracy"]
    other = Classifier(**{**SMALL, "seed": 1}).fit(digits["x"], digits["y"]).differentiable(amp=False)
    r = transfer_success(model, other, x, y, make_attack("pgd", 0.2, steps=20))
    assert r["source_success"] > 90 and 0 < r["transfer_success"] <= 100
    self_transfer = transfer_success(model, model, x, y, make_attack("pgd", 0.2, steps=20))
    assert self_transfer["transfer_success"] == self_transfer["source_success"]


def test_adversarial_training_makes_the_classifier_more_robust(standard, digits) -> None:
    robust = Classifier(**SMALL, adversarial="pgd", adv_eps=0.1, adv_steps=5).fit(digits["x"], digits["y"])
    fast = Classifier(**SMALL, adversarial="fgsm-rs", adv_eps=0.1).fit(digits["x"], digits["y"])
    attack = make_attack("pgd", 0.1, steps=20)
    x, y = digits["xt"], digits["yt"]
    plain = robust_accuracy(standard.differentiable(amp=False), x, y, attack)["accuracy"]
    assert robust_accuracy(robust.differentiable(amp=False), x, y, attack)["accuracy"] > plain + 10
    assert robust_accuracy(fast.differentiable(amp=False), x, y, attack)["accuracy"] > plain
    assert robust.adv_alpha(0.1) == pytest.approx(0.05) and fast.adv_alpha(0.1) == pytest.approx(0.125)
    net = robust.net
    net.train()
    adversarial_batch(robust.differentiable(amp=False), net, x[:8], y[:8], "pgd", 0.1, 0.05, 2, torch.Generator())
    assert net.training, "the network goes back to training mode"
    net.eval()


@pytest.mark.parametrize("amp", [True, False])
def test_adversarial_training_attacks_in_the_training_precision(digits, amp: bool, monkeypatch) -> None:
    """The attacks of adversarial training run in the training precision (bfloat16 autocast under
    ``amp``), whatever precision the model scores in: they are part of training."""
    import oodscope.upstream.classifier as classifier_module

    seen: list[bool] = []

    def spy(model, net, x, labels, *args):
        hook = net.register_forward_pre_hook(lambda *_: seen.append(torch.is_autocast_enabled("cpu")))
        try:
            model(x)
        finally:
            hook.remove()
        return x

    monkeypatch.setattr(classifier_module, "adversarial_batch", spy)
    Classifier(**{**SMALL, "epochs": 1}, adversarial="pgd", adv_eps=0.1, amp=amp, precision="float32").fit(
        digits["x"][:128], digits["y"][:128])
    assert seen and set(seen) == {amp}


def test_a_standard_classifier_keeps_its_cache_key_from_before_adversarial_settings(digits) -> None:
    x, y = digits["x"][:64], digits["y"][:64]
    old = {k: v for k, v in Classifier(**SMALL).settings.items() if k not in (*LATE_SETTINGS, "precision")}
    text = f"classifier|{Classifier.version}|{settings_key(old)}|{_digest(x, y, None, None)}"
    assert upstream_key(Classifier, SMALL, x, y) == hashlib.sha256(text.encode()).hexdigest()
    assert upstream_key(Classifier, {**SMALL, "adversarial": "pgd"}, x, y) != upstream_key(Classifier, SMALL, x, y)
    # the scoring precision is not part of what the network learnt: the same cached network
    assert upstream_key(Classifier, {**SMALL, "precision": "bfloat16"}, x, y) == upstream_key(Classifier, SMALL, x, y)


def test_attack_command_on_a_saved_model(tmp_path: Path) -> None:
    train, test = load("digits", "train"), load("digits", "test")
    det = create("msp", **SMALL).fit(train)
    det.save(tmp_path / "model")
    write_class_folders(test.images, test.labels, 40, tmp_path / "images")
    runner = CliRunner()
    args = ["attack", str(tmp_path / "model"), "--images", str(tmp_path / "images"), "--no-progress"]
    r = runner.invoke(cli, [*args, "--attack", "pgd", "--eps", "0.2", "--steps", "10", "--out", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["n"] == 40 and record["accuracy"] < record["clean_accuracy"]
    assert "under PGD-10 at eps 0.2" in r.output
    clean = runner.invoke(cli, [*args, "--eps", "0"])
    assert f"{record['clean_accuracy']:.2f} %, under PGD-40 at eps 0: {record['clean_accuracy']:.2f} %" in clean.output
    bad = runner.invoke(cli, ["attack", str(tmp_path / "model"), "--images", str(tmp_path / "images"), "--eps", "2"])
    assert bad.exit_code != 0 and "eps" in bad.output.lower()
    ae = create("ae", epochs=1, progress=False).fit(train.images[:50])
    ae.save(tmp_path / "ae")
    refused = runner.invoke(cli, ["attack", str(tmp_path / "ae"), *args[2:]])
    assert refused.exit_code == 2 and "does not read one classifier" in refused.output


def test_robustness_suite_end_to_end_and_resume(tmp_path: Path, data_root: Path) -> None:
    args = ["bench", "--suite", "robustness", "--protocol", "split-mnist", "--preset", "smoke", "--seeds", "0",
            "--data-root", str(data_root), "--no-download", "--no-progress", "--threads", "1", "--no-disk-cache",
            "--out", str(tmp_path)]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    by = {(row["method"], json.dumps(row["variant"], sort_keys=True)): row for row in rows}
    std_clean = by[("standard", json.dumps({"attack": "none", "eps": 0.0, "restarts": 1, "steps": 0}, sort_keys=True))]
    std_pgd = by[("standard", json.dumps({"attack": "pgd", "eps": 0.3, "restarts": 1, "steps": 5}, sort_keys=True))]
    assert std_clean["metrics"]["accuracy"] > 50 and std_pgd["metrics"]["accuracy"] < std_clean["metrics"]["accuracy"]
    assert std_pgd["schema"] and std_pgd["upstream"]["kind"] == "classifier" and std_pgd["settings"]["adversarial"] == "none"
    adv = [row for row in rows if row["method"] == "adversarial"]
    assert adv and all(row["settings"]["adversarial"] == "pgd" for row in adv)
    transfer = [row for row in rows if row["method"] == "transfer"]
    assert {(t["variant"]["source"], t["variant"]["target"]) for t in transfer} == {("standard", "standard-b"),
                                                                                 ("standard-b", "standard")}
    attacked = [row for row in rows if row["method"] == "msp" and row["variant"]["eps"] > 0]
    clean = [row for row in rows if row["method"] == "msp" and row["variant"]["eps"] == 0]
    assert attacked and attacked[0]["metrics"]["auroc"] < clean[0]["metrics"]["auroc"]
    targeted = [row for row in rows if row["variant"].get("attack") == "targeted-l1"]
    assert {t["method"] for t in targeted} == {"standard", "adversarial", "fgsm-rs"}
    assert all(0 <= t["metrics"]["success"] <= 100 for t in targeted)
    table = (tmp_path / "table.md").read_text()
    assert "targeted attack" in table and "Transfer success" in table and "| standard | PGD-5 |" in table and "msp (standard classifier)" in table
    report = CliRunner().invoke(cli, ["report", str(tmp_path), "--out", str(tmp_path / "r.html")])
    assert report.exit_code == 0, report.output
    html = (tmp_path / "r.html").read_text()
    assert "Transfer success" in html and "Accuracy (%) on the in-distribution test images under attack" in html
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == len(rows), "a rerun adds no row"
