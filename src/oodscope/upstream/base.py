"""Upstream networks: trained once, read by several detectors (GEOM's f, a multi-class classifier).

An :class:`Upstream` is a network with settings, trained on in-distribution images (and labels
where it needs them). A detector that reads one declares its class in ``requires.upstream``; it
trains its own when none is given, or takes an already trained one (``fit(..., upstream=net)``).

:class:`UpstreamCache` keeps trained upstreams keyed by their kind, settings and a digest of
the data they were trained on, in memory and optionally on disk (safetensors + JSON, the same
verified format as saved detectors), so benchmark cells, suites and separate processes reuse a
network instead of retraining it. The thread count is not part of the key, nor the precision the
network scores in (:data:`SCORING_SETTINGS`): that is the reading detector's, which reads the
shared network through :meth:`Upstream.scoring_view` in its own precision.
"""

from __future__ import annotations

import copy
import hashlib
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

import oodscope
from oodscope.training import distributed
from oodscope.model_files import load_modules, read_model, write_model
from oodscope.settings import check_settings, settings_key
from oodscope.errors import InputError, ModelFileError
from oodscope.progress import message

NETWORK_FORMAT = "oodscope-network"
ENV_CACHE = "OODSCOPE_CACHE"
# settings that change how a trained network computes, not what it learns: out of the cache key
SCORING_SETTINGS: tuple[str, ...] = ("precision",)


