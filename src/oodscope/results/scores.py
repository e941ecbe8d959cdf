"""Per-cell test scores: ``DIR/scores/<cell id>.npz``, written before the cell's results row.

Each file holds ``scores`` (float32, higher = more OOD), ``is_ood`` (bool) and ``labels``
(int64 test labels), saved with :func:`numpy.savez_compressed` to a temporary file that is
fsynced and renamed into place, so a results row never names a missing or partial file.
Files are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from oodscope.atomic import write_atomic
from oodscope.errors import DataError
from oodscope.results.schema import cell_key, variant_text

SCORES_DIR = "scores"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def cell_file_id(cell: dict[str, Any]) -> str:
    """A file-name-safe, unique id of a cell given by its row fields (core fields and
    ``protocol_fields``): readable fields plus a short hash of its key."""
    method = str(cell["method"]).replace("+", "plus")
    variant = variant_text(cell.get("variant"))
    fields = "_".join(str(v) for v in cell["protocol_fields"].values())
    readable = f"{cell['dataset']}_{method}{'-' + variant if variant else ''}_{fields}_s{cell['seed']}_{cell['preset']}"
    readable = _UNSAFE.sub("-", readable).strip("-.")[:120]
    key = cell_key(cell["protocol"], cell["dataset"], cell["method"], cell.get("variant"), cell["seed"],
                   cell["preset"], cell["protocol_fields"])
    digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:8]
    return f"{readable}_{digest}"


def save_scores(directory: str | os.PathLike[str], cell: dict[str, Any], scores: np.ndarray, is_ood: np.ndarray,
                labels: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> str:
    """Write the scores of the cell with row fields ``cell`` atomically; return the path relative
    to ``directory``. ``extra``: further arrays kept beside them (a detector's logits as float32,
    the test images' in-distribution classes as int64), for figures drawn from saved outputs."""
    folder = Path(directory) / SCORES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    name = cell_file_id(cell) + ".npz"
    write_atomic(folder / name, lambda f: np.savez_compressed(
        f,
        scores=np.asarray(scores, dtype=np.float32).ravel(),
        is_ood=np.asarray(is_ood, dtype=bool).ravel(),
        labels=np.asarray(labels, dtype=np.int64).ravel(),
        **{k: np.asarray(v, dtype=np.float32 if np.issubdtype(np.asarray(v).dtype, np.floating) else np.int64)
           for k, v in (extra or {}).items()},
    ))
    return f"{SCORES_DIR}/{name}"


def load_scores(directory: str | os.PathLike[str], row: dict[str, Any]) -> dict[str, np.ndarray] | None:
    """The arrays of ``row``'s scores file (``scores``, ``is_ood``, ``labels`` and any kept beside
    them), or None if the row has none or it is missing.

    Raises:
        DataError: the file exists but is not a valid scores file.
    """
    rel = row.get("scores_file")
    if not rel:
        return None
    path = Path(directory) / rel
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            out = {k: np.asarray(data[k]) for k in ("scores", "is_ood", "labels")}
            out.update({k: np.asarray(data[k]) for k in data.files if k not in out})
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a valid scores file ({e})") from None
    if not len(out["scores"]) == len(out["is_ood"]) == len(out["labels"]):
        raise DataError(f"{path}: scores, is_ood and labels differ in length")
    return out
