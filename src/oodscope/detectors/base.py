"""The detector interface shared by every method, and its safe file format.

``fit(train, outliers=None) -> self``; ``score(x) -> np.ndarray`` with higher = more
out-of-distribution; ``save(path)`` / ``load(path)``. A saved detector is a directory holding
``weights.safetensors`` and ``config.json``; the JSON records the method, its settings, what
was learnt at fit time (image shape, threshold) and the SHA-256 of the weights file, so a
tampered or truncated weights file is refused. Nothing is ever unpickled. The directory is
written under a temporary name and renamed into place, so a crash leaves no half-written model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from oodscope.errors import InputError, ModelFileError
from oodscope.detectors.inputs import as_images, check_like

FORMAT = "oodscope-detector"
FORMAT_VERSION = 1
WEIGHTS = "weights.safetensors"
CONFIG = "config.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Detector:
    """Base class. Subclasses set ``method``, ``defaults`` and implement ``_fit``, ``_score``,
    ``_build`` (create untrained modules from ``self.fitted``) and ``_modules``."""

    method: ClassVar[str] = ""
    uses_outliers: ClassVar[bool] = False  # True for semi-supervised (outlier exposure) methods
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **config: Any) -> None:
        unknown = set(config) - set(self.defaults)
        if unknown:
            raise InputError(f"{self.method}: unknown settings {sorted(unknown)}; known: {sorted(self.defaults)}")
        self.config: dict[str, Any] = {**self.defaults, **config}
        self.fitted: dict[str, Any] | None = None  # JSON-able facts learnt at fit time
        self.threshold: float | None = None

    # -- interface -------------------------------------------------------------------------
    def fit(self, train: Any, outliers: Any = None) -> "Detector":
        x = as_images(train, "training images")
        o = None if outliers is None else as_images(outliers, "outlier images")
        if o is None and self.uses_outliers:
            raise InputError(f"{self.method}: needs outlier images (outlier exposure); pass outliers=")
        if o is not None:
            check_like(o, x.shape[1], tuple(x.shape[-2:]), "outlier images")
        mean = x.mean(dim=(0, 2, 3))
        std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
        self.fitted = {
            "channels": int(x.shape[1]),
            "size": [int(x.shape[2]), int(x.shape[3])],
            "mean": mean.tolist(),
            "std": std.tolist(),
        }
        # seed before the networks are built, so initial weights depend on the seed alone
        torch.manual_seed(int(self.config.get("seed", 0)))
        self._build()
        self._fit(x, o)
        return self

    def score(self, x: Any) -> np.ndarray:
        if self.fitted is None:
            raise InputError(f"{self.method}: detector is not fitted; call fit() or load() first")
        t = as_images(x, "images to score")
        check_like(t, self.fitted["channels"], tuple(self.fitted["size"]), "images to score")
        s = self._score(t)
        return s.astype(np.float64)

    def predict(self, x: Any) -> np.ndarray:
        """True where the input is rejected as out-of-distribution (score above the saved threshold)."""
        if self.threshold is None:
            raise InputError(f"{self.method}: no threshold set; call set_threshold() first")
        return self.score(x) > self.threshold

    def set_threshold(self, value: float) -> None:
        self.threshold = float(value)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.fitted["mean"], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.fitted["std"], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std

    # -- subclass hooks --------------------------------------------------------------------
    def _build(self) -> None:
        raise NotImplementedError

    def _fit(self, x: torch.Tensor, outliers: torch.Tensor | None) -> None:
        raise NotImplementedError

    def _score(self, x: torch.Tensor) -> np.ndarray:
        raise NotImplementedError

    def _modules(self) -> dict[str, torch.nn.Module]:
        raise NotImplementedError

    # -- persistence -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for prefix, module in self._modules().items():
            for k, v in module.state_dict().items():
                out[f"{prefix}.{k}"] = v.detach().cpu().contiguous()
        return out

    def save(self, path: str | os.PathLike) -> Path:
        if self.fitted is None:
            raise InputError(f"{self.method}: cannot save a detector that has not been fitted")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        try:
            save_file(self.state_dict(), str(tmp / WEIGHTS))
            meta = {
                "format": FORMAT,
                "version": FORMAT_VERSION,
                "method": self.method,
                "config": self.config,
                "fitted": self.fitted,
                "threshold": self.threshold,
                "weights_sha256": _sha256(tmp / WEIGHTS),
            }
            (tmp / CONFIG).write_text(json.dumps(meta, indent=2, sort_keys=True))
            if path.exists():
                old = path.with_name(f".{path.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(path, old)
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return path

    @classmethod
    def _from_meta(cls, meta: dict[str, Any], weights: dict[str, torch.Tensor], path: Path) -> "Detector":
        det = cls(**meta["config"])
        det.fitted = meta["fitted"]
        det.threshold = meta.get("threshold")
        det._build()
        modules = det._modules()
        for prefix, module in modules.items():
            sub = {k[len(prefix) + 1 :]: v for k, v in weights.items() if k.startswith(prefix + ".")}
            try:
                module.load_state_dict(sub, strict=True)
            except RuntimeError as e:
                raise ModelFileError(f"{path}: weights do not match the saved configuration ({str(e).splitlines()[0]})") from None
        extra = [k for k in weights if k.split(".", 1)[0] not in modules]
        if extra:
            raise ModelFileError(f"{path}: unexpected tensors in weights file: {extra[:3]}")
        return det


def read_model(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read and verify a saved detector's config and weights; never unpickles."""
    path = Path(path)
    cfg, wts = path / CONFIG, path / WEIGHTS
    if not path.is_dir() or not cfg.is_file() or not wts.is_file():
        raise ModelFileError(f"{path}: not a saved oodscope model (expected a directory with {CONFIG} and {WEIGHTS})")
    try:
        meta = json.loads(cfg.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{cfg}: unreadable model config ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{cfg}: not an oodscope model config")
    if meta.get("version") != FORMAT_VERSION:
        raise ModelFileError(f"{cfg}: unsupported model format version {meta.get('version')!r}")
    for key in ("method", "config", "fitted", "weights_sha256"):
        if key not in meta:
            raise ModelFileError(f"{cfg}: model config lacks {key!r}")
    if _sha256(wts) != meta["weights_sha256"]:
        raise ModelFileError(f"{wts}: checksum does not match the one recorded in {CONFIG}: the weights file was modified or corrupted")
    try:
        weights = load_file(str(wts), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelFileError(f"{wts}: unreadable weights file ({e})") from None
    return meta, weights
