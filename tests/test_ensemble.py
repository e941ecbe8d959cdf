"""The deep ensemble: members differing only in seed, each cached on its own, and its uncertainty
scores computed from the members' distributions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oodscope.calibration import uncertainty_scores
from oodscope.data import load
from oodscope.detectors import UpstreamCache, create, load as load_model
from oodscope.upstream.classifier import Classifier
from oodscope.upstream.ensemble_net import Ensemble
from oodscope.inputs import as_images
from oodscope.errors import InputError, ModelFileError

SMALL = {"widths": [8, 16], "hidden": 32, "epochs": 3, "batch_size": 64, "progress": False}


@pytest.fixture(scope="module")
def digits():
    train, test = load("digits", "train"), load("digits", "test")
    keep = np.isin(train.labels, [0, 1, 2])
    return train.subset(keep), test


def test_members_differ_only_in_seed_and_member_zero_is_the_plain_classifier() -> None:
    members = Ensemble.member_settings({**SMALL, "seed": 2, "members": 3})
    assert [m["seed"] for m in members] == [2, 102, 202]
    for m in members:
        assert {k: v for k, v in m.items() if k != "seed"} == {k: v for k, v in members[0].items() if k != "seed"}
    assert Classifier(**members[0]).settings == Classifier(**{**SMALL, "seed": 2}).settings
    with pytest.raises(InputError, match="members"):
        Ensemble(members=1)


def test_scores_come_from_the_members_and_survive_save_and_load(digits, tmp_path) -> None:
    train, test = digits
    det = create("ensemble", **SMALL, members=3).fit(train)
    x = test.images[:50]
    out = det.outputs(x)
    members = [Classifier(**s).fit(as_images(train, "train"), torch.as_tensor(train.labels))
               for s in Ensemble.member_settings({**SMALL, "members": 3})]
    probs = torch.stack([torch.softmax(m.logits(as_images(x, "x")).double(), dim=1) for m in members])
    want = uncertainty_scores(probs)
    for k in ("mi", "entropy", "max-prob", "variation-ratio"):
        np.testing.assert_allclose(out[k], want[k].numpy(), rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(out["score"], out["mi"])
    assert (out["mi"] > 0).any(), "members trained from different seeds disagree somewhere"
    np.testing.assert_allclose(np.exp(out["logits"]), probs.mean(dim=0).numpy(), rtol=1e-5)
    det.save(tmp_path / "m")
    np.testing.assert_array_equal(load_model(tmp_path / "m").score(x), out["score"])


def test_the_cache_trains_each_member_once_and_shares_member_zero(digits, tmp_path) -> None:
    train, _ = digits
    x, y = as_images(train, "train"), torch.as_tensor(train.labels)
    cache = UpstreamCache(tmp_path)
    clf, _ = cache.get(Classifier, {**SMALL, "seed": 0}, x, y)
    assert cache.trained == 1
    ens, info = cache.get(Ensemble, {**SMALL, "members": 3}, x, y)
    assert cache.trained == 3, "member 0 is the classifier already cached"
    assert not info.reused and info.facts["members"] == 3
    assert ens.members[0] is clf
    again = UpstreamCache(tmp_path)  # a new process: every member from disk
    ens2, info2 = again.get(Ensemble, {**SMALL, "members": 3}, x, y)
    assert again.trained == 0 and info2.reused
    for a, b in zip(ens.members, ens2.members):
        torch.testing.assert_close(a.logits(x[:20]), b.logits(x[:20]))


def test_networks_handed_to_another_process_as_payloads(digits) -> None:
    """What the Ray executor hands from the task that trained an upstream to the cells: plain data
    (safetensors bytes, no pickle); the receiving cache assembles the ensemble without training."""
    train, _ = digits
    x, y = as_images(train, "train"), torch.as_tensor(train.labels)
    cache = UpstreamCache(None, keep=64)
    ens, _ = cache.get(Ensemble, {**SMALL, "members": 2}, x, y)
    payloads = cache.payloads()
    assert len(payloads) == 2 and all(isinstance(p["weights"], bytes) for p in payloads)
    other = UpstreamCache(None, keep=64)
    for p in payloads:
        other.adopt([Ensemble, Classifier], p)
    got, info = other.get(Ensemble, {**SMALL, "members": 2}, x, y)
    assert other.trained == 0 and info.reused
    torch.testing.assert_close(got.members[1].logits(x[:20]), ens.members[1].logits(x[:20]))
    with pytest.raises(ModelFileError, match="kind 'classifier'"):
        UpstreamCache(None).adopt([Ensemble], payloads[0])
    with pytest.raises(ModelFileError, match="unreadable weights"):
        UpstreamCache(None).adopt([Classifier], {**payloads[0], "weights": payloads[1]["weights"][:-8]})


def test_the_ensemble_score_is_differentiable_in_the_input(digits) -> None:
    train, test = digits
    det = create("ensemble", **SMALL, members=2, score="entropy").fit(train)
    x = as_images(test.images[:6], "x").requires_grad_(True)
    s = det.differentiable_score(x)
    np.testing.assert_allclose(s.detach().numpy(), det.score(test.images[:6]), rtol=1e-3, atol=1e-4)
    (grad,) = torch.autograd.grad(s.sum(), x)
    assert grad.abs().sum() > 0
    with pytest.raises(InputError, match="variation ratio"):
        create("ensemble", **SMALL, members=2, score="variation-ratio").fit(train).differentiable_score(x)


def test_calibration_suite_end_to_end(tmp_path, data_root) -> None:
    import json

    from click.testing import CliRunner

    from oodscope.cli import cli

    r = CliRunner().invoke(cli, ["bench", "--suite", "calibration", "--protocol", "split-mnist", "--methods",
                                 "msp,temperature,ensemble", "--set", "members=2", "--seeds", "0", "--preset", "smoke",
                                 "--data-root", str(data_root), "--no-download", "--no-progress", "--threads", "1",
                                 "--no-disk-cache", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    rows = {(row["method"], (row["variant"] or {}).get("score")): row
            for row in map(json.loads, (tmp_path / "results.jsonl").read_text().splitlines())}
    assert set(rows) == {("msp", None), ("temperature", None), *[("ensemble", s) for s in
                                                                  ("max-prob", "entropy", "variation-ratio", "mi")]}
    before, after = rows[("msp", None)]["metrics"], rows[("temperature", None)]["metrics"]
    assert before["accuracy"] == after["accuracy"], "temperature scaling keeps the arg-max"
    assert after["temperature"] > 0 and after["nll"] <= before["nll"] + 0.01
    for m in rows.values():
        assert 0 <= m["metrics"]["ece"] <= 100 and 0 <= m["metrics"]["ece_mean"] <= 100
    assert (tmp_path / "reliability_seed0.png").stat().st_size > 10_000
    assert "| temperature |" in (tmp_path / "table.md").read_text()
