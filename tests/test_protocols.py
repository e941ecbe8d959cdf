"""Tests of oodscope.protocols: the one-class split, outlier sampling and normalisation stats."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oodscope.data import ImageSet, convert, load
from oodscope.errors import DataError, InputError
from oodscope.protocols import (
    DataStore,
    MethodInfo,
    OneClass,
    make_protocol,
    normalization_stats,
    one_class,
    sample_outliers,
    split_one_class,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits() -> tuple[ImageSet, ImageSet]:
    return load("digits", "train"), load("digits", "test")


def _aux(n_per_class: int = 10, classes: int = 5, channels: int = 3, size: int = 12) -> ImageSet:
    """A synthetic auxiliary set whose images encode their index (pixel [0,0,0] = index)."""
    n = n_per_class * classes
    rng = np.random.default_rng(123)
    images = rng.integers(0, 256, (n, channels, size, size), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(n) % 256
    labels = np.repeat(np.arange(classes), n_per_class)
    return ImageSet(images, labels, [f"c{i}" for i in range(classes)], "aux")


def test_one_class_counts_and_labels(digits: tuple[ImageSet, ImageSet]) -> None:
    train_all, test_all = digits
    split = one_class("digits", 3)
    assert split.id_class == 3 and split.dataset == "digits"
    assert len(split.train) == int(np.sum(train_all.labels == 3)) > 100
    assert np.all(split.train.labels == 3)
    assert len(split.test) == len(test_all) == 599
    np.testing.assert_array_equal(split.is_ood, test_all.labels != 3)
    assert split.is_ood.dtype == bool
    assert int((~split.is_ood).sum()) == int(np.sum(test_all.labels == 3))
    again = split_one_class(train_all, test_all, 3, "digits")
    np.testing.assert_array_equal(again.train.images, split.train.images)


@pytest.mark.parametrize("bad", [10, -1, "3", 2.0, True])
def test_one_class_rejects_bad_class(bad: object) -> None:
    with pytest.raises(DataError, match=r"0\.\.9"):
        one_class("digits", bad)  # type: ignore[arg-type]


def test_outliers_deterministic_by_seed() -> None:
    aux = _aux()
    a = sample_outliers(aux, 7, seed=5)
    b = sample_outliers(aux, 7, seed=5)
    c = sample_outliers(aux, 7, seed=6)
    assert len(a) == 7
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.images[:, 0, 0, 0], c.images[:, 0, 0, 0])
    ids = a.images[:, 0, 0, 0]
    assert len(set(ids.tolist())) == 7  # drawn without replacement


def test_outliers_all_and_too_many() -> None:
    aux = _aux()
    everything = sample_outliers(aux, None, seed=0)
    np.testing.assert_array_equal(everything.images, aux.images)
    with pytest.raises(DataError, match="only 50"):
        sample_outliers(aux, 51, seed=0)
    with pytest.raises(DataError, match="at least 1"):
        sample_outliers(aux, 0, seed=0)


def test_outliers_k_classes_and_exclusion() -> None:
    aux = _aux()
    for seed in range(5):
        s = sample_outliers(aux, 15, seed=seed, k_classes=2)
        assert len(np.unique(s.labels)) == 2
        again = sample_outliers(aux, 15, seed=seed, k_classes=2)
        np.testing.assert_array_equal(np.unique(s.labels), np.unique(again.labels))
    chosen = {tuple(np.unique(sample_outliers(aux, 4, seed=s, k_classes=2).labels)) for s in range(10)}
    assert len(chosen) > 1  # the classes really are chosen at random
    with pytest.raises(DataError, match="only 20"):
        sample_outliers(aux, 21, seed=0, k_classes=2)
    ex = sample_outliers(aux, None, seed=0, exclude_classes=[0, 4])
    assert set(ex.labels.tolist()) == {1, 2, 3}
    with pytest.raises(DataError, match="3 eligible classes"):
        sample_outliers(aux, 5, seed=0, k_classes=4, exclude_classes=[0, 4])


def test_outliers_converted_like_id(digits: tuple[ImageSet, ImageSet]) -> None:
    aux = _aux(channels=3, size=12)
    like = digits[0]
    s = sample_outliers(aux, 6, seed=1, like=like)
    assert s.images.shape == (6, 1, 8, 8) and s.images.dtype == np.uint8
    raw = sample_outliers(aux, 6, seed=1)
    np.testing.assert_array_equal(s.images, convert(raw.images, (8, 8), 1))
    np.testing.assert_array_equal(s.labels, raw.labels)


def test_normalization_stats_from_train_only(digits: tuple[ImageSet, ImageSet]) -> None:
    split = one_class("digits", 0)
    mean, std = normalization_stats(split.train)
    x = split.train.images.astype(np.float64) / 255
    assert mean.shape == std.shape == (1,)
    assert mean[0] == pytest.approx(x.mean())
    assert std[0] == pytest.approx(x.std(ddof=1))
    whole = ImageSet(np.concatenate([split.train.images, split.test.images]),
                     np.concatenate([split.train.labels, split.test.labels]))
    assert abs(normalization_stats(whole)[0][0] - mean[0]) > 1e-3  # test images would change it


def test_normalization_stats_match_detector() -> None:
    from oodscope.detectors import create

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 3, 8, 8), dtype=np.uint8)
    train = ImageSet(images, np.zeros(6, dtype=np.int64))
    det = create("geom", widths=[4, 4, 4], epochs=1, transforms="rot4", progress=False).fit(train)
    mean, std = normalization_stats(train)
    np.testing.assert_allclose(det.fitted["mean"], mean, rtol=1e-5)
    np.testing.assert_allclose(det.fitted["std"], std, rtol=1e-4)


# -- protocol objects ------------------------------------------------------------------------------
METHODS = [MethodInfo("msp", False, frozenset({"temperature"}), needs_labels=True),
           MethodInfo("layers", True, frozenset({"taps"}))]


@pytest.fixture(scope="module")
def store(data_root) -> DataStore:
    return DataStore(data_root, download=False)


def test_split_mnist_task(store: DataStore) -> None:
    """ID: digits 0-5 with a fixed validation split; test: every MNIST test digit, 6-9 OOD."""
    protocol = make_protocol("split-mnist")
    cells = protocol.cells(METHODS, [0, 1], "smoke", store)
    assert [(c.method, c.seed, c["n_oe"], c["oe_dataset"]) for c in cells] == [
        ("msp", 0, 0, None), ("layers", 0, 16, "emnist-letters"), ("msp", 1, 0, None), ("layers", 1, 16, "emnist-letters")]
    task = protocol.task(cells[1], store)
    mnist_train, mnist_test = store.get("mnist", "train"), store.get("mnist", "test")
    n_id = int(np.isin(mnist_train.labels, range(6)).sum())
    assert len(task.train) + len(task.validation) == n_id and len(task.validation) == round(0.1 * n_id)
    assert set(np.unique(task.train.labels)) == set(range(6)) and task.train.classes == [str(d) for d in range(6)]
    assert len(task.test) == len(mnist_test) and task.is_ood.sum() == np.isin(mnist_test.labels, range(6, 10)).sum()
    assert np.array_equal(task.test_class == -1, task.is_ood)
    assert np.array_equal(np.sort(task.saved_labels), np.sort(mnist_test.labels))
    outliers = task.known_outliers()
    assert outliers is not None and len(outliers) == 16 and outliers.name == "emnist-letters"
    again = protocol.task(cells[3], store)  # another seed: same validation split, other outliers
    assert np.array_equal(again.validation.images, task.validation.images)
    assert not np.array_equal(again.outliers.images, task.outliers.images)


def test_mnist_vs_letters_task(store: DataStore) -> None:
    protocol = make_protocol("mnist-vs-letters")
    (cell,) = protocol.cells(METHODS[:1], [0], "smoke", store)
    task = protocol.task(cell, store)
    assert len(task.train) + len(task.validation) == 60000 and len(task.test) == 10000 + 20800
    assert task.is_ood.sum() == 20800 and task.test.images.shape[1:] == (1, 28, 28)
    assert task.outliers is None and (task.test_class[~task.is_ood] >= 0).all()
    with pytest.raises(InputError, match="name one with --oe"):
        protocol.cells(METHODS, [0], "smoke", store)  # letters would be the OOD test set too
    with pytest.raises(InputError, match="share"):
        make_protocol("split-mnist", oe_dataset="mnist").cells(METHODS, [0], "smoke", store)


def test_protocol_options_and_methods_are_checked() -> None:
    with pytest.raises(InputError, match="unknown protocol"):
        make_protocol("two-class")
    with pytest.raises(InputError, match="--classes does not apply"):
        make_protocol("split-mnist", classes=(0,))
    with pytest.raises(InputError, match="msp: need the labels"):
        OneClass("digits").cells(METHODS, [0], "cpu", DataStore())
    with pytest.raises(InputError, match="number of outliers"):
        OneClass("digits", n_oe=(0,))


def test_one_class_reads_the_outliers_data_set_only_when_a_detector_asks(tmp_path, monkeypatch) -> None:
    """A run whose detectors use no outliers does not need their data set: `oodscope bench
    --dataset digits --methods geom` works where EMNIST letters are not (offline, no OODSCOPE_DATA)."""
    from click.testing import CliRunner

    from oodscope.cli import cli

    monkeypatch.delenv("OODSCOPE_DATA", raising=False)
    proto = OneClass("digits", (3,), "emnist-letters")
    task = proto.task(proto.cell("geom", 3, 0, "smoke", 16, "all"), DataStore(tmp_path, download=False))
    assert task.outliers is None
    with pytest.raises(DataError, match="emnist"):
        task.known_outliers()
    out = tmp_path / "run"
    args = ["bench", "--dataset", "digits", "--methods", "geom", "--classes", "3", "--preset", "smoke",
            "--data-root", str(tmp_path / "empty"), "--no-download", "--out", str(out), "--no-progress"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    args[args.index("geom")] = "geom,layers"  # layers trains with the outliers: now the letters are needed
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "emnist-letters" in result.output
