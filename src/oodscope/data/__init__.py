"""Image data sets for oodscope: loading, verifying, downloading and converting.

Public API::

    from oodscope.data import ImageSet, load, resolve_root, convert, DATASETS

* :func:`load` reads a named data set split (``"mnist"``, ``"emnist-letters"``,
  ``"cifar10"``, ``"cifar100"``, ``"digits"``) or an image folder, as an
  :class:`ImageSet` of uint8 ``(N, C, H, W)`` images with int64 labels.
* Files live under the data root (:func:`resolve_root`: argument, then
  ``$OODSCOPE_DATA``, then ``$XDG_CACHE_HOME/oodscope`` or ``~/.cache/oodscope``)
  in ``mnist/``, ``emnist/``, ``cifar10/`` and ``cifar100/``, exactly as the
  original distributions publish them. Every file is MD5-verified at load time.
* Missing files are downloaded from the official sources (MNIST: LeCun's site,
  then mirrors; CIFAR: cs.toronto.edu; EMNIST: NIST's ``gzip.zip``). Set the
  environment variable ``OODSCOPE_MIRROR`` to a base URL to fetch every file
  from ``$OODSCOPE_MIRROR/<filename>`` instead (EMNIST: ``$OODSCOPE_MIRROR/gzip.zip``).
* CIFAR pickles are read with a restricted unpickler that cannot run code.
* :func:`convert` changes channel count and size of an image stack.

Every problem with data raises :class:`oodscope.errors.DataError`.
"""

from oodscope.data.conversion import convert
from oodscope.data.folder import load_folder
from oodscope.data.stream import ImageStream
from oodscope.data.imageset import ImageSet
from oodscope.data.loading import load
from oodscope.data.paths import resolve_root
from oodscope.data.registry import DATASETS, DatasetSpec, FileSpec, ZipSource

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "FileSpec",
    "ImageSet",
    "ZipSource",
    "convert",
    "load",
    "load_folder",
    "ImageStream",
    "resolve_root",
]
