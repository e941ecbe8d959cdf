"""Tests of the CIFAR archive readers, the safe unpickler and downloading (local HTTP server)."""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import http.server
import io
import os
import pickle
import socket
import struct
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from oodscope.data import DATASETS, FileSpec, load
from oodscope.data.cifar import read_cifar10, read_cifar100
from oodscope.data.safe_pickle import safe_loads
from oodscope.errors import DataError

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# ---------------------------------------------------------------- writers of the original formats


def _batch(rng: np.random.Generator, n: int, n_classes: int, label_key: bytes) -> dict:
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    return {
        b"batch_label": b"synthetic batch",
        label_key: [int(v) for v in rng.integers(0, n_classes, n)],
        b"data": data,
        b"filenames": [b"img_%d.png" % i for i in range(n)],
    }


def _add_member(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def write_cifar10(path: Path, seed: int = 0, per_batch: int = 3) -> dict[str, dict]:
    """A tiny cifar-10-python.tar.gz with the original member names; returns the batches."""
    rng = np.random.default_rng(seed)
    batches = {f"data_batch_{i}": _batch(rng, per_batch, 10, b"labels") for i in range(1, 6)}
    batches["test_batch"] = _batch(rng, per_batch + 1, 10, b"labels")
    meta = {b"label_names": [n.encode() for n in CIFAR10_NAMES], b"num_cases_per_batch": per_batch}
    with tarfile.open(path, "w:gz") as tar:
        _add_member(tar, "cifar-10-batches-py/batches.meta", pickle.dumps(meta, protocol=2))
        for name, batch in batches.items():
            _add_member(tar, f"cifar-10-batches-py/{name}", pickle.dumps(batch, protocol=2))
        _add_member(tar, "cifar-10-batches-py/readme.html", b"<html></html>")
    return batches


def write_cifar100(path: Path, seed: int = 1) -> dict[str, dict]:
    rng = np.random.default_rng(seed)
    batches = {}
    for split, n in (("train", 7), ("test", 4)):
        b = _batch(rng, n, 100, b"fine_labels")
        b[b"coarse_labels"] = [int(v) for v in rng.integers(0, 20, n)]
        batches[split] = b
    meta = {
        b"fine_label_names": [f"fine{i:02d}" for i in range(100)],  # str names (Python 3 style)
        b"coarse_label_names": [f"coarse{i}" for i in range(20)],
    }
    with tarfile.open(path, "w:gz") as tar:
        for name, obj in (("meta", meta), *batches.items()):
            _add_member(tar, f"cifar-100-python/{name}", pickle.dumps(obj, protocol=2))
    return batches


def py2_style_pickle(data: np.ndarray, labels: list[int]) -> bytes:
    """The opcodes Python 2 cPickle (protocol 2) with numpy 1.x writes for a CIFAR batch."""

    def s(b: bytes) -> bytes:  # SHORT_BINSTRING
        return b"U" + bytes([len(b)]) + b

    def binint(v: int) -> bytes:
        return b"J" + struct.pack("<i", v)

    raw = data.tobytes()
    out = b"\x80\x02}(" + s(b"data")
    out += b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + s(b"b") + b"\x87R"
    out += b"(K\x01" + binint(data.shape[0]) + binint(data.shape[1]) + b"\x86"
    out += b"cnumpy\ndtype\n" + s(b"u1") + b"K\x00K\x01\x87R"
    out += b"(K\x03" + s(b"|") + b"NNN" + binint(-1) + binint(-1) + b"K\x00tb"
    out += b"\x89T" + struct.pack("<I", len(raw)) + raw + b"tb"
    out += s(b"labels") + b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
    return out + b"u."


# ---------------------------------------------------------------- CIFAR readers


def test_cifar10_roundtrip(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    batches = write_cifar10(path)
    train = read_cifar10(path, "train")
    assert train.images.shape == (15, 3, 32, 32) and train.images.dtype == np.uint8
    assert train.labels.dtype == np.int64 and train.classes == CIFAR10_NAMES
    expected = np.concatenate([batches[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
    assert np.array_equal(train.images, expected.reshape(-1, 3, 32, 32))
    assert train.labels.tolist() == sum((batches[f"data_batch_{i}"][b"labels"] for i in range(1, 6)), [])
    # channel-major layout: the first 1024 bytes of a row are the red plane
    assert np.array_equal(train.images[0, 0].ravel(), expected[0, :1024])
    test = read_cifar10(path, "test")
    assert len(test) == 4 and test.labels.tolist() == batches["test_batch"][b"labels"]


def test_cifar100_roundtrip(tmp_path):
    path = tmp_path / "cifar-100-python.tar.gz"
    batches = write_cifar100(path)
    train, test = read_cifar100(path, "train"), read_cifar100(path, "test")
    assert train.images.shape == (7, 3, 32, 32) and len(test) == 4
    assert len(train.classes) == 100 and train.classes[5] == "fine05"
    assert train.labels.tolist() == batches["train"][b"fine_labels"]
    assert np.array_equal(test.images.reshape(4, -1), batches["test"][b"data"])


def test_cifar_load_through_registry(tmp_path, monkeypatch):
    folder = tmp_path / "cifar10"
    folder.mkdir()
    archive = folder / "cifar-10-python.tar.gz"
    write_cifar10(archive)
    with pytest.raises(DataError, match="checksum mismatch"):  # not the official file
        load("cifar10", "test", root=tmp_path, download=False)
    _patch_md5(monkeypatch, "cifar10", "cifar-10-python.tar.gz", _md5(archive))
    ds = load("cifar10", "test", root=tmp_path, download=False)
    assert ds.name == "cifar10" and len(ds) == 4


def test_cifar_python2_pickle(tmp_path):
    """Batches as Python 2 cPickle wrote them (numpy.core.multiarray, byte strings)."""
    rng = np.random.default_rng(5)
    data = rng.integers(0, 256, (2, 3072), dtype=np.uint8)
    payload = py2_style_pickle(data, [3, 7])
    obj = safe_loads(payload, "py2")
    assert obj[b"labels"] == [3, 7] and np.array_equal(obj[b"data"], data)
    path = tmp_path / "c.tar.gz"
    meta = {b"label_names": [n.encode() for n in CIFAR10_NAMES]}
    with tarfile.open(path, "w:gz") as tar:
        _add_member(tar, "cifar-10-batches-py/batches.meta", pickle.dumps(meta, protocol=2))
        _add_member(tar, "cifar-10-batches-py/test_batch", payload)
    ds = read_cifar10(path, "test")
    assert ds.labels.tolist() == [3, 7] and ds.classes[7] == "horse"


def test_cifar_missing_member_and_corrupt_archive(tmp_path):
    path = tmp_path / "c.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        _add_member(tar, "cifar-10-batches-py/test_batch", b"x")
    with pytest.raises(DataError, match="no member cifar-10-batches-py/batches.meta"):
        read_cifar10(path, "test")
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(os.urandom(200))
    with pytest.raises(DataError, match="bad.tar.gz"):
        read_cifar10(bad, "train")
    full = tmp_path / "full.tar.gz"
    write_cifar10(full)
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(full.read_bytes()[:3000])
    with pytest.raises(DataError, match="cut.tar.gz"):
        read_cifar10(cut, "test")


def test_cifar_bad_data_shape(tmp_path):
    path = tmp_path / "c.tar.gz"
    meta = {b"label_names": [n.encode() for n in CIFAR10_NAMES]}
    batch = {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}
    with tarfile.open(path, "w:gz") as tar:
        _add_member(tar, "cifar-10-batches-py/batches.meta", pickle.dumps(meta, protocol=2))
        _add_member(tar, "cifar-10-batches-py/test_batch", pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match="3072"):
        read_cifar10(path, "test")


# ---------------------------------------------------------------- safe unpickler

SENTINEL: list[str] = []


def _side_effect(tag: str) -> str:
    SENTINEL.append(tag)
    return tag


class _CallsSystem:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _CallsPython:
    def __reduce__(self):
        return (_side_effect, ("ran",))


def test_safe_unpickler_refuses_os_system(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({b"data": _CallsSystem(marker)}, protocol=2)
    with pytest.raises(DataError, match=r"refusing to load global (posix|nt|os)\.system from evil\.pkl"):
        safe_loads(payload, "evil.pkl")
    assert not marker.exists()


def test_safe_unpickler_refuses_any_other_global():
    SENTINEL.clear()
    for obj in (_CallsPython(), {b"x": [_CallsPython()]}):
        with pytest.raises(DataError, match="refusing to load global"):
            safe_loads(pickle.dumps(obj, protocol=2), "p")
    assert SENTINEL == []
    with pytest.raises(DataError, match="builtins.eval"):
        safe_loads(b"\x80\x02cbuiltins\neval\nX\x04\x00\x00\x001+1\x85R.", "p")


def test_malicious_member_in_cifar_archive(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "cifar-10-python.tar.gz"
    meta = {b"label_names": [n.encode() for n in CIFAR10_NAMES]}
    with tarfile.open(path, "w:gz") as tar:
        _add_member(tar, "cifar-10-batches-py/batches.meta", pickle.dumps(meta, protocol=2))
        evil = pickle.dumps({b"data": _CallsSystem(marker), b"labels": []}, protocol=2)
        _add_member(tar, "cifar-10-batches-py/test_batch", evil)
    with pytest.raises(DataError, match="refusing to load global") as err:
        read_cifar10(path, "test")
    assert "test_batch" in str(err.value)
    assert not marker.exists()


def test_safe_unpickler_arrays():
    obj = {
        "u8": np.arange(6, dtype=np.uint8).reshape(2, 3),
        "i8be": np.array([-1, 2**40], dtype=">i8"),
        "fortran": np.asfortranarray(np.arange(6, dtype=np.int32).reshape(2, 3)),
        "nested": [(np.array([1, 2], np.uint16), "s", 1.5, None)],
    }
    for protocol in (2, 4):
        out = safe_loads(pickle.dumps(obj, protocol=protocol), "t")
        for key in ("u8", "i8be", "fortran"):
            assert np.array_equal(out[key], obj[key]) and out[key].dtype.kind == obj[key].dtype.kind
        assert np.array_equal(out["nested"][0][0], [1, 2]) and out["nested"][0][1:] == ("s", 1.5, None)
    with pytest.raises(DataError, match="dtype"):
        safe_loads(pickle.dumps({"f": np.zeros(3)}, protocol=2), "float.pkl")
    with pytest.raises(DataError):
        safe_loads(b"\x80\x02}q\x00(", "cut.pkl")  # truncated


# ---------------------------------------------------------------- download via a local HTTP server


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        pass


@pytest.fixture
def server(tmp_path):
    """Serve tmp_path/'www' on 127.0.0.1; yields (directory, base URL)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(www))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _patch_md5(monkeypatch, dataset: str, filename: str, md5: str) -> None:
    monkeypatch.setitem(DATASETS[dataset].files, filename, FileSpec(filename, md5, None))


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_download_cifar10(server, tmp_path, monkeypatch):
    www, url = server
    batches = write_cifar10(www / "cifar-10-python.tar.gz")
    _patch_md5(monkeypatch, "cifar10", "cifar-10-python.tar.gz", _md5(www / "cifar-10-python.tar.gz"))
    monkeypatch.setenv("OODSCOPE_MIRROR", url)
    root = tmp_path / "root"
    ds = load("cifar10", "test", root=root, download=True)
    assert ds.labels.tolist() == batches["test_batch"][b"labels"]
    assert sorted(p.name for p in (root / "cifar10").iterdir()) == ["cifar-10-python.tar.gz"]
    # second load uses the file on disk (server gone is fine)
    monkeypatch.setenv("OODSCOPE_MIRROR", _closed_port_url())
    assert len(load("cifar10", "train", root=root)) == 15


def test_download_bad_checksum_leaves_nothing(server, tmp_path, monkeypatch):
    www, url = server
    write_cifar10(www / "cifar-10-python.tar.gz")
    _patch_md5(monkeypatch, "cifar10", "cifar-10-python.tar.gz", "0" * 32)
    monkeypatch.setenv("OODSCOPE_MIRROR", url)
    root = tmp_path / "root"
    with pytest.raises(DataError, match="checksum mismatch") as err:
        load("cifar10", "train", root=root)
    text = str(err.value)
    assert "0" * 32 in text and str(root / "cifar10") in text and "cifar-10-python.tar.gz" in text
    assert list((root / "cifar10").iterdir()) == []


def test_download_http_error_and_unreachable(server, tmp_path, monkeypatch):
    www, url = server  # serves nothing: 404
    monkeypatch.setenv("OODSCOPE_MIRROR", url)
    with pytest.raises(DataError, match="404"):
        load("cifar100", "train", root=tmp_path / "a")
    assert list((tmp_path / "a" / "cifar100").iterdir()) == []
    monkeypatch.setenv("OODSCOPE_MIRROR", _closed_port_url())
    with pytest.raises(DataError) as err:
        load("cifar100", "train", root=tmp_path / "b")
    text = str(err.value)
    assert "cifar-100-python.tar.gz" in text and "eb9058c3a382ffc7106e4002c42a8d85" in text
    assert str(tmp_path / "b" / "cifar100") in text and "refused" in text.lower()
    assert list((tmp_path / "b" / "cifar100").iterdir()) == []


def _idx_gz(path: Path, array: np.ndarray) -> None:
    magic = bytes([0, 0, 8, array.ndim])
    with gzip.open(path, "wb") as f:
        f.write(magic + b"".join(d.to_bytes(4, "big") for d in array.shape) + array.tobytes())


def test_download_mnist_idx_with_fallback(server, tmp_path, monkeypatch):
    www, url = server
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([0, 9, 3, 3, 1], np.uint8)
    (www / "good").mkdir()
    _idx_gz(www / "good" / "t10k-images-idx3-ubyte.gz", images)
    _idx_gz(www / "good" / "t10k-labels-idx1-ubyte.gz", labels)
    for name in DATASETS["mnist"].splits["test"]:
        _patch_md5(monkeypatch, "mnist", name, _md5(www / "good" / name))
    # first base URL answers 404, the second one has the files
    spec = dataclasses.replace(DATASETS["mnist"], base_urls=(f"{url}/missing/", f"{url}/good/"))
    monkeypatch.setitem(DATASETS, "mnist", spec)
    monkeypatch.delenv("OODSCOPE_MIRROR", raising=False)
    ds = load("mnist", "test", root=tmp_path / "root")
    assert np.array_equal(ds.images[:, 0], images) and ds.labels.tolist() == [0, 9, 3, 3, 1]
    assert sorted(p.name for p in (tmp_path / "root" / "mnist").iterdir()) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]


def test_download_mnist_mirror_bad_checksum(server, tmp_path, monkeypatch):
    www, url = server
    _idx_gz(www / "t10k-images-idx3-ubyte.gz", np.zeros((2, 28, 28), np.uint8))
    _idx_gz(www / "t10k-labels-idx1-ubyte.gz", np.zeros(2, np.uint8))
    monkeypatch.setenv("OODSCOPE_MIRROR", url)  # official MD5s: these files do not match
    with pytest.raises(DataError, match="checksum mismatch") as err:
        load("mnist", "test", root=tmp_path)
    assert "9fb629c4189551a2d022fa330f9573f3" in str(err.value)
    assert list((tmp_path / "mnist").iterdir()) == []


def _emnist_zip(www: Path, corrupt: str | None = None) -> dict[str, str]:
    """gzip.zip with the four letters members (and an unrelated one); returns name -> MD5."""
    rng = np.random.default_rng(7)
    md5s = {}
    with zipfile.ZipFile(www / "gzip.zip", "w") as zf:
        for split, n in (("train", 6), ("test", 3)):
            for kind, arr in (
                ("images-idx3", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)),
                ("labels-idx1", rng.integers(1, 27, n).astype(np.uint8)),
            ):
                name = f"emnist-letters-{split}-{kind}-ubyte.gz"
                tmp = www / name
                _idx_gz(tmp, arr)
                md5s[name] = _md5(tmp)
                data = tmp.read_bytes()
                zf.writestr(f"gzip/{name}", data + (b"junk" if name == corrupt else b""))
                tmp.unlink()
        zf.writestr("gzip/emnist-digits-test-labels-idx1-ubyte.gz", b"other")
    return md5s


def test_download_emnist_zip(server, tmp_path, monkeypatch):
    www, url = server
    for name, md5 in _emnist_zip(www).items():
        _patch_md5(monkeypatch, "emnist-letters", name, md5)
    monkeypatch.setenv("OODSCOPE_MIRROR", url)
    root = tmp_path / "root"
    ds = load("emnist-letters", "test", root=root)
    assert ds.images.shape == (3, 1, 28, 28) and 0 <= ds.labels.min() and ds.labels.max() <= 25
    names = sorted(p.name for p in (root / "emnist").iterdir())
    assert len(names) == 4 and all(n.startswith("emnist-letters-") for n in names)  # zip deleted
    assert len(load("emnist-letters", "train", root=root, download=False)) == 6


def test_download_emnist_zip_bad_member(server, tmp_path, monkeypatch):
    www, url = server
    for name, md5 in _emnist_zip(www, corrupt="emnist-letters-test-images-idx3-ubyte.gz").items():
        _patch_md5(monkeypatch, "emnist-letters", name, md5)
    monkeypatch.setenv("OODSCOPE_MIRROR", url)
    with pytest.raises(DataError, match="checksum mismatch") as err:
        load("emnist-letters", "test", root=tmp_path)
    assert "emnist-letters-test-images-idx3-ubyte.gz" in str(err.value)
    assert list((tmp_path / "emnist").iterdir()) == []
