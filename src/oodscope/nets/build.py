"""Building a backbone by name: the Wide-ResNet of Zagoruyko & Komodakis ("Wide residual
networks", BMVC 2016) or the CPU-fast small ResNet, both with the taps of
:class:`~oodscope.nets.backbone.Backbone`."""

from __future__ import annotations

from oodscope.errors import InputError
from oodscope.nets.backbone import Backbone
from oodscope.nets.small_resnet import SmallResNet
from oodscope.nets.wide_resnet import WideResNet


def build_backbone(name: str, in_channels: int, num_classes: int, **kw) -> Backbone:
    """``wrn`` (Wide-ResNet, kw depth/width/dropout) or ``small`` (kw widths)."""
    if name == "wrn":
        return WideResNet(in_channels, num_classes, **kw)
    if name == "small":
        return SmallResNet(in_channels, num_classes, **kw)
    raise InputError(f"unknown backbone {name!r}; known: wrn, small")
