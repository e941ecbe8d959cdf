"""The one-class networks of issue 11: ae, vae, alocc, deep-svdd, deep-sad, goad (their contract
is checked by test_contract.py), the networks they are built from, Deep SAD's protocol (known
anomalies from the next class at a ratio gamma_l) and the studies of the source works (figures by
one command): Hirokawa, "Anomaly detections using deep learning (II): 2D-convolutional variational
autoencoder" (n.d.), and an anonymous blog post implementing ALOCC in Chainer on MNIST (n.d.)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from oodscope.cli import cli
from oodscope.bench.options import parse_budgets
from oodscope.data import load
from oodscope.detectors import create, settings_for
from oodscope.detectors.alocc import ALOCCDetector
from oodscope.detectors.deep_sad import SAD_EPS
from oodscope.training.epochs import work_size
from oodscope.detectors.goad import pairwise_sq
from oodscope.detectors.svdd_core import CENTER_EPS
from oodscope.detectors.vae import neg_elbo
from oodscope.errors import InputError
from oodscope.nets.alocc import Discriminator, Reconstructor
from oodscope.nets.conv_ae import ConvAE, ConvVAE, kl_to_standard_normal
from oodscope.nets.svdd import SVDDDecoder, SVDDNet
from oodscope.protocols import DataStore, OneClass
from oodscope.protocols.one_class import outlier_count


def smoke(method: str, **over: Any) -> dict[str, Any]:
    return {**settings_for(method, "smoke"), "progress": False, **over}


@pytest.fixture(scope="module")
def digits() -> dict[str, Any]:
    train, test = load("digits", "train"), load("digits", "test")
    return {"train": train.subset(train.labels == 0), "outliers": train.images[train.labels == 1][:20],
            "test": test}


# -- networks -------------------------------------------------------------------------------

@pytest.mark.parametrize("channels, size", [(1, 28), (3, 32)])
def test_autoencoders_keep_the_image_shape_and_the_latent_size(channels: int, size: int) -> None:
    x = torch.rand(3, channels, size, size)
    rec, z = ConvAE(channels, size, latent=5)(x)
    assert rec.shape == x.shape and z.shape == (3, 5) and 0 <= rec.min() and rec.max() <= 1
    rec, mu, sigma = ConvVAE(channels, size, latent=2)(x)
    assert rec.shape == x.shape and mu.shape == sigma.shape == (3, 2) and (sigma > 0).all()
    assert Reconstructor(channels)(x).shape == x.shape and Discriminator(channels)(x).shape == (3,)


def test_the_autoencoder_follows_hirokawas_maps_on_28x28() -> None:
    """Hirokawa's maps: 28x28 -> 4 maps of 14x14 -> 16 of 7x7 -> 64 of 3x3 -> a 1x1 latent."""
    net = ConvAE(1, 28, latent=8)
    shapes, h = [], torch.zeros(1, 1, 28, 28)
    for layer in net.encoder[0]:
        h = layer(h)
        if isinstance(layer, torch.nn.Conv2d):
            shapes.append(tuple(h.shape[1:]))
    assert shapes == [(4, 14, 14), (16, 7, 7), (64, 3, 3)]
    assert net.encoder[1](h).shape == (1, 8, 1, 1)


def test_kl_to_the_standard_normal() -> None:
    assert torch.allclose(kl_to_standard_normal(torch.zeros(2, 3), torch.ones(2, 3)), torch.zeros(2))
    kl = kl_to_standard_normal(torch.tensor([[1.0]]), torch.tensor([[2.0]]))
    assert torch.allclose(kl, torch.tensor([0.5 * (1 + 4 - 1 - 2 * float(np.log(2)))]))


