"""The data set registry: what each named data set needs, where it comes from, how to read it.

Download locations can be redirected with the environment variable
``OODSCOPE_MIRROR``: when set, every file is fetched from
``$OODSCOPE_MIRROR/<filename>`` (and EMNIST's zip from ``$OODSCOPE_MIRROR/gzip.zip``)
instead of the official locations.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from oodscope.data.cifar import CIFAR10_ARCHIVE, CIFAR100_ARCHIVE, read_cifar10, read_cifar100
from oodscope.data.digits import read_digits
from oodscope.data.imageset import ImageSet
from oodscope.data.mnist import (
    EMNIST_LETTERS_FILES,
    MNIST_FILES,
    read_emnist_letters,
    read_mnist,
)
from oodscope.data.synthetic import KINDS as SYNTHETIC_KINDS
from oodscope.data.synthetic import read_digits28, read_synthetic

ENV_MIRROR = "OODSCOPE_MIRROR"
SPLITS = ("train", "test")


@dataclass(frozen=True)
class FileSpec:
    """One original distribution file: its name, official MD5 and size in bytes (if known)."""

    name: str
    md5: str
    size: int | None = None


@dataclass(frozen=True)
class ZipSource:
    """A zip archive that holds some of a data set's files.

    ``members`` maps each file name to its path inside the zip.
    """

    url: str
    members: dict[str, str]

    @property
    def filename(self) -> str:
        """The zip's own file name (used with ``OODSCOPE_MIRROR``)."""
        return self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class DatasetSpec:
    """Everything :func:`oodscope.data.load` needs to know about a named data set.

    Attributes:
        name: Registry key.
        folder: Sub-directory of the data root holding the files (``None`` if
            the data ships with a Python package).
        files: File name -> FileSpec, for every file the data set uses.
        splits: Split name -> the file names that split needs.
        base_urls: Base URLs tried in order for each file (file name appended).
        zip_source: Set when the files come out of one zip archive instead.
        loader: ``loader(directory, split)`` reads a split from ``root/folder``.
        description: One line for humans.
    """

    name: str
    folder: str | None
    files: dict[str, FileSpec]
    splits: dict[str, tuple[str, ...]]
    base_urls: tuple[str, ...]
    loader: Callable[[Path | None, str], ImageSet]
    zip_source: ZipSource | None = None
    description: str = ""
    homepage: str = ""

    def file_urls(self, filename: str) -> list[str]:
        """Where ``filename`` is downloaded from, honouring ``OODSCOPE_MIRROR``."""
        mirror = os.environ.get(ENV_MIRROR, "")
        if mirror:
            return [f"{mirror.rstrip('/')}/{filename}"]
        return [f"{base.rstrip('/')}/{filename}" for base in self.base_urls]

    def zip_url(self) -> str | None:
        """Where the zip archive is downloaded from, honouring ``OODSCOPE_MIRROR``."""
        if self.zip_source is None:
            return None
        mirror = os.environ.get(ENV_MIRROR, "")
        if mirror:
            return f"{mirror.rstrip('/')}/{self.zip_source.filename}"
        return self.zip_source.url


def _cifar10(directory: Path | None, split: str) -> ImageSet:
    """Registry loader for CIFAR-10."""
    assert directory is not None
    return read_cifar10(directory / CIFAR10_ARCHIVE, split)


def _cifar100(directory: Path | None, split: str) -> ImageSet:
    """Registry loader for CIFAR-100."""
    assert directory is not None
    return read_cifar100(directory / CIFAR100_ARCHIVE, split)


def _mnist(directory: Path | None, split: str) -> ImageSet:
    """Registry loader for MNIST."""
    assert directory is not None
    return read_mnist(directory, split)


def _emnist_letters(directory: Path | None, split: str) -> ImageSet:
    """Registry loader for EMNIST letters."""
    assert directory is not None
    return read_emnist_letters(directory, split)


