"""The registry of detectors: each detector registers itself where it is defined (``@register``).

``registry()`` lists them in display order, :func:`create` builds one by name (under a preset),
:func:`settings_for` gives its settings under a preset, :func:`load` reads a saved one. Registering
checks the declarations: named presets of known settings, a one-line description of every setting.
"""

from __future__ import annotations

import copy
import os
from typing import Any

import torch

from oodscope.detectors.base import FORMAT, PRESET_NAMES, Detector
from oodscope.model_files import read_model
from oodscope.settings import check_settings
from oodscope.errors import InputError, ModelFileError

_REGISTRY: dict[str, type[Detector]] = {}


def register(cls: type[Detector]) -> type[Detector]:
    """Class decorator: make ``cls`` known under ``cls.method``; its presets must be named ones and
    must name known settings, and every setting needs a one-line description (``help``)."""
    if not cls.method or cls.method in _REGISTRY and _REGISTRY[cls.method] is not cls:
        raise ValueError(f"detector method name {cls.method!r} is empty or taken")
    check_help(cls)
    stray = sorted(set(cls.presets) - set(PRESET_NAMES))
    if stray:
        raise ValueError(f"{cls.method}: unknown preset names {stray}; use {PRESET_NAMES}")
    for name, values in cls.presets.items():
        check_settings(f"{cls.method} preset {name!r}", cls.defaults, values, cls.choices)
    _REGISTRY[cls.method] = cls
    return cls


def check_help(cls: type[Detector]) -> None:
    """Refuse a detector class a setting of which has no one-line description.

    Raises:
        ValueError: naming the detector and the settings.
    """
    described = cls.settings_help()
    missing = [k for k in cls.defaults if not str(described.get(k, "")).strip()]
    if missing:
        raise ValueError(f"{cls.method or cls.__name__}: settings without a description: {missing}; "
                         f"describe each in one line in the class's help = {{name: text}}")
    multiline = [k for k, text in described.items() if "\n" in text]
    if multiline:
        raise ValueError(f"{cls.method or cls.__name__}: descriptions of {multiline} are not one line")


def registry() -> dict[str, type[Detector]]:
    """Every registered detector by method name, in display order."""
    return dict(sorted(_REGISTRY.items(), key=lambda kv: (kv[1].order, kv[0])))


def detector_class(method: str) -> type[Detector]:
    """The class registered as ``method``.

    Raises:
        InputError: unknown method (the message lists the known ones).
    """
    if method not in _REGISTRY:
        raise InputError(f"unknown method {method!r}; known: {', '.join(registry())}")
    return _REGISTRY[method]


def create(method: str, preset: str | None = None, **config: Any) -> Detector:
    """A new, unfitted detector ``method``: its defaults, then ``preset``'s settings (None: none),
    then ``config`` (as :func:`settings_for` merges them), e.g. ``create("geom", preset="smoke", epochs=3)``.

    Raises:
        InputError: unknown method or preset (naming the known ones), unknown setting or bad value.
    """
    if preset is None:
        return detector_class(method)(**config)
    return detector_class(method)(**settings_for(method, preset, overrides=config, strict=True))


def settings_for(method: str, preset: str, device: str | None = None, overrides: dict[str, Any] | None = None,
                 strict: bool = False) -> dict[str, Any]:
    """The settings ``method`` gets under ``preset``: the preset's entry, then ``device`` (if the
    method has that setting), then ``overrides``. With ``strict``, an override the method does not
    know is an error; otherwise it is left out (overrides meant for other methods of a grid).

    Raises:
        InputError: unknown method or preset; with ``strict``, an unknown setting.
    """
    cls = detector_class(method)
    if preset not in PRESET_NAMES:
        raise InputError(f"unknown preset {preset!r}; known: {', '.join(PRESET_NAMES)}")
    out = copy.deepcopy(cls.presets.get(preset, {}))
    if device is not None and "device" in cls.defaults:
        out["device"] = device
    overrides = overrides or {}
    if strict:
        check_settings(method, cls.defaults, overrides, cls.choices)
    out.update({k: copy.deepcopy(v) for k, v in overrides.items() if k in cls.defaults})
    return out


def load(path: str | os.PathLike[str], device: str | None = None, model: torch.nn.Module | None = None) -> Detector:
    """Load a detector saved with ``Detector.save``; verifies the weights' checksum, never unpickles.

    ``device`` (e.g. "cpu") overrides the device the model was trained on; a model trained on a
    GPU loads on the CPU when no GPU is present. ``model``: for a detector fitted on a model of yours
    (:class:`~oodscope.upstream.adapter.ModelAdapter`), that model again; a model with other weights
    is refused (the detector keeps a fingerprint of them, never the weights).
    """
    meta, weights = read_model(path, FORMAT, ("method", "config", "fitted"))
    config = meta.get("config")
    if isinstance(config, dict):
        saved = str(config.get("device", "cpu"))
        if device is None and saved.startswith("cuda") and not torch.cuda.is_available():
            device = "cpu"
        if device is not None and "device" in config:
            config["device"] = device
    cls = _REGISTRY.get(meta["method"])
    if cls is None:
        raise ModelFileError(f"{path}: unknown method {meta['method']!r} in model config")
    try:
        return cls.from_saved(meta, weights, os.fspath(path), model)
    except InputError as e:
        raise ModelFileError(f"{path}: invalid model config ({e})") from None
