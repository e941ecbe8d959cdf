"""Scoring image files and folders with a fitted detector, and the CSV of verdicts."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np

from oodscope.data import convert
from oodscope.data.decode import decode_image
from oodscope.data.folder import IMAGE_SUFFIXES
from oodscope.detectors import Detector
from oodscope.errors import DataError, InputError

BATCH = 256


def collect_files(paths: tuple[str, ...] | list[str]) -> list[Path]:
    """Image files named directly, plus the images found in named folders (recursively,
    sorted, hidden names skipped). Order: as given, each folder's files sorted.

    Raises:
        DataError: a path does not exist, or a folder holds no images.
    """
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(
                f for f in p.rglob("*")
                if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()
                and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
            if not found:
                raise DataError(f"{p}: no images (.png/.jpg/.jpeg) found in folder")
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            raise DataError(f"{p}: no such file or folder")
    return files


def read_for_model(path: Path | BinaryIO, size: tuple[int, int], channels: int, name: str | None = None) -> np.ndarray:
    """One image file (or open binary stream, called ``name`` in errors) as uint8 ``(channels, H, W)``
    at the model's size."""
    array = decode_image(path, name)
    chw = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return convert(np.ascontiguousarray(chw)[None], size, channels)[0]


def model_geometry(detector: Detector) -> tuple[tuple[int, int], int]:
    """The image size and channel count the detector was fitted on.

    Raises:
        InputError: the detector was fitted on feature vectors, not images.
    """
    if "size" not in detector.fitted:
        raise InputError(f"{detector.method}: this model was fitted on feature vectors, not images; "
                         "it cannot score image files")
    height, width = (int(s) for s in detector.fitted["size"])
    return (height, width), int(detector.fitted["channels"])


def score_files(detector: Detector, files: list[Path]) -> np.ndarray:
    """Scores of ``files`` (all are decoded first, so an unreadable file fails before any output;
    :func:`oodscope.pipeline.stream_scores` scores any number of files in bounded memory instead).

    Raises:
        DataError: a file cannot be decoded.
        InputError: the detector was fitted on feature vectors, not images.
    """
    size, channels = model_geometry(detector)
    images = np.stack([read_for_model(f, size, channels) for f in files])
    return np.concatenate([detector.score(images[i: i + BATCH]) for i in range(0, len(images), BATCH)])


def score_paths(detector: Detector, paths: tuple[str, ...] | list[str]) -> tuple[list[Path], np.ndarray]:
    """The image files of ``paths`` (see :func:`collect_files`) and their scores."""
    files = collect_files(paths)
    return files, score_files(detector, files)
