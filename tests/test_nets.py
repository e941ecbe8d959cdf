import pytest
import torch

from oodscope.nets import LayerHead, SmallResNet, WideResNet


@pytest.mark.parametrize("size", [8, 28, 32])
def test_small_resnet_taps(size):
    net = SmallResNet(1, 8, (8, 16, 32)).eval()
    t = net.taps(torch.rand(2, 1, size, size))
    assert t["z1"].shape == (2, 8, size, size)
    assert t["z2"].shape[1] == 16 and t["z3"].shape[1] == 32
    assert t["z4"].shape == (2, 32) and t["logits"].shape == (2, 8)


def test_wide_resnet_16_4_shapes_and_depth():
    net = WideResNet(3, 72, depth=16, width=4, dropout=0.3).eval()
    t = net.taps(torch.rand(2, 3, 32, 32))
    assert t["z1"].shape == (2, 64, 32, 32)
    assert t["z2"].shape == (2, 128, 16, 16)
    assert t["z3"].shape == (2, 256, 8, 8)
    assert t["z4"].shape == (2, 256)
    assert t["logits"].shape == (2, 72)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) == 1 + 6 * 2  # stem + 3 groups x 2 blocks x 2 convs (n = (16 - 4) / 6 = 2)
    with pytest.raises(ValueError):
        WideResNet(3, 4, depth=15)


def test_layer_head_follows_table1_for_wrn_taps():
    shapes = {"z1": (64, 32, 32), "z2": (128, 16, 16), "z3": (256, 8, 8), "z4": (256,)}
    head = LayerHead(shapes)
    convs = [m for m in head.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0]) for c in convs] == [(64, 64, 4), (192, 64, 4), (320, 64, 4)]
    lin = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    assert (lin[0].in_features, lin[0].out_features) == (1024 + 256, 1024)
    taps = {k: torch.rand(3, *s) for k, s in shapes.items()}
    assert head.eval()(taps).shape == (3,)


@pytest.mark.parametrize("taps", [["z4"], ["softmax"], ["z3"], ["z1"], ["z2", "z3", "z4", "ptrue"]])
def test_layer_head_ablation_shapes(taps):
    all_shapes = {"z1": (8, 28, 28), "z2": (16, 14, 14), "z3": (32, 7, 7), "z4": (32,), "softmax": (8,), "ptrue": (1,)}
    shapes = {k: all_shapes[k] for k in taps}
    head = LayerHead(shapes, width=8, hidden=16).eval()
    out = head({k: torch.rand(4, *s) for k, s in shapes.items()})
    assert out.shape == (4,) and torch.isfinite(out).all()