_MNIST_SIZES = {
    "train-images-idx3-ubyte.gz": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", 9912422),
    "train-labels-idx1-ubyte.gz": ("d53e105ee54ea40749a09fcbcd1e9432", 28881),
    "t10k-images-idx3-ubyte.gz": ("9fb629c4189551a2d022fa330f9573f3", 1648877),
    "t10k-labels-idx1-ubyte.gz": ("ec29112dd5afa0611ce80d1b7f02629c", 4542),
}
_EMNIST_SIZES = {
    "emnist-letters-train-images-idx3-ubyte.gz": ("8795078f199c478165fe18db82625747", 30804864),
    "emnist-letters-train-labels-idx1-ubyte.gz": ("c16de4f1848ddcdddd39ab65d2a7be52", 79283),
    "emnist-letters-test-images-idx3-ubyte.gz": ("382093a19703f68edac6d01b8dfdfcad", 5039157),
    "emnist-letters-test-labels-idx1-ubyte.gz": ("d4108920cd86601ec7689a97f2de7f59", 144),
}


def _file_specs(table: dict[str, tuple[str, int]]) -> dict[str, FileSpec]:
    """FileSpecs from a name -> (md5, size) table."""
    return {name: FileSpec(name, md5, size) for name, (md5, size) in table.items()}


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        folder="mnist",
        files=_file_specs(_MNIST_SIZES),
        splits={split: MNIST_FILES[split] for split in SPLITS},
        base_urls=(
            "http://yann.lecun.com/exdb/mnist/",
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        loader=_mnist,
        description="MNIST handwritten digits, 28x28 gray, 60000 train / 10000 test",
        homepage="http://yann.lecun.com/exdb/mnist/",
    ),
    "emnist-letters": DatasetSpec(
        name="emnist-letters",
        folder="emnist",
        files=_file_specs(_EMNIST_SIZES),
        splits={split: EMNIST_LETTERS_FILES[split] for split in SPLITS},
        base_urls=(),
        zip_source=ZipSource(
            url="https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip",
            members={name: f"gzip/{name}" for name in _EMNIST_SIZES},
        ),
        loader=_emnist_letters,
        description="EMNIST letters a-z, 28x28 gray, 124800 train / 20800 test",
        homepage="https://www.nist.gov/itl/products-and-services/emnist-dataset",
    ),
    "cifar10": DatasetSpec(
        name="cifar10",
        folder="cifar10",
        files={
            CIFAR10_ARCHIVE: FileSpec(CIFAR10_ARCHIVE, "c58f30108f718f92721af3b95e74349a", 170498071)
        },
        splits={split: (CIFAR10_ARCHIVE,) for split in SPLITS},
        base_urls=("https://www.cs.toronto.edu/~kriz/",),
        loader=_cifar10,
        description="CIFAR-10, 32x32 RGB, 10 classes, 50000 train / 10000 test",
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
    ),
    "cifar100": DatasetSpec(
        name="cifar100",
        folder="cifar100",
        files={
            CIFAR100_ARCHIVE: FileSpec(CIFAR100_ARCHIVE, "eb9058c3a382ffc7106e4002c42a8d85", 169001437)
        },
        splits={split: (CIFAR100_ARCHIVE,) for split in SPLITS},
        base_urls=("https://www.cs.toronto.edu/~kriz/",),
        loader=_cifar100,
        description="CIFAR-100 (fine labels), 32x32 RGB, 100 classes, 50000 train / 10000 test",
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
    ),
    "digits": DatasetSpec(
        name="digits",
        folder=None,
        files={},
        splits={split: () for split in SPLITS},
        base_urls=(),
        loader=read_digits,
        description="scikit-learn's bundled 8x8 digits (1797 images), stratified 2/3 : 1/3 split",
        homepage="https://scikit-learn.org/stable/modules/generated/sklearn.datasets.load_digits.html",
    ),
    "digits-28": DatasetSpec(
        name="digits-28",
        folder=None,
        files={},
        splits={split: () for split in SPLITS},
        base_urls=(),
        loader=read_digits28,
        description="scikit-learn's digits upscaled to 20x20 and centred in 28x28 (an outlier source for MNIST-sized sets)",
        homepage="https://scikit-learn.org/stable/modules/generated/sklearn.datasets.load_digits.html",
    ),
    **{f"synthetic-{kind}": DatasetSpec(
        name=f"synthetic-{kind}",
        folder=None,
        files={},
        splits={split: () for split in SPLITS},
        base_urls=(),
        loader=lambda directory, split, kind=kind: read_synthetic(kind, split),
        description=f"generated 28x28 {kind} ({', '.join(classes)}), an outlier source for stress tests",
    ) for kind, classes in SYNTHETIC_KINDS.items()},
}
"""Named data sets known to :func:`oodscope.data.load`."""
