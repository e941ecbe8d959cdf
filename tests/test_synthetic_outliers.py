"""Benchmarks beyond MNIST: the generated outlier sources (oodscope.data.synthetic: digits-28 and
the synthetic noise, blobs and strokes, loadable by name with no files, deterministic, MNIST-shaped,
usable as --oe), and one-class EMNIST letters with MNIST digits as its default outliers."""

from __future__ import annotations

import numpy as np
import pytest

from oodscope.data import load
from oodscope.data.synthetic import KINDS, PER_CLASS
from oodscope.errors import DataError
from oodscope.protocols import DataStore
from oodscope.protocols.one_class import OneClass

SOURCES = ["digits-28", *[f"synthetic-{k}" for k in KINDS]]


@pytest.mark.parametrize("name", SOURCES)
def test_each_source_is_mnist_shaped_deterministic_and_its_splits_differ(name: str) -> None:
    train, again, test = load(name, "train"), load(name, "train"), load(name, "test")
    assert train.images.shape[1:] == (1, 28, 28) and train.images.dtype == np.uint8
    assert np.array_equal(train.images, again.images) and np.array_equal(train.labels, again.labels)
    assert len(test.images) > 0 and not np.array_equal(train.images[: len(test.images)], test.images)
    assert set(np.unique(train.labels)) == set(range(len(train.classes)))
    assert train.images.max() == 255  # white on black, like MNIST
    if name != "digits-28":
        assert np.bincount(train.labels).tolist() == [PER_CLASS] * len(train.classes)


def test_the_classes_are_what_their_names_say() -> None:
    blobs = load("synthetic-blobs", "train")
    # more blobs light more pixels
    lit = [float((blobs.images[blobs.labels == c] > 64).mean()) for c in range(3)]
    assert lit[0] < lit[1] < lit[2]
    noise = load("synthetic-noise", "train")
    sparse = noise.images[noise.labels == noise.classes.index("sparse")]
    assert set(np.unique(sparse)) == {0, 255} and 0.03 < float((sparse == 255).mean()) < 0.07
    strokes = load("synthetic-strokes", "train")
    assert float((strokes.images > 0).mean()) < 0.3  # thin pen lines on black


def test_digits28_are_the_bundled_digits_centred_in_the_mnist_frame() -> None:
    big, small = load("digits-28", "test"), load("digits", "test")
    assert np.array_equal(big.labels, small.labels)
    assert big.images[:, :, :4].max() == 0 and big.images[:, :, -4:].max() == 0  # the 4-pixel border
    # the upscaled image keeps the small one's layout: 4x4 block means of both agree
    down = big.images[:, 0, 4:24, 4:24].astype(float).reshape(-1, 4, 5, 4, 5).mean(axis=(2, 4))
    ref = small.images[:, 0].astype(float).reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4))
    assert np.corrcoef(down.ravel(), ref.ravel())[0, 1] > 0.9


def test_unknown_split_and_kind_are_refused() -> None:
    from oodscope.data.synthetic import read_synthetic

    with pytest.raises(DataError, match="unknown split"):
        read_synthetic("blobs", "validation")
    with pytest.raises(DataError, match="unknown kind"):
        read_synthetic("clouds", "train")


def test_a_generated_source_gives_the_one_class_protocol_its_outliers(data_root) -> None:
    protocol = OneClass(dataset="mnist", oe_dataset="synthetic-strokes")
    task = protocol.task(protocol.cell("geom", 3, 0, "cpu", 16, "all"), DataStore(data_root, False))
    outliers = task.known_outliers()
    assert outliers is not None and outliers.images.shape == (16, 1, 28, 28)


def test_one_class_emnist_letters_takes_mnist_digits_as_its_outliers() -> None:
    from oodscope.bench.paper.suites import make_spec

    spec = make_spec("table3", "emnist-letters", "smoke", 26, classes=[16], methods=["geom", "layers"],
                     unsupervised=["geom"])
    assert spec.oe_dataset == "mnist" and spec.protocol().oe_dataset == "mnist" and spec.classes == [16]


@pytest.mark.slow  # the suite end to end runs in the default run on digits (test_suites, test_compat_kinds)
def test_one_class_emnist_letters_is_a_table3_benchmark_with_mnist_outliers(tmp_path, data_root) -> None:
    import json

    from click.testing import CliRunner

    from oodscope.cli import cli

    args = ["bench", "--suite", "table3", "--dataset", "emnist-letters", "--preset", "smoke", "--classes", "16",
            "--methods", "geom,layers", "--data-root", str(data_root), "--no-download", "--no-progress", "--threads", "1",
            "--no-disk-cache", "--out", str(tmp_path)]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert {row["protocol_fields"]["oe_dataset"] for row in rows} == {"mnist"}  # the default outliers: digits
    assert {row["protocol_fields"]["id_class"] for row in rows} == {16}
    assert all(50 < row["metrics"]["auroc"] <= 100 for row in rows)
    table = (tmp_path / "table.md").read_text()
    assert "| q |" in table  # letters by name


def test_generate_makes_generic_outliers_from_a_seed() -> None:
    from oodscope.data.synthetic import generate

    a, again, other = generate("strokes", 7, 0), generate("strokes", 7, 0), generate("strokes", 7, 1)
    assert a.shape == (7, 1, 28, 28) and a.dtype == np.uint8 and a.max() == 255
    assert np.array_equal(a, again) and not np.array_equal(a, other)
    assert not np.array_equal(generate("blobs", 3, 0), load("synthetic-blobs", "train").images[:3])  # its own stream
    assert generate("blobs", 0, 0).shape == (0, 1, 28, 28)
    with pytest.raises(DataError, match="unknown kind"):
        generate("clouds", 3, 0)


def test_layers_g_generic_adds_generated_outliers_in_the_images_shape() -> None:
    import torch

    from oodscope.detectors import LayersDetector

    known = torch.rand(4, 3, 32, 32)
    det = LayersDetector(g_generic=5, seed=0)
    out = det._outliers(known)
    assert out.shape == (14, 3, 32, 32) and torch.equal(out[:4], known)  # 5 strokes and 5 blobs after the known ones
    assert out.dtype == known.dtype and 0 <= float(out.min()) and float(out.max()) <= 1
    assert torch.equal(out[4:, 0], out[4:, 2])  # grey strokes and blobs, repeated on the three channels
    assert torch.equal(LayersDetector(g_generic=0)._outliers(known), known)
    with pytest.raises(Exception, match="g_generic"):
        LayersDetector(g_generic=-1)
