"""A network as the flat list of operations the verifiers understand.

:func:`as_layers` turns a :class:`~oodscope.upstream.classifier.Classifier` (its input
normalisation followed by its LeNet; recognised by duck typing, any object with a ``net`` and
``fitted["mean"]``, ``fitted["std"]``, so that ``verify`` never imports ``detectors``), or an
``nn.Module`` with an optional per-channel mean and std, into a list of :class:`Op` in float64:
per-channel affine maps (the normalisation ``(x - mean) / std``), ``Conv2d`` (any stride,
padding, dilation; groups 1; zero padding; bias or not), ``Linear``, ``ReLU``, ``MaxPool2d``
(kernel = stride, no padding, dilation 1, floor mode) and ``Flatten`` (from dimension 1).
``Identity`` and ``Dropout`` are left out (the identity in evaluation mode, the network that is
verified), ``nn.Sequential`` is followed recursively and a LeNet (:class:`oodscope.nets.LeNet`)
as its ``taps``: block1, block2, hidden, fc. Anything else (batch norm, average pooling, residual
networks, attention, other activations ...) raises
:class:`~oodscope.errors.InputError` naming the module type.

Each affine op (:class:`Affine`) gives its linear part, the linear part with absolute weights
(for interval arithmetic) and its transpose (for back-substitution of linear bounds, without
materialising the matrix of a convolution: ``conv_transpose2d``), also on a window of a feature
map (coefficients of neurons that only reach part of the input stay on that part).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from oodscope.errors import InputError

DTYPE = torch.float64
Window = tuple[int, int] | None  # top-left (row, column) of a window of a feature map; None: flat / whole
Stats = Sequence[float] | torch.Tensor | None  # per-channel mean or std of the input normalisation

SUPPORTED = ("Conv2d (groups 1, zero padding), Linear, ReLU, MaxPool2d (kernel = stride, no padding), "
             "Flatten, Identity, Dropout, Sequential, LeNet, per-channel normalisation")


class Op:
    """One operation of a verified network, on a batch (leading axis) of float64 tensors."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class Affine(Op):
    """``y = L(x) + b`` with a linear map ``L``."""

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        """``L(x)``."""
        raise NotImplementedError

    def abs_linear(self, x: torch.Tensor) -> torch.Tensor:
        """``|L|(x)``: the linear map with the absolute values of its weights."""
        raise NotImplementedError

    def transpose(self, coef: torch.Tensor, in_shape: tuple[int, ...]) -> torch.Tensor:
        """``L^T`` applied to each row of ``coef`` (Q, *out_shape): coefficients on the output
        become coefficients on the input, (Q, *in_shape)."""
        raise NotImplementedError

    def bias_term(self, coef: torch.Tensor) -> torch.Tensor:
        """``<coef_q, b>`` for each row q of ``coef`` (Q, *out_shape), shape (Q,)."""
        raise NotImplementedError

    def transpose_window(self, coef: torch.Tensor, offset: Window, in_shape: tuple[int, ...]) -> tuple[torch.Tensor, Window]:
        """:meth:`transpose` of coefficients on a window of the output starting at ``offset``
        (rows, columns; ``None``: the whole, flat output): the coefficients on the input and the
        offset of their window. By default (maps that keep positions) the same window."""
        return self.transpose(coef, in_shape), offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._add_bias(self.linear(x))

    def _add_bias(self, out: torch.Tensor) -> torch.Tensor:
        """``out + b``."""
        raise NotImplementedError

    def rows(self, index: torch.Tensor, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows of ``L`` (Q, *in_shape) and entries of ``b`` (Q,) of the output neurons at flat
        indices ``index`` (Q,) into ``out_shape``. By default the transpose of one-hot rows."""
        onehot = torch.zeros(index.numel(), *out_shape, dtype=DTYPE)
        onehot.view(index.numel(), -1)[torch.arange(index.numel()), index] = 1.0
        return self.transpose(onehot, in_shape), self.bias_term(onehot)


class ChannelAffine(Affine):
    """``y[:, c] = scale[c] * x[:, c] + shift[c]`` (the normalisation ``(x - mean) / std``)."""

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor) -> None:
        self.scale, self.shift = scale.to(DTYPE).flatten(), shift.to(DTYPE).flatten()

    def _view(self, t: torch.Tensor, ndim: int) -> torch.Tensor:
        return t.view(-1, *([1] * (ndim - 2)))

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim < 2 or x.shape[1] != self.scale.numel():
            raise InputError(f"verify: normalisation of {self.scale.numel()} channels got input of shape {tuple(x.shape)}")
        return x * self._view(self.scale, x.ndim)

    def abs_linear(self, x: torch.Tensor) -> torch.Tensor:
        return x * self._view(self.scale.abs(), x.ndim)

    def transpose(self, coef: torch.Tensor, in_shape: tuple[int, ...]) -> torch.Tensor:
        return coef * self._view(self.scale, coef.ndim)

    def bias_term(self, coef: torch.Tensor) -> torch.Tensor:
        return (coef * self._view(self.shift, coef.ndim)).flatten(1).sum(1)

    def _add_bias(self, out: torch.Tensor) -> torch.Tensor:
        return out + self._view(self.shift, out.ndim)


class Conv(Affine):
    """A 2-d convolution (cross-correlation) with zero padding."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, stride: tuple[int, int],
                 padding: tuple[int, int], dilation: tuple[int, int]) -> None:
        self.weight = weight.detach().to(dtype=DTYPE, memory_format=torch.contiguous_format).cpu()
        out = self.weight.shape[0]
        self.bias = torch.zeros(out, dtype=DTYPE) if bias is None else bias.detach().to(DTYPE).cpu().flatten()
        self.stride, self.padding, self.dilation = stride, padding, dilation

    def _conv(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != weight.shape[1]:
            raise InputError(f"verify: Conv2d of {weight.shape[1]} input channels got input of shape {tuple(x.shape)}")
        return F.conv2d(x, weight, None, self.stride, self.padding, self.dilation)

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv(x, self.weight)

    def abs_linear(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv(x, self.weight.abs())

    def transpose(self, coef: torch.Tensor, in_shape: tuple[int, ...]) -> torch.Tensor:
        (s0, s1), (p0, p1), (d0, d1) = self.stride, self.padding, self.dilation
        k0, k1 = self.weight.shape[2:]
        h, w = in_shape[1:]
        ho, wo = coef.shape[2:]
        extra = (h + 2 * p0 - d0 * (k0 - 1) - 1 - (ho - 1) * s0, w + 2 * p1 - d1 * (k1 - 1) - 1 - (wo - 1) * s1)
        return F.conv_transpose2d(coef, self.weight, None, self.stride, self.padding, extra, 1, self.dilation)

    def bias_term(self, coef: torch.Tensor) -> torch.Tensor:
        return coef.sum(dim=(2, 3)) @ self.bias

    def _add_bias(self, out: torch.Tensor) -> torch.Tensor:
        return out + self.bias.view(1, -1, 1, 1)

    def transpose_window(self, coef: torch.Tensor, offset: Window, in_shape: tuple[int, ...]) -> tuple[torch.Tensor, Window]:
        """The transpose on a window: ``coef`` (Q, C_out, h, w) sits on output rows and columns from
        ``offset``; the result covers the input positions it reaches (clipped to the input, the
        rest falls on zero padding) and their offset."""
        (s0, s1), (p0, p1) = self.stride, self.padding
        r0, c0 = offset if offset is not None else (0, 0)
        full = F.conv_transpose2d(coef, self.weight, None, self.stride, 0, 0, 1, self.dilation)
        a0, b0 = r0 * s0 - p0, c0 * s1 - p1  # input position of full[..., 0, 0]
        h, w = in_shape[1:]
        t0, u0 = max(0, -a0), max(0, -b0)
        t1, u1 = min(full.shape[2], h - a0), min(full.shape[3], w - b0)
        return full[:, :, t0:t1, u0:u1], (a0 + t0, b0 + u0)


class Dense(Affine):
    """A fully connected layer on flat vectors (N, D)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        self.weight = weight.detach().to(DTYPE).cpu()
        self.bias = torch.zeros(self.weight.shape[0], dtype=DTYPE) if bias is None else bias.detach().to(DTYPE).cpu()

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.weight.shape[1]:
            raise InputError(f"verify: Linear of {self.weight.shape[1]} inputs needs flat input (N, "
                             f"{self.weight.shape[1]}), got shape {tuple(x.shape)} (add a Flatten)")
        return x @ self.weight.T

    def abs_linear(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.abs().T

    def transpose(self, coef: torch.Tensor, in_shape: tuple[int, ...]) -> torch.Tensor:
        return coef @ self.weight

    def bias_term(self, coef: torch.Tensor) -> torch.Tensor:
        return coef @ self.bias

    def _add_bias(self, out: torch.Tensor) -> torch.Tensor:
        return out + self.bias

    def rows(self, index: torch.Tensor, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.weight[index], self.bias[index]


class Relu(Op):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp_min(0.0)


class MaxPool(Op):
    """Max pooling over non-overlapping windows (kernel = stride, no padding, floor mode)."""

    def __init__(self, kernel: tuple[int, int]) -> None:
        self.kernel = kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise InputError(f"verify: MaxPool2d needs input (N, C, H, W), got shape {tuple(x.shape)}")
        return F.max_pool2d(x, self.kernel, self.kernel)


class Flatten(Op):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _refuse(m: nn.Module, why: str = "") -> InputError:
    detail = f" ({why})" if why else ""
    return InputError(f"verify: {type(m).__name__} layers are not supported{detail} (supported: {SUPPORTED})")


def module_ops(m: nn.Module) -> list[Op]:
    """The operations of module ``m`` in evaluation mode; :class:`InputError` for anything else."""
    from oodscope.nets.lenet import LeNet

    t = type(m)
    if t is LeNet:
        return [op for part in (m.block1, m.block2, m.hidden, m.fc) for op in module_ops(part)]
    if t is nn.Sequential:
        return [op for child in m for op in module_ops(child)]
    if t in (nn.Identity, nn.Dropout):
        return []
    if t is nn.ReLU:
        return [Relu()]
    if t is nn.Flatten:
        if m.start_dim != 1 or m.end_dim != -1:
            raise _refuse(m, f"only Flatten(start_dim=1, end_dim=-1), got start_dim={m.start_dim}, end_dim={m.end_dim}")
        return [Flatten()]
    if t is nn.Linear:
        return [Dense(m.weight, m.bias)]
    if t is nn.Conv2d:
        if m.groups != 1 or m.padding_mode != "zeros":
            raise _refuse(m, f"only groups=1 and zero padding, got groups={m.groups}, padding_mode={m.padding_mode!r}")
        if isinstance(m.padding, str) and m.padding != "valid":
            raise _refuse(m, f"padding={m.padding!r}: give the padding as numbers")
        padding = (0, 0) if isinstance(m.padding, str) else _pair(m.padding)
        return [Conv(m.weight, m.bias, _pair(m.stride), padding, _pair(m.dilation))]
    if t is nn.MaxPool2d:
        k, s = _pair(m.kernel_size), _pair(m.stride if m.stride is not None else m.kernel_size)
        if k != s or _pair(m.padding) != (0, 0) or _pair(m.dilation) != (1, 1) or m.ceil_mode or m.return_indices:
            raise _refuse(m, f"only kernel = stride, no padding, dilation 1, floor mode; got kernel {k}, stride {s}, "
                             f"padding {m.padding}, dilation {m.dilation}, ceil_mode {m.ceil_mode}")
        return [MaxPool(k)]
    raise _refuse(m)


def is_classifier_like(model: Any) -> bool:
    """Whether ``model`` looks like a :class:`~oodscope.upstream.classifier.Classifier` (an
    upstream network: ``fitted``, with the input ``mean`` and ``std`` once trained, and ``net``).
    Duck-typed, so that ``verify`` (beside ``nets``, below ``detectors``) never imports the detectors."""
    return not isinstance(model, nn.Module) and hasattr(model, "fitted")


def as_layers(model: Any, mean: Sequence[float] | torch.Tensor | None = None,
              std: Sequence[float] | torch.Tensor | None = None) -> list[Op]:
    """The operations of a Classifier (its normalisation, then its network), of an ``nn.Module``
    preceded by ``(x - mean) / std`` per channel when ``mean`` and ``std`` are given, or a list
    of :class:`Op` as it is."""
    if isinstance(model, list) and all(isinstance(op, Op) for op in model):
        return model
    if is_classifier_like(model):
        if getattr(model, "net", None) is None or not model.fitted:
            raise InputError("verify: the classifier is not fitted")
        mean, std, model = model.fitted["mean"], model.fitted["std"], model.net
    if not isinstance(model, nn.Module):
        raise InputError(f"verify: expected a Classifier, an nn.Module or a list of verify ops, got {type(model).__name__}")
    ops = module_ops(model)
    if (mean is None) != (std is None):
        raise InputError("verify: give both mean and std, or neither")
    if mean is not None:
        m, s = torch.as_tensor(mean, dtype=DTYPE).flatten(), torch.as_tensor(std, dtype=DTYPE).flatten()
        if m.shape != s.shape or bool((s <= 0).any()):
            raise InputError(f"verify: mean and std need one positive std per channel, got {m.tolist()} and {s.tolist()}")
        ops = [ChannelAffine(1.0 / s, -m / s), *ops]
    if not ops:
        raise InputError("verify: the network has no operations")
    return ops


def normalized(x: torch.Tensor, mean: Stats, std: Stats) -> torch.Tensor:
    """``(x - mean) / std`` per channel (axis 1) in ``x``'s dtype and device; ``x`` itself when
    both are ``None``."""
    if mean is None and std is None:
        return x
    if mean is None or std is None:
        raise InputError("verify: give both mean and std, or neither")
    shape = (1, -1, *([1] * (x.ndim - 2)))
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(shape)
    return (x - m) / torch.as_tensor(std, dtype=x.dtype, device=x.device).view(shape)


def forward(ops: Sequence[Op], x: torch.Tensor) -> torch.Tensor:
    """The network's output (float64) on a batch ``x``."""
    x = x.to(DTYPE)
    for op in ops:
        x = op.forward(x)
    return x


def shapes(ops: Sequence[Op], in_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Shapes (without the batch axis) of the input and of each op's output, ``len(ops) + 1``."""
    x = torch.zeros(1, *in_shape, dtype=DTYPE)
    out = [tuple(in_shape)]
    for op in ops:
        try:
            x = op.forward(x)
        except RuntimeError as e:
            raise InputError(f"verify: {type(op).__name__} cannot take input of shape {tuple(x.shape[1:])}: {e}") from e
        out.append(tuple(x.shape[1:]))
    return out
