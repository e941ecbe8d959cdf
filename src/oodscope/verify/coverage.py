"""Neuron coverage (Pei, Cao, Yang & Jana, "DeepXplore: automated whitebox testing of deep learning
systems", SOSP 2017): the share of a network's neurons that a set of test inputs activates.

For a test set ``T`` and threshold ``t``,

    NCov(T) = |{n : ∃ x ∈ T, out(n, x) > t}| / |N|,

per layer and over all layers together. The layers are the outputs of the network's ``nn.ReLU``
modules (a module called several times in one forward pass counts once per call). ``unit``:

* ``"channel"`` (the default, as DeepXplore's code treats convolutional layers): each channel of a
  feature map is one neuron, its output the mean over the positions; units of flat layers are
  neurons as they are;
* ``"position"``: every channel × position of a feature map is a neuron.

``scale`` (default on, as DeepXplore): the layer's output for one input is min-max scaled to
[0, 1] over all its elements, ``(a − min) / (max − min)``, before the channel means are taken;
a layer whose output is constant for that input (e.g. all zero) activates none of its neurons
there. Without scaling the raw activations are compared with ``t``.

Default threshold ``t = 0.25`` on the scaled activations (our choice; DeepXplore's code takes the
threshold as a parameter): it asks for a quarter of the layer's range on that input, whereas with
``t = 0`` every neuron above its layer's minimum counts, which ReLU layers reach almost at once.
Unscaled, ``t = 0`` means "the ReLU fired".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from oodscope.errors import InputError
from oodscope.verify.layers import is_classifier_like, normalized

UNITS = ("channel", "position")
THRESHOLD = 0.25


@dataclass
class NeuronCoverage:
    """Coverage of ``inputs`` images: per layer (ReLU module name, ``#k`` for its k-th call after
    the first) the mask of covered neurons (shape of one neuron per unit); ``threshold``, ``scale``,
    ``unit`` as computed."""

    threshold: float
    scale: bool
    unit: str
    inputs: int
    covered: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def per_layer(self) -> dict[str, float]:
        """Share of each layer's neurons covered, in [0, 1]."""
        return {k: float(v.float().mean()) for k, v in self.covered.items()}

    @property
    def counts(self) -> dict[str, tuple[int, int]]:
        """(covered, total) neurons per layer."""
        return {k: (int(v.sum()), v.numel()) for k, v in self.covered.items()}

    @property
    def overall(self) -> float:
        """Share of all neurons of all layers covered, in [0, 1]."""
        total = sum(v.numel() for v in self.covered.values())
        return sum(int(v.sum()) for v in self.covered.values()) / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "scale": self.scale, "unit": self.unit, "inputs": self.inputs,
                "overall": self.overall, "layers": {k: {"covered": c, "neurons": n} for k, (c, n) in self.counts.items()}}


def activated(a: torch.Tensor, threshold: float = THRESHOLD, scale: bool = True, unit: str = "channel") -> torch.Tensor:
    """Which neurons of one layer's outputs ``a`` (N, C, H, W) or (N, D) each input activates:
    (N, C) for channels (or (N, D)), (N, C, H, W) for positions."""
    if unit not in UNITS:
        raise InputError(f"coverage: unit must be one of {UNITS}, got {unit!r}")
    a = a.detach().float()
    if scale:
        flat = a.flatten(1)
        lo, hi = flat.min(1).values, flat.max(1).values
        span = hi - lo
        shape = (-1, *([1] * (a.ndim - 1)))
        a = torch.where(span.view(shape) > 0, (a - lo.view(shape)) / span.clamp_min(1e-30).view(shape), torch.zeros_like(a))
    if unit == "channel" and a.ndim > 2:
        a = a.flatten(2).mean(2)
    return a > threshold


def _network(model: Any) -> tuple[nn.Module, list[float] | None, list[float] | None]:
    if is_classifier_like(model):
        if getattr(model, "net", None) is None or not model.fitted:
            raise InputError("coverage: the classifier is not fitted")
        return model.net, model.fitted["mean"], model.fitted["std"]
    if isinstance(model, nn.Module):
        return model, None, None
    raise InputError(f"coverage: expected a Classifier or an nn.Module, got {type(model).__name__}")


def neuron_coverage(model: Any, x: torch.Tensor, threshold: float = THRESHOLD, scale: bool = True, unit: str = "channel",
                    batch_size: int = 256) -> NeuronCoverage:
    """DeepXplore's neuron coverage of images ``x`` (N, C, H, W) in [0, 1] on ``model``: a Classifier
    (its input normalisation, then its network) or an ``nn.Module`` taking ``x`` as it is. The
    network runs in evaluation mode in float32."""
    if unit not in UNITS:
        raise InputError(f"coverage: unit must be one of {UNITS}, got {unit!r}")
    net, mean, std = _network(model)
    relus = [(name or type(m).__name__, m) for name, m in net.named_modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise InputError(f"coverage: {type(net).__name__} has no nn.ReLU modules to cover")
    if not torch.is_tensor(x) or x.ndim < 2 or x.shape[0] == 0:
        raise InputError("coverage: x must be a non-empty batch tensor (N, ...)")
    device = next(net.parameters()).device
    seen: dict[str, torch.Tensor] = {}
    calls: dict[str, int] = {}

    def hook(name: str):
        def record(_m: nn.Module, _inp: Any, out: torch.Tensor) -> None:
            k = calls.get(name, 0)
            calls[name] = k + 1
            key = name if k == 0 else f"{name}#{k + 1}"
            hit = activated(out, threshold, scale, unit).any(0).cpu()
            seen[key] = hit if key not in seen else seen[key] | hit
        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in relus]
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad(), torch.autocast(device_type=device.type, enabled=False):
            for start in range(0, x.shape[0], batch_size):
                xb = x[start:start + batch_size].to(device).float()
                calls.clear()
                net(normalized(xb, mean, std))
    finally:
        for h in handles:
            h.remove()
        net.train(was_training)
    return NeuronCoverage(float(threshold), bool(scale), unit, int(x.shape[0]), seen)
