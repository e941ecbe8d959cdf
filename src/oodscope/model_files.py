"""The safe file format of saved detectors and cached networks: a directory holding
``weights.safetensors`` and ``config.json``.

The JSON names the format and its version and records the SHA-256 of the weights file, so a
tampered or truncated weights file is refused. Nothing is ever unpickled. The directory is
written under a temporary name and renamed into place, so a crash leaves no half-written model
and an existing one is replaced only once the new one is complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from oodscope.errors import ModelFileError

WEIGHTS = "weights.safetensors"
CONFIG = "config.json"
FORMAT_VERSION = 1


def sha256_of(path: Path) -> str:
    """The SHA-256 hex digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_model(path: str | os.PathLike[str], fmt: str, meta: dict[str, Any], tensors: dict[str, torch.Tensor],
                files: dict[str, Path] | None = None) -> Path:
    """Write ``tensors`` and ``meta`` (plus format, version and the weights' checksum) as a model
    directory at ``path``, atomically; ``files``: further files copied in by name (a user's model
    program), their checksums recorded beside the weights'."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / WEIGHTS))
        full = {"format": fmt, "version": FORMAT_VERSION, **meta, "weights_sha256": sha256_of(tmp / WEIGHTS)}
        for name, source in (files or {}).items():
            shutil.copyfile(source, tmp / name)
        if files:
            full["files_sha256"] = {name: sha256_of(tmp / name) for name in files}
        (tmp / CONFIG).write_text(json.dumps(full, indent=2, sort_keys=True))
        os.chmod(tmp, 0o755)  # mkdtemp creates 0700
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


def read_model(path: str | os.PathLike[str], fmt: str, required: tuple[str, ...] = ()) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read and verify a model directory written by :func:`write_model` with format ``fmt``.

    Raises:
        ModelFileError: not such a directory, unreadable or foreign config, unsupported version,
            a key of ``required`` missing, checksum mismatch, or unreadable weights.
    """
    path = Path(path)
    cfg, wts = path / CONFIG, path / WEIGHTS
    if not path.is_dir() or not cfg.is_file() or not wts.is_file():
        raise ModelFileError(f"{path}: not a saved oodscope model (expected a directory with {CONFIG} and {WEIGHTS})")
    try:
        meta = json.loads(cfg.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{cfg}: unreadable model config ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise ModelFileError(f"{cfg}: not an {fmt} config")
    if meta.get("version") != FORMAT_VERSION:
        raise ModelFileError(f"{cfg}: unsupported model format version {meta.get('version')!r}")
    for key in (*required, "weights_sha256"):
        if key not in meta:
            raise ModelFileError(f"{cfg}: model config lacks {key!r}")
    if sha256_of(wts) != meta["weights_sha256"]:
        raise ModelFileError(f"{wts}: checksum does not match the one recorded in {CONFIG}: "
                             "the weights file was modified or corrupted")
    recorded = meta.get("files_sha256") or {}
    for name, digest in recorded.items():
        if Path(name).name != name or not (path / name).is_file() or sha256_of(path / name) != digest:
            raise ModelFileError(f"{path / name}: missing, or its checksum does not match the one recorded in {CONFIG}")
    try:
        weights = load_file(str(wts), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelFileError(f"{wts}: unreadable weights file ({e})") from None
    return meta, weights


def load_modules(modules: dict[str, torch.nn.Module], weights: dict[str, torch.Tensor], path: str | os.PathLike[str],
                 extra: tuple[str, ...] = ()) -> None:
    """Load ``weights`` (keys ``<prefix>.<name>``) into ``modules`` (strict); tensors under a prefix
    that is neither a module nor in ``extra`` are refused.

    Raises:
        ModelFileError: the weights do not fit the modules the configuration describes.
    """
    for prefix, module in modules.items():
        sub = {k[len(prefix) + 1:]: v for k, v in weights.items() if k.startswith(prefix + ".")}
        try:
            module.load_state_dict(sub, strict=True)
        except RuntimeError as e:
            raise ModelFileError(f"{path}: weights do not match the saved configuration "
                                 f"({str(e).splitlines()[0]})") from None
    stray = [k for k in weights if k.split(".", 1)[0] not in modules and k.split(".", 1)[0] not in extra]
    if stray:
        raise ModelFileError(f"{path}: unexpected tensors in weights file: {stray[:3]}")