def test_the_svdd_network_has_no_bias_and_no_affine_batchnorm() -> None:
    net = SVDDNet(1, (28, 28), (8, 4), 32)
    names = [n for n, _ in net.named_parameters()]
    assert not any(n.endswith("bias") for n in names)
    assert all(not m.affine for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert net(torch.rand(2, 1, 28, 28)).shape == (2, 32)
    assert SVDDDecoder(1, net.grid, (8, 4), 32)(torch.rand(2, 32)).shape == (2, 1, 28, 28)
    assert SVDDNet(3, (32, 32), (32, 64, 128), 128)(torch.rand(2, 3, 32, 32)).shape == (2, 128)
    with pytest.raises(ValueError, match="divisible"):
        SVDDNet(1, (30, 30), (8, 4, 2), 32)


def test_deep_svdd_builds_the_papers_network_for_grey_and_rgb_images() -> None:
    grey = create("deep-svdd", **smoke("deep-svdd")).fit(np.random.default_rng(0).random((8, 1, 28, 28), np.float32))
    assert [m.out_channels for m in grey.model.phi.modules() if isinstance(m, torch.nn.Conv2d)] == [8, 4]
    assert grey.model.phi.fc.out_features == 32
    rgb = create("deep-svdd", **smoke("deep-svdd")).fit(np.random.default_rng(0).random((8, 3, 32, 32), np.float32))
    assert [m.out_channels for m in rgb.model.phi.modules() if isinstance(m, torch.nn.Conv2d)] == [32, 64, 128]
    assert rgb.model.phi.fc.out_features == 128 and rgb.score(np.zeros((2, 3, 32, 32), np.float32)).shape == (2,)
    custom = create("deep-svdd", **smoke("deep-svdd", widths=[6], rep_dim=5)).fit(np.zeros((8, 1, 28, 28), np.float32))
    assert custom.model.phi.fc.out_features == 5
    with pytest.raises(InputError, match="widths"):
        create("deep-svdd", widths=[0])
    with pytest.raises(InputError, match="divisible by 4, got 30x30"):
        create("deep-svdd", **smoke("deep-svdd")).fit(np.zeros((8, 1, 30, 30), np.float32))


def test_work_size() -> None:
    assert work_size([28, 28]) == 28 and work_size([32, 32]) == 32
    assert work_size([8, 8]) == 28 and work_size([30, 30]) == 32 and work_size([64, 64]) == 32


# -- detectors ------------------------------------------------------------------------------

def test_deep_svdd_pulls_training_images_to_the_centre(digits: dict[str, Any]) -> None:
    kw = {"pretrain_epochs": 20, "batch_size": 32}  # BatchNorm's running statistics settle in pretraining
    untrained = create("deep-svdd", **smoke("deep-svdd", **kw, epochs=0))
    trained = create("deep-svdd", **smoke("deep-svdd", **kw, epochs=30))
    before = untrained.fit(digits["train"]).score(digits["train"]).mean()
    after = trained.fit(digits["train"]).score(digits["train"]).mean()
    assert after < 0.5 * before
    c = trained.model.c
    assert (c.abs() >= CENTER_EPS - 1e-7).all()  # coordinates near 0 were pushed to +-eps


def test_deep_sad_pushes_the_labelled_anomalies_away(digits: dict[str, Any]) -> None:
    kw = {"pretrain_epochs": 20, "epochs": 30, "batch_size": 32}
    svdd = create("deep-svdd", **smoke("deep-svdd", **kw)).fit(digits["train"])
    sad = create("deep-sad", **smoke("deep-sad", **kw)).fit(digits["train"], digits["outliers"])
    ratio = lambda det: det.score(digits["outliers"]).mean() / det.score(digits["train"]).mean()  # noqa: E731
    assert ratio(sad) > 2 * ratio(svdd)


def test_deep_sad_loss_is_the_inverse_distance_on_anomalies() -> None:
    det = create("deep-sad", eta=2.0)
    dist = torch.tensor([4.0, 0.5])
    loss = det.loss(dist, torch.tensor([0.0, -1.0]))
    assert torch.isclose(loss, torch.tensor((4.0 + 2.0 / (0.5 + SAD_EPS)) / 2))
    with pytest.raises(InputError, match="eta"):
        create("deep-sad", eta=0.0)


def test_vae_scores_reconstruction_or_elbo(digits: dict[str, Any]) -> None:
    recon = create("vae", **smoke("vae", epochs=3)).fit(digits["train"])
    elbo = create("vae", **smoke("vae", epochs=3, score="elbo")).fit(digits["train"])
    s_r, s_e = recon.score(digits["test"]), elbo.score(digits["test"])
    assert not np.allclose(s_r, s_e) and (s_e > 0).all()
    x = recon.prepare(torch.from_numpy(digits["test"].images[:4]).float() / 255)
    mu, sigma = recon.net.encode(x)
    assert (neg_elbo(recon.net, x) >= kl_to_standard_normal(mu, sigma) - 1e-5).all()
    assert recon.encode(torch.rand(5, 1, 8, 8)).shape == (5, 4)
    assert recon.reconstruct(torch.rand(5, 1, 8, 8)).shape == (5, 1, 28, 28)  # 8x8 digits are read at 28x28


def test_alocc_reports_each_epoch_and_its_scores_are_selectable(digits: dict[str, Any]) -> None:
    seen: list[int] = []
    ALOCCDetector.on_epoch = lambda epoch, det: seen.append(epoch)
    try:
        det = create("alocc", **smoke("alocc", epochs=2)).fit(digits["train"])
    finally:
        ALOCCDetector.on_epoch = None
    assert seen == [1, 2]
    scores = {}
    for name in ("d_of_r", "d", "recon"):
        det.config["score"] = name
        scores[name] = det.score(digits["test"])
    assert not np.allclose(scores["d_of_r"], scores["d"]) and (scores["recon"] >= 0).all()


def test_goad_distances_and_centres(digits: dict[str, Any]) -> None:
    f = torch.tensor([[[0.0, 0.0], [1.0, 1.0]]])
    c = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    assert torch.equal(pairwise_sq(f, c), torch.tensor([[[0.0, 4.0], [2.0, 2.0]]]))
    det = create("goad", **smoke("goad")).fit(digits["train"])
    assert det.net.centres.shape == (4, det.config["dim"]) and det.net.centres.abs().sum() > 0


# -- Deep SAD's protocol --------------------------------------------------------------------

def test_budgets_read_fractions_and_named_classes() -> None:
    assert parse_budgets("16,0.01", "--n-oe", fractions=True) == [16, 0.01]
    assert parse_budgets("next,2", "--oe-classes", names=("all", "next")) == ["next", 2]
    for text, kw in (("0.01", {}), ("1.5", {"fractions": True}), ("next", {})):
        with pytest.raises(InputError):
            parse_budgets(text, "--n-oe", **kw)
    assert outlier_count(0.01, 5940) == 60 and outlier_count(16, 5940) == 16 and outlier_count("all", 10) is None


def test_known_anomalies_come_from_the_next_class_at_the_ratio(data_root: Path) -> None:
    store = DataStore(data_root, download=False)
    protocol = OneClass("mnist", classes=(9,), oe_dataset="mnist", n_oe=(0.01,), oe_classes=("next",))
    task = protocol.task(protocol.cell("deep-sad", 9, 0, "smoke", 0.01, "next"), store)
    outliers = task.known_outliers()
    assert outliers is not None and set(outliers.labels.tolist()) == {0}  # (9 + 1) mod 10
    assert len(outliers) == round(0.01 * len(task.train) / 0.99)
    with pytest.raises(InputError, match="--oe mnist"):
        OneClass("mnist", oe_dataset="emnist-letters", oe_classes=("next",))


def test_bench_runs_deep_sad_in_the_papers_protocol(data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "sad"
    args = ["bench", "--methods", "deep-sad", "--classes", "3", "--oe", "mnist", "--oe-classes", "next",
            "--n-oe", "0.01", "--preset", "smoke", "--no-progress", "--data-root", str(data_root), "--out", str(out)]
    done = CliRunner().invoke(cli, args)
    assert done.exit_code == 0, done.output
    row = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    assert row["protocol_fields"] == {"id_class": 3, "n_oe": 0.01, "oe_classes": "next", "oe_dataset": "mnist"}
    assert row["n_outliers"] == round(0.01 * row["n_train"] / 0.99) and row["metrics"]["auroc"] > 50


@pytest.mark.slow  # ~40 s; the default run keeps deep-sad on MNIST end to end and every network in the contract tests
def test_bench_runs_every_one_class_network_on_mnist(data_root: Path, tmp_path: Path) -> None:
    """End to end on real MNIST (class 1, smoke settings): each network fits, scores and is written."""
    methods = ["ae", "vae", "alocc", "deep-svdd", "deep-sad", "goad"]
    done = CliRunner().invoke(cli, ["bench", "--methods", ",".join(methods), "--classes", "1", "--preset", "smoke",
                                    "--no-progress", "--data-root", str(data_root), "--out", str(tmp_path / "b")])
    assert done.exit_code == 0, done.output
    rows = [json.loads(line) for line in (tmp_path / "b" / "results.jsonl").read_text().splitlines()]
    assert sorted(r["method"] for r in rows) == sorted(methods)
    for r in rows:
        assert r["metrics"]["auroc"] > 60, (r["method"], r["metrics"])


# -- the source works' studies --------------------------------------------------------------

def _png(path: Path) -> bool:
    return path.read_bytes().startswith(b"\x89PNG")


def test_alocc_study_writes_the_curves_and_the_report_shows_them(data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "alocc"
    done = CliRunner().invoke(cli, ["study", "alocc-epochs", "--out", str(out), "--epochs", "2", "--n-train", "300",
                                    "--seeds", "0,1", "--no-progress", "--data-root", str(data_root)])
    assert done.exit_code == 0, done.output
    assert _png(out / "alocc_epochs.png") and _png(out / "alocc_reconstructions.png")
    rows = list(csv.DictReader((out / "alocc-epochs.csv").open()))
    assert [(r["seed"], r["epoch"]) for r in rows] == [("0", "1"), ("0", "2"), ("1", "1"), ("1", "2")]
    assert all(0 <= float(r["d_of_r_accuracy"]) <= 1 and 0 <= float(r["d_f1"]) <= 1 for r in rows)
    note = (out / "alocc-epochs.md").read_text()
    assert "Command:" in note and "epoch 2, seed 1" in note
    done = CliRunner().invoke(cli, ["report", str(out)])
    assert done.exit_code == 0, done.output
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and "alocc-epochs.md" in html


@pytest.mark.parametrize("name, files", [
    ("ae-latent", ["ae_latent_2d.png", "ae_latent_3d.png"]),
    ("ae-errors", ["ae_errors.png"]),
    ("ae-reconstructions", ["ae_reconstructions.png"]),
])
def test_hirokawa_studies_write_their_figures(name: str, files: list[str], data_root: Path, tmp_path: Path) -> None:
    done = CliRunner().invoke(cli, ["study", name, "--out", str(tmp_path), "--epochs", "1", "--n-train", "500",
                                    "--no-progress", "--data-root", str(data_root)])
    assert done.exit_code == 0, done.output
    assert all(_png(tmp_path / f) for f in files)
    table = list(csv.reader((tmp_path / f"{name}.csv").open()))
    assert len(table) >= 3 and all(len(r) == len(table[0]) for r in table)


def test_a_bad_study_option_is_one_line() -> None:
    done = CliRunner().invoke(cli, ["study", "ae-latent", "--out", "x", "--epochs", "0"])
    assert done.exit_code == 2 and "--epochs must be positive" in done.output
