"""Tests of oodscope.data on the real MNIST / EMNIST files, digits, convert, resolve_root, load()."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from oodscope.data import DATASETS, ImageSet, convert, load, resolve_root
from oodscope.data.idx import read_idx_gz
from oodscope.errors import DataError


def _shared_data() -> Path | None:
    """The real data files: $OODSCOPE_DATA, else ../shared/data next to the repository."""
    candidates = [os.environ.get("OODSCOPE_DATA", ""), str(Path(__file__).parents[2] / "shared" / "data")]
    for c in candidates:
        if c and (Path(c) / "mnist").is_dir() and (Path(c) / "emnist").is_dir():
            return Path(c)
    return None


SHARED = _shared_data()
needs_real = pytest.mark.skipif(
    SHARED is None,
    reason="real MNIST/EMNIST files not found: set OODSCOPE_DATA or provide ../shared/data",
)


@pytest.fixture(scope="module")
def mnist_test() -> ImageSet:
    return load("mnist", "test", root=SHARED, download=False)


@pytest.fixture(scope="module")
def emnist_test() -> ImageSet:
    return load("emnist-letters", "test", root=SHARED, download=False)


# ---------------------------------------------------------------- MNIST / EMNIST


@needs_real
def test_mnist_train_counts_shapes():
    ds = load("mnist", "train", root=SHARED, download=False)
    assert len(ds) == 60000
    assert ds.images.shape == (60000, 1, 28, 28) and ds.images.dtype == np.uint8
    assert ds.labels.dtype == np.int64 and ds.labels.shape == (60000,)
    assert ds.labels.min() == 0 and ds.labels.max() == 9
    assert np.bincount(ds.labels).min() > 5000  # every digit well represented
    assert ds.classes == [str(d) for d in range(10)] and ds.name == "mnist"


@needs_real
def test_mnist_test_counts(mnist_test):
    assert mnist_test.images.shape == (10000, 1, 28, 28)
    assert set(np.unique(mnist_test.labels)) == set(range(10))
    assert mnist_test.images.max() == 255 and mnist_test.images.min() == 0


@needs_real
def test_mnist_env_root(monkeypatch):
    monkeypatch.setenv("OODSCOPE_DATA", str(SHARED))
    assert len(load("mnist", "test", download=False)) == 10000


@needs_real
def test_emnist_train_counts():
    ds = load("emnist-letters", "train", root=SHARED, download=False)
    assert ds.images.shape == (124800, 1, 28, 28) and ds.images.dtype == np.uint8
    assert np.array_equal(np.bincount(ds.labels), np.full(26, 4800))
    assert ds.classes == list("abcdefghijklmnopqrstuvwxyz")


@needs_real
def test_emnist_test_counts(emnist_test):
    assert len(emnist_test) == 20800
    assert emnist_test.labels.min() == 0 and emnist_test.labels.max() == 25
    assert np.array_equal(np.bincount(emnist_test.labels), np.full(26, 800))


def _mean_image(ds: ImageSet, letter: str) -> np.ndarray:
    return ds.images[ds.labels == ds.classes.index(letter), 0].astype(np.float64).mean(0)


def _looks_upright(ds: ImageSet, mnist: ImageSet) -> bool:
    """Orientation check that a transposed, flipped or mirrored EMNIST fails.

    * 'i' is a vertical stroke: its column profile varies much more than its row profile,
      and its mean image resembles MNIST's mean '1';
    * 'p' (P/p) has the bowl on top and the stem on the left: more ink in the top half
      than the bottom half, and in the left half than the right half.
    """
    i_mean = _mean_image(ds, "i")
    vertical = i_mean.sum(axis=0).std() > 2 * i_mean.sum(axis=1).std()
    one = mnist.images[mnist.labels == 1, 0].astype(np.float64).mean(0)
    like_one = np.corrcoef(i_mean.ravel(), one.ravel())[0, 1] > 0.8
    p_mean = _mean_image(ds, "p")
    top_heavy = p_mean[:14].sum() > 1.3 * p_mean[14:].sum()
    left_heavy = p_mean[:, :14].sum() > 1.2 * p_mean[:, 14:].sum()
    return bool(vertical and like_one and top_heavy and left_heavy)


@needs_real
def test_emnist_upright(emnist_test, mnist_test):
    assert _looks_upright(emnist_test, mnist_test)


@needs_real
def test_orientation_check_rejects_wrong_orientations(emnist_test, mnist_test):
    """The upright check must fail on the raw (transposed) layout and on flips."""
    for wrong in (
        emnist_test.images.transpose(0, 1, 3, 2),  # as stored in the files
        emnist_test.images[:, :, ::-1, :],  # upside down
        emnist_test.images[:, :, :, ::-1],  # mirrored
    ):
        bad = ImageSet(np.ascontiguousarray(wrong), emnist_test.labels, emnist_test.classes, "x")
        assert not _looks_upright(bad, mnist_test)


@needs_real
def test_emnist_matches_raw_file_transposed(emnist_test):
    raw = read_idx_gz(SHARED / "emnist" / "emnist-letters-test-images-idx3-ubyte.gz")
    assert np.array_equal(emnist_test.images[:50, 0], raw[:50].transpose(0, 2, 1))


def test_bad_split_rejected():
    with pytest.raises(DataError, match="split 'val'"):
        load("mnist", "val", root="/nonexistent")
    with pytest.raises(DataError, match="split"):
        load("digits", "validation")


def test_unknown_name_lists_datasets(tmp_path):
    with pytest.raises(DataError) as err:
        load(str(tmp_path / "nope"))
    for name in ("mnist", "emnist-letters", "cifar10", "cifar100", "digits"):
        assert name in str(err.value)


def test_missing_files_without_download(tmp_path):
    with pytest.raises(DataError) as err:
        load("mnist", "test", root=tmp_path, download=False)
    text = str(err.value)
    assert str(tmp_path / "mnist") in text
    assert "t10k-images-idx3-ubyte.gz" in text and "9fb629c4189551a2d022fa330f9573f3" in text
    assert "download=False" in text
    assert not (tmp_path / "mnist").exists()


def test_existing_corrupt_file_is_reported_not_deleted(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in DATASETS["mnist"].splits["test"]:
        (folder / name).write_bytes(b"not the real file")
    with pytest.raises(DataError, match="checksum mismatch") as err:
        load("mnist", "test", root=tmp_path, download=True)
    assert "t10k-" in str(err.value)
    assert (folder / "t10k-images-idx3-ubyte.gz").read_bytes() == b"not the real file"


def test_registry_contents():
    assert set(DATASETS) == {"mnist", "emnist-letters", "cifar10", "cifar100", "digits", "digits-28", "synthetic-noise",
                             "synthetic-blobs", "synthetic-strokes"}
    assert all(DATASETS[n].folder is None and not DATASETS[n].files for n in ("digits-28", "synthetic-blobs"))
    assert DATASETS["cifar10"].files["cifar-10-python.tar.gz"].md5 == "c58f30108f718f92721af3b95e74349a"
    assert DATASETS["cifar100"].files["cifar-100-python.tar.gz"].md5 == "eb9058c3a382ffc7106e4002c42a8d85"
    assert DATASETS["mnist"].folder == "mnist" and DATASETS["emnist-letters"].folder == "emnist"
    assert DATASETS["cifar10"].folder == "cifar10" and DATASETS["cifar100"].folder == "cifar100"
    assert DATASETS["emnist-letters"].zip_url().endswith("/EMNIST/gzip.zip")


def test_mirror_env_overrides_urls(monkeypatch):
    monkeypatch.setenv("OODSCOPE_MIRROR", "http://127.0.0.1:9/m/")
    assert DATASETS["mnist"].file_urls("a.gz") == ["http://127.0.0.1:9/m/a.gz"]
    assert DATASETS["emnist-letters"].zip_url() == "http://127.0.0.1:9/m/gzip.zip"
    monkeypatch.delenv("OODSCOPE_MIRROR")
    urls = DATASETS["mnist"].file_urls("a.gz")
    assert len(urls) >= 2 and urls[0] == "http://yann.lecun.com/exdb/mnist/a.gz"


# ---------------------------------------------------------------- IDX errors


def _write_gz(path: Path, payload: bytes) -> Path:
    with gzip.open(path, "wb") as f:
        f.write(payload)
    return path


@needs_real
def test_truncated_gzip_of_real_file(tmp_path):
    real = (SHARED / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes()
    cut = tmp_path / "t10k-labels-idx1-ubyte.gz"
    cut.write_bytes(real[: len(real) // 2])
    with pytest.raises(DataError, match="truncated") as err:
        read_idx_gz(cut)
    assert str(cut) in str(err.value)


def test_truncated_idx_payload(tmp_path):
    header = bytes([0, 0, 8, 3]) + (6).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    path = _write_gz(tmp_path / "x-images.gz", header + bytes(100))
    with pytest.raises(DataError) as err:
        read_idx_gz(path)
    msg = str(err.value)
    assert "truncated" in msg and "6x28x28 = 4704 bytes, found 100" in msg and str(path) in msg


def test_idx_trailing_bytes(tmp_path):
    header = bytes([0, 0, 8, 1]) + (3).to_bytes(4, "big")
    path = _write_gz(tmp_path / "l.gz", header + bytes(5))
    with pytest.raises(DataError, match="more data"):
        read_idx_gz(path)


def test_wrong_magic(tmp_path):
    path = _write_gz(tmp_path / "m.gz", bytes([0, 0, 0x0D, 1]) + (3).to_bytes(4, "big") + bytes(12))
    with pytest.raises(DataError, match="magic") as err:
        read_idx_gz(path)
    assert str(path) in str(err.value)
    labels = _write_gz(tmp_path / "l.gz", bytes([0, 0, 8, 1]) + (3).to_bytes(4, "big") + bytes(3))
    with pytest.raises(DataError, match="magic"):
        read_idx_gz(labels, expect=0x803)  # labels where images were expected


def test_not_gzip(tmp_path):
    path = tmp_path / "plain.gz"
    path.write_bytes(b"\x00\x00\x08\x01" + bytes(10))
    with pytest.raises(DataError, match="gzip") as err:
        read_idx_gz(path)
    assert str(path) in str(err.value)


def test_idx_roundtrip(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    out = read_idx_gz(_write_gz(tmp_path / "ok.gz", header + arr.tobytes()), expect=0x803)
    assert np.array_equal(out, arr) and out.flags.writeable


# ---------------------------------------------------------------- digits


def test_digits_splits():
    train = load("digits", "train", root="/nonexistent-never-used", download=False)
    test = load("digits", "test", download=False)
    assert len(train) + len(test) == 1797
    assert abs(len(train) - 2 * 1797 / 3) < 11
    for ds in (train, test):
        assert ds.images.shape[1:] == (1, 8, 8) and ds.images.dtype == np.uint8
        assert ds.labels.min() == 0 and ds.labels.max() == 9 and ds.classes == [str(d) for d in range(10)]
    assert train.images.min() == 0 and train.images.max() == 255
    # every class split about 2:1
    ratio = np.bincount(train.labels) / np.bincount(test.labels)
    assert np.all((ratio > 1.8) & (ratio < 2.2))


def test_digits_deterministic_and_disjoint():
    from sklearn.datasets import load_digits

    from oodscope.data.digits import digits_split_indices

    target = load_digits().target
    tr, te = digits_split_indices(target, "train"), digits_split_indices(target, "test")
    assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == len(target)
    assert np.array_equal(tr, digits_split_indices(target, "train"))
    a, b = load("digits", "train"), load("digits", "train")
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    raw = load_digits().images[tr]
    assert np.array_equal(a.images[:, 0], np.round(raw * 255 / 16).astype(np.uint8))


# ---------------------------------------------------------------- ImageSet / convert


def test_imageset_subset_and_validation():
    ds = ImageSet(np.zeros((4, 1, 2, 2), np.uint8), np.arange(4, dtype=np.int64), ["a"], "n")
    sub = ds.subset(np.array([3, 1]))
    assert len(sub) == 2 and sub.labels.tolist() == [3, 1] and sub.classes == ["a"] and sub.name == "n"
    with pytest.raises(DataError):
        ImageSet(np.zeros((4, 2, 2, 2), np.uint8), np.arange(4, dtype=np.int64), [], "n")
    with pytest.raises(DataError):
        ImageSet(np.zeros((4, 1, 2, 2), np.uint8), np.arange(3, dtype=np.int64), [], "n")
    with pytest.raises(DataError):
        ImageSet(np.zeros((4, 1, 2, 2), np.float32), np.arange(4, dtype=np.int64), [], "n")
    with pytest.raises(DataError):
        ImageSet(np.zeros((4, 1, 2, 2), np.uint8), np.zeros(4, np.float64), [], "n")
    coerced = ImageSet(np.zeros((2, 3, 2, 2), np.uint8), [1, -1], [], "n")
    assert coerced.labels.dtype == np.int64 and coerced.labels.tolist() == [1, -1]


def test_convert_gray_to_rgb_and_back():
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (3, 1, 5, 6), dtype=np.uint8)
    rgb = convert(gray, (5, 6), 3)
    assert rgb.shape == (3, 3, 5, 6) and rgb.dtype == np.uint8
    assert all(np.array_equal(rgb[:, c], gray[:, 0]) for c in range(3))
    assert np.array_equal(convert(rgb, (5, 6), 1), gray)


def test_convert_rgb_to_gray_luma():
    img = np.zeros((1, 3, 1, 3), np.uint8)
    img[0, 0, 0, 0] = 255  # red
    img[0, 1, 0, 1] = 255  # green
    img[0, 2, 0, 2] = 255  # blue
    out = convert(img, (1, 3), 1)
    assert out.shape == (1, 1, 1, 3) and out[0, 0, 0].tolist() == [76, 150, 29]


def test_convert_rgb_to_gray_matches_pillow():
    from PIL import Image

    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (4, 3, 7, 9), dtype=np.uint8)
    gray = convert(rgb, (7, 9), 1)
    for img, g in zip(rgb, gray):
        ref = np.asarray(Image.fromarray(img.transpose(1, 2, 0)).convert("L"))
        assert np.array_equal(g[0], ref)


def test_convert_resize_and_noop():
    imgs = np.full((2, 1, 8, 8), 200, np.uint8)
    big = convert(imgs, (28, 28), 1)
    assert big.shape == (2, 1, 28, 28) and big.dtype == np.uint8 and np.all(big == 200)
    rgb = convert(imgs, (32, 30), 3)
    assert rgb.shape == (2, 3, 32, 30)
    colours = np.zeros((1, 3, 8, 8), np.uint8)
    colours[0, 0], colours[0, 1], colours[0, 2] = 10, 100, 200
    resized = convert(colours, (20, 12), 3)
    assert resized.shape == (1, 3, 20, 12)
    assert [int(v) for v in np.unique(resized.reshape(3, -1), axis=1)[:, 0]] == [10, 100, 200]
    ramp = np.tile(np.arange(0, 256, 32, dtype=np.uint8), (8, 1))[None, None]
    from PIL import Image

    ref = np.asarray(Image.fromarray(ramp[0, 0]).resize((28, 28), Image.Resampling.BILINEAR))
    assert np.array_equal(convert(ramp, (28, 28), 1)[0, 0], ref)
    assert convert(imgs, (8, 8), 1) is imgs
    with pytest.raises(DataError):
        convert(imgs.astype(np.float32), (8, 8), 1)
    with pytest.raises(DataError):
        convert(imgs, (8, 8), 2)


def test_load_with_size_and_channels():
    ds = load("digits", "test", size=(28, 28), channels=3)
    assert ds.images.shape == (599, 3, 28, 28)


# ---------------------------------------------------------------- resolve_root


def test_resolve_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("OODSCOPE_DATA", raising=False)
    assert resolve_root() == tmp_path / "home" / ".cache" / "oodscope"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_root() == tmp_path / "xdg" / "oodscope"
    monkeypatch.setenv("OODSCOPE_DATA", str(tmp_path / "env"))
    assert resolve_root() == tmp_path / "env"
    assert resolve_root(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_root(str(tmp_path / "arg2")) == tmp_path / "arg2"
    assert not (tmp_path / "env").exists()  # resolving creates nothing