def training_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` less those of :data:`SCORING_SETTINGS` (what identifies a trained network)."""
    return {k: v for k, v in settings.items() if k not in SCORING_SETTINGS}


def image_stats(x: torch.Tensor) -> dict[str, Any]:
    """Channels, size and per-channel mean and std (floored at 1e-3) of images in [0, 1]."""
    return {
        "channels": int(x.shape[1]),
        "size": [int(x.shape[2]), int(x.shape[3])],
        "mean": x.mean(dim=(0, 2, 3)).tolist(),
        "std": x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist(),
    }


def normalize_with(stats: dict[str, Any], x: torch.Tensor) -> torch.Tensor:
    """``(x - mean) / std`` per channel with the statistics of :func:`image_stats`."""
    mean = torch.tensor(stats["mean"], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(stats["std"], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - mean) / std


class Upstream:
    """Base class of shared networks. Subclasses set ``kind``, ``defaults`` (and ``choices``),
    ``prefix`` (the weight-name prefix in a saved detector) and implement ``_build`` (untrained
    modules from ``self.fitted``, the network as ``self.net``) and ``_fit``. ``version`` is part of the cache key:
    raise it when training changes what is learnt, so old cache entries are not reused."""

    kind: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    choices: ClassVar[dict[str, tuple[Any, ...]]] = {}
    needs_labels: ClassVar[bool] = False
    prefix: ClassVar[str] = "f"
    version: ClassVar[int] = 1
    late_settings: ClassVar[tuple[str, ...]] = ()  # added later: at their default, left out of the cache key
    takes_user_models: ClassVar[bool] = False  # a user's own model (an oodscope.upstream.adapter.ModelAdapter) may stand in

    def __init__(self, **settings: Any) -> None:
        self.settings: dict[str, Any] = check_settings(self.kind, self.defaults, settings, self.choices)
        self.fitted: dict[str, Any] | None = None

    @classmethod
    def settings_from(cls, config: dict[str, Any]) -> dict[str, Any]:
        """The settings of this network found in a detector's ``config``."""
        return {k: config[k] for k in cls.defaults if k in config}

    def fit(self, x: torch.Tensor, labels: torch.Tensor | None = None, validation: torch.Tensor | None = None,
            validation_labels: torch.Tensor | None = None, **extra: Any) -> Upstream:
        """Train on images ``x`` (float, [0, 1]); ``labels`` for networks that need them."""
        if self.needs_labels and labels is None:
            raise InputError(f"{self.kind}: needs class labels of the training images")
        self.fitted = {**image_stats(x), **self._facts(x, labels)}
        torch.manual_seed(int(self.settings.get("seed", 0)))  # initial weights depend on the seed alone
        self._build()
        self._fit(x, labels, validation, validation_labels, **extra)
        return self

    def restore(self, fitted: dict[str, Any]) -> Upstream:
        """Untrained modules for the facts ``fitted`` (weights are loaded next)."""
        self.fitted = fitted
        self._build()
        return self

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """The network's input normalisation (statistics of its training images)."""
        return normalize_with(self.fitted, x)

    def scoring_view(self, settings: dict[str, Any]) -> Upstream:
        """This trained network computing with the :data:`SCORING_SETTINGS` of ``settings`` (a
        detector's config): itself when they are its own, else a shallow copy sharing the modules."""
        want = {k: settings[k] for k in SCORING_SETTINGS if k in settings and k in self.defaults}
        if all(self.settings.get(k) == v for k, v in want.items()):
            return self
        view = copy.copy(self)
        view.settings = {**self.settings, **want}
        view._after_view()
        return view

    def _after_view(self) -> None:
        """Hook of :meth:`scoring_view` for composites (their members follow the view's settings)."""

    def summary(self) -> dict[str, Any]:
        """Facts worth a results row (e.g. validation accuracy); none by default."""
        return {}

    # -- subclass hooks --------------------------------------------------------------------
    def _facts(self, x: torch.Tensor, labels: torch.Tensor | None) -> dict[str, Any]:
        """Facts the modules' shapes depend on, beyond the images' (e.g. the number of classes)."""
        return {}

    def _build(self) -> None:
        raise NotImplementedError

    def _fit(self, x: torch.Tensor, labels: torch.Tensor | None, validation: torch.Tensor | None,
             validation_labels: torch.Tensor | None, **extra: Any) -> None:
        raise NotImplementedError

    def modules(self) -> dict[str, torch.nn.Module]:
        """The network by its weight-name prefix."""
        return {self.prefix: self.net}

    def files(self) -> dict[str, Path]:
        """Files a detector reading this network saves beside its weights, by name (none)."""
        return {}


def _digest(*arrays: torch.Tensor | None) -> str:
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        if a is None:
            h.update(b"-")
            continue
        t = a.detach().cpu().contiguous()
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def upstream_key(cls: type[Upstream], settings: dict[str, Any], x: torch.Tensor, labels: torch.Tensor | None = None,
                 validation: torch.Tensor | None = None, validation_labels: torch.Tensor | None = None) -> str:
    """The cache key: kind, version, settings (``progress`` and the scoring precision aside, and
    late settings at their default, so networks cached before a setting existed are still found)
    and a digest of the data."""
    full = training_settings(cls(**settings).settings)
    kept = {k: v for k, v in full.items() if not (k in cls.late_settings and v == cls.defaults[k])}
    text = f"{cls.kind}|{cls.version}|{settings_key(kept)}|{_digest(x, labels, validation, validation_labels)}"
    return hashlib.sha256(text.encode()).hexdigest()


def default_cache_dir() -> Path:
    """``$OODSCOPE_CACHE``, else ``$XDG_CACHE_HOME/oodscope/networks``, else ``~/.cache/oodscope/networks``."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "oodscope" / "networks"


@dataclass
class UpstreamInfo:
    """Where a cell's upstream came from, as its results row records it."""

    kind: str
    key: str
    fit_seconds: float
    reused: bool
    facts: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        """The ``upstream`` entry of a results row."""
        return {"kind": self.kind, "key": self.key[:16], "fit_seconds": round(self.fit_seconds, 3),
                "reused": self.reused, **self.facts}


class UpstreamCache:
    """Trained upstream networks by key: the last ``keep`` in memory, all on disk under
    ``directory/<kind>/<key>/`` when a directory is given."""

    def __init__(self, directory: str | os.PathLike[str] | None = None, keep: int = 4) -> None:
        self.directory = None if directory is None else Path(directory)
        self.keep = keep
        self.memory: OrderedDict[str, tuple[Upstream, float]] = OrderedDict()
        self.trained = 0  # networks trained (not found) by this cache

    def _path(self, cls: type[Upstream], key: str) -> Path | None:
        return None if self.directory is None else self.directory / cls.kind / key[:32]

    def _remember(self, key: str, net: Upstream, seconds: float) -> None:
        self.memory[key] = (net, seconds)
        self.memory.move_to_end(key)
        while len(self.memory) > self.keep:
            self.memory.popitem(last=False)

    def _from_disk(self, cls: type[Upstream], key: str, path: Path) -> tuple[Upstream, float] | None:
        try:
            meta, weights = read_model(path, NETWORK_FORMAT, ("kind", "key", "settings", "fitted", "fit_seconds"))
            if meta["key"] != key or meta["kind"] != cls.kind:
                return None
            net = cls(**meta["settings"]).restore(meta["fitted"])
            load_modules(net.modules(), weights, path)
        except (ModelFileError, InputError) as e:
            message(f"upstream cache: {e}; training the network again")
            return None
        for module in net.modules().values():
            module.eval()
        return net, float(meta["fit_seconds"])

    def payloads(self) -> list[dict[str, Any]]:
        """The trained networks in memory as plain data, to hand to another process (composites
        as their members): kind, key, settings, facts, training seconds and the weights as
        safetensors bytes - plain values only, so the receiving process builds the network from
        its own classes (:meth:`adopt`) and never unpickles one."""
        out = []
        for key, (net, seconds) in self.memory.items():
            if hasattr(type(net), "member_settings"):
                continue
            tensors = {f"{p}.{k}": v.contiguous() for p, m in net.modules().items() for k, v in m.state_dict().items()}
            out.append({"kind": net.kind, "key": key, "settings": net.settings, "fitted": net.fitted,
                        "fit_seconds": seconds, "weights": save_tensors(tensors)})
        return out

    def adopt(self, classes: list[type[Upstream]], payload: dict[str, Any]) -> None:
        """Keep a network of :meth:`payloads` in memory, so :meth:`get` finds it by its key.

        Raises:
            ModelFileError: a kind none of ``classes`` has, or weights that do not fit.
        """
        cls = next((c for c in classes if c.kind == payload["kind"]), None)
        if cls is None:
            raise ModelFileError(f"upstream network of kind {payload['kind']!r} where {[c.kind for c in classes]} was expected")
        where = f"upstream network {payload['key'][:16]}"
        try:
            weights = load_tensors(payload["weights"])
        except Exception as e:  # safetensors' own error type
            raise ModelFileError(f"{where}: unreadable weights ({e})") from None
        net = cls(**payload["settings"]).restore(payload["fitted"])
        load_modules(net.modules(), weights, where)
        for module in net.modules().values():
            module.eval()
        self._remember(payload["key"], net, float(payload["fit_seconds"]))

    def get(self, cls: type[Upstream], settings: dict[str, Any], x: torch.Tensor, labels: torch.Tensor | None = None,
            validation: torch.Tensor | None = None, validation_labels: torch.Tensor | None = None) -> tuple[Upstream, UpstreamInfo]:
        """The network of this kind trained with ``settings`` on this data: from memory, from disk,
        or trained now (and stored)."""
        key = upstream_key(cls, settings, x, labels, validation, validation_labels)
        path = self._path(cls, key)
        found = self.memory.get(key)
        if found is None and path is not None and path.is_dir() and not hasattr(cls, "member_settings"):
            found = self._from_disk(cls, key, path)
        if not distributed.all_agree(found is not None):  # under torchrun: all ranks train, or none
            found = None
        if found is not None:
            net, seconds = found
            self._remember(key, net, seconds)
            return net, UpstreamInfo(cls.kind, key, seconds, True, net.summary())
        if hasattr(cls, "member_settings"):  # a composite (an ensemble): each member is cached on its own
            got = [self.get(cls.member_cls, s, x, labels, validation, validation_labels)
                   for s in cls.member_settings(settings)]
            net = cls(**settings).assemble([m for m, _ in got])
            seconds = sum(info.fit_seconds for _, info in got)
            self._remember(key, net, seconds)
            return net, UpstreamInfo(cls.kind, key, seconds, all(info.reused for _, info in got), net.summary())
        start = time.perf_counter()
        net = cls(**settings).fit(x, labels, validation, validation_labels)
        seconds = time.perf_counter() - start
        self.trained += 1
        if path is not None and distributed.is_main():  # under torchrun, rank 0 alone writes
            tensors = {f"{p}.{k}": v for p, m in net.modules().items() for k, v in m.state_dict().items()}
            write_model(path, NETWORK_FORMAT, {"kind": cls.kind, "key": key, "settings": net.settings,
                                               "fitted": net.fitted, "fit_seconds": seconds,
                                               "oodscope_version": oodscope.__version__}, tensors)
        self._remember(key, net, seconds)
        return net, UpstreamInfo(cls.kind, key, seconds, False, net.summary())

