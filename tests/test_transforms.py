import pytest
import torch

from oodscope.errors import InputError
from oodscope.transforms import TRANSFORM_SETS, GeometricTransforms
from oodscope.transforms.augment import random_affine


def test_set_sizes():
    assert len(GeometricTransforms("geom72")) == 72
    assert len(GeometricTransforms("flip-rot4")) == 8
    assert len(GeometricTransforms("rot4")) == 4
    # all 72 GEOM transformations are distinct
    assert len(set(TRANSFORM_SETS["geom72"])) == 72


def test_transformations_distinct_on_an_asymmetric_image():
    x = torch.rand(1, 1, 16, 16)
    T = GeometricTransforms("geom72")
    outs = torch.stack([T.one(x, k)[0] for k in range(len(T))]).flatten(1)
    d = torch.cdist(outs, outs)
    d.fill_diagonal_(float("inf"))
    assert d.min() > 1e-3


def test_rotation_and_flip_are_exact():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    T = GeometricTransforms("flip-rot4")
    for k, tr in enumerate(T.transforms):
        expected = torch.flip(x, dims=(-1,)) if tr.flip else x
        expected = torch.rot90(expected, tr.rot, dims=(-2, -1))
        assert torch.equal(T.one(x, k), expected)


def test_translation_shifts_content_by_a_quarter():
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 14, 14] = 1.0
    T = GeometricTransforms("geom72")
    k = next(i for i, t in enumerate(T.transforms) if not t.flip and t.rot == 0 and t.dx == 1 and t.dy == 0)
    y = T.one(x, k)
    assert y[0, 0, 14, 14 + 7] == 1.0 and y.sum() == 1.0


def test_apply_per_sample_matches_one():
    T = GeometricTransforms("geom72")
    x = torch.rand(20, 3, 12, 12)
    idx = torch.randint(0, 72, (20,))
    y = T.apply(x, idx)
    for i in range(20):
        assert torch.equal(y[i : i + 1], T.one(x[i : i + 1], int(idx[i])))


def test_non_square_rotation_and_unknown_set_are_clear_errors():
    with pytest.raises(InputError, match="square"):
        GeometricTransforms("rot4").one(torch.rand(1, 1, 8, 10), 1)
    with pytest.raises(InputError, match="unknown transformation set"):
        GeometricTransforms("nope")


def test_random_affine_keeps_shape_and_background():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(8, 1, 28, 28)
    x[:, :, 10:18, 12:16] = 1
    y = random_affine(x, g)
    assert y.shape == x.shape
    assert torch.allclose(y[:, :, 0, 0], torch.zeros(8, 1))
    assert not torch.allclose(y, x)


def test_cifar_augmentation_is_random_per_image_in_range_and_seeded():
    from oodscope.transforms.augment import cifar_augment, color_jitter, gaussian_blur, random_resized_crop

    x = torch.rand(16, 3, 32, 32)
    a = cifar_augment(x, torch.Generator().manual_seed(0))
    b = cifar_augment(x, torch.Generator().manual_seed(0))
    c = cifar_augment(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1
    # each step changes the images, and differently per image
    for f in (random_resized_crop, color_jitter, gaussian_blur):
        y = f(x, torch.Generator().manual_seed(0))
        assert y.shape == x.shape and not torch.allclose(y, x)
    # blur keeps a constant image constant and lowers the variance of noise
    flat = torch.full((2, 3, 8, 8), 0.5)
    assert torch.allclose(gaussian_blur(flat), flat, atol=1e-6)
    assert gaussian_blur(x, torch.Generator().manual_seed(0)).var() < x.var()


def test_geom_trains_with_cifar_augmentation_on_rgb_only():
    import numpy as np

    from oodscope.detectors import GeomDetector
    from oodscope.errors import InputError as IE

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (16, 3, 16, 16), dtype=np.uint8)
    det = GeomDetector(widths=[4, 4, 4], epochs=1, augment="cifar", progress=False).fit(rgb)
    assert det.score(rgb[:2]).shape == (2,)
    with pytest.raises(IE, match="RGB"):
        GeomDetector(widths=[4, 4, 4], epochs=1, augment="cifar", progress=False).fit(rgb[:, :1])
