"""Pure torch modules: backbones exposing taps z1..z4, and the heads trained on them."""

from oodscope.nets.backbone import TAP_NAMES, Backbone
from oodscope.nets.build import build_backbone
from oodscope.nets.layer_head import LayerHead
from oodscope.nets.lenet import LeNet
from oodscope.nets.neighbour_bank import NeighbourBank
from oodscope.nets.small_resnet import SmallResNet
from oodscope.nets.wide_resnet import WideResNet

__all__ = ["TAP_NAMES", "Backbone", "build_backbone", "LayerHead", "LeNet", "NeighbourBank", "SmallResNet", "WideResNet"]
