import copy

import numpy as np
import pytest
import torch

from oodscope.nets import LayerHead, NeighbourBank, SmallResNet, WideResNet
from oodscope.nets.neighbour_bank import grid_pool


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


def test_layer_head_runs_channels_last_with_the_same_results():
    torch.manual_seed(0)
    shapes = {"z1": (4, 12, 12), "z2": (6, 6, 6), "z4": (5,)}
    head = LayerHead(shapes, width=8, hidden=16).eval()
    assert head.blocks[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    taps = {k: torch.randn(3, *s) for k, s in shapes.items()}
    reference = copy.deepcopy(head).to(memory_format=torch.contiguous_format)
    reference.forward = lambda t: _plain_forward(reference, t)
    with torch.no_grad():
        torch.testing.assert_close(head(taps), reference(taps), rtol=1e-5, atol=1e-6)


def _plain_forward(head: LayerHead, taps: dict) -> torch.Tensor:
    """LayerHead's computation written out in the default memory format."""
    h = None
    for k, block in zip(head.spatial, head.blocks):
        z = taps[k]
        if h is not None:
            z = torch.cat([h, torch.nn.functional.adaptive_avg_pool2d(z, h.shape[-2:])], dim=1)
        h = block(z.contiguous())
    parts = [torch.nn.functional.adaptive_max_pool2d(h, 4).flatten(1)] + [taps[k].flatten(1) for k in head.vector]
    return head.mlp(torch.cat(parts, dim=1)).squeeze(1)


def test_layer_head_block_equals_conv_bn_relu_maxpool_in_value_and_gradient():
    torch.manual_seed(0)
    head = LayerHead({"z1": (3, 10, 10)}, width=8, hidden=16).train()
    conv, bn = head.blocks[0][0], head.blocks[0][1]
    with torch.no_grad():
        bn.weight.copy_(torch.randn(8))  # negative scales too: ReLU must still commute with the max
        bn.bias.copy_(torch.randn(8))
    table1 = torch.nn.Sequential(copy.deepcopy(conv), copy.deepcopy(bn), torch.nn.ReLU(), torch.nn.MaxPool2d(2))
    x = torch.randn(4, 3, 10, 10)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = head.blocks[0](a), table1(b)
    assert torch.equal(ya, yb)
    w = torch.randn_like(ya)
    (ya * w).sum().backward()
    (yb * w).sum().backward()
    assert torch.equal(a.grad, b.grad)
    assert torch.equal(conv.weight.grad, table1[0].weight.grad)


@pytest.mark.parametrize(("h", "w", "pool"), [(14, 14, 2), (7, 7, 2), (15, 9, 3), (4, 4, 1), (5, 8, 4)])
def test_grid_pool_equals_adaptive_average_pooling(h, w, pool):
    """grid_pool is written with slices (ONNX-safe for any size) and must give adaptive pooling's cells."""
    t = torch.randn(3, 5, h, w)
    np.testing.assert_allclose(grid_pool(t, pool).numpy(),
                               torch.nn.functional.adaptive_avg_pool2d(t, pool).flatten(1).numpy(), rtol=1e-5, atol=1e-6)
    v = torch.randn(3, 7)
    assert grid_pool(v, pool) is v


def test_neighbour_bank_distance_is_the_kth_euclidean_distance_of_the_concatenated_views():
    """Summing per-view cosines then taking the k-th distance equals a brute-force kNN on the unit
    vectors of the concatenated, per-view-normalised (pooled) features."""
    g = torch.Generator().manual_seed(0)
    ref = [torch.randn(20, 4, 6, 6, generator=g) for _ in range(3)]
    query = [torch.randn(5, 4, 6, 6, generator=g) for _ in range(3)]
    bank = NeighbourBank(3, 20, 16, pool=2)
    for v in range(3):
        bank.features[v] = bank.embed(ref[v])
    got = bank.distance(sum(bank.similarity(query[v], v) for v in range(3)), k=4)

    def cat(views):
        return torch.nn.functional.normalize(torch.cat([torch.nn.functional.normalize(
            torch.nn.functional.adaptive_avg_pool2d(m, 2).flatten(1), dim=1) for m in views], 1), dim=1)

    want = torch.cdist(cat(query), cat(ref)).topk(4, dim=1, largest=False).values[:, -1]
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-5)
