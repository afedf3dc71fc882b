"""Crops seen through a random shallow network (data.randconv, GIN)."""

import numpy as np
import pytest

from nucleiseg_lib.data.dataset import NucleiDataset
from nucleiseg_lib.data.randconv import mix_random_convolution, random_conv_net
from nucleiseg_lib.training import get_recipe


def disc_crop():
    """A standardised 3-channel crop: one bright disc (radius 10) on a flat background, and its labels."""
    yy, xx = np.mgrid[:48, :48]
    disc = (yy - 24) ** 2 + (xx - 24) ** 2 < 10 ** 2
    x = np.stack([disc * 1.0, disc * 0.5, disc * 0.2]).astype(np.float32)
    return ((x - x.mean()) / x.std()).astype(np.float32), disc


def test_one_layer_is_affine_and_four_are_not():
    x, _ = disc_crop()
    f = lambda v, layers: random_conv_net(v, np.random.default_rng(7), layers=layers)  # the same weights each call
    zero = np.zeros_like(x)
    np.testing.assert_allclose(f(2 * x, 1) - f(x, 1), f(x, 1) - f(zero, 1), atol=1e-5)
    nets = [lambda v, s=s: random_conv_net(v, np.random.default_rng(s)) for s in range(3)]  # 4 layers
    assert not any(np.allclose(g(2 * x) - g(x), g(x) - g(zero), atol=1e-3) for g in nets)
    assert f(x, 4).shape == x.shape and f(x, 4).dtype == np.float32


def test_flat_parts_stay_flat_and_edges_stay_put():
    x, disc = disc_crop()
    from scipy import ndimage
    square = np.ones((3, 3), bool)                                   # 4 layers of 3x3 see 4 px at most
    inner = ndimage.binary_erosion(disc, square, iterations=4)
    outer = ~ndimage.binary_dilation(disc, square, iterations=4)
    for seed in range(5):
        y = mix_random_convolution(x, np.random.default_rng(seed))
        assert y.shape == x.shape and y.dtype == np.float32
        assert abs(y.mean()) < 1e-4 and abs(y.std() - 1) < 1e-3     # standardised again, as prediction's input
        for c in range(3):
            assert np.ptp(y[c][inner]) < 1e-4 and np.ptp(y[c][outer]) < 1e-4
    np.testing.assert_array_equal(mix_random_convolution(x, np.random.default_rng(3)),
                                  mix_random_convolution(x, np.random.default_rng(3)))
    assert not np.array_equal(mix_random_convolution(x, np.random.default_rng(3)),
                              mix_random_convolution(x, np.random.default_rng(4)))


def test_dataset_mixes_only_when_asked_and_keeps_the_targets():
    _, disc = disc_crop()
    image = np.where(disc[..., None], 0.8, 0.05).astype(np.float32) * np.ones(3, np.float32)
    labels = disc.astype(np.int32)
    kw = dict(size=32, augment=True, targets=("mask", "contour"), scale=(1, 1))
    plain = NucleiDataset({"a": (image, labels)}, ["a"], **kw)
    off = NucleiDataset({"a": (image, labels)}, ["a"], gin=0.0, **kw)
    mixed = NucleiDataset({"a": (image, labels)}, ["a"], gin=1.0, **kw)
    for i in range(3):
        (x0, y0), (x1, y1), (x2, y2) = plain[i], off[i], mixed[i]
        assert np.array_equal(x0.numpy(), x1.numpy()) and np.array_equal(y0.numpy(), y1.numpy())
        assert not np.allclose(x0.numpy(), x2.numpy())
    with pytest.raises(ValueError, match="gin"):
        NucleiDataset({"a": (image, labels)}, ["a"], input="nuclei", gin=0.5)
    with pytest.raises(ValueError, match="gin"):
        NucleiDataset({"a": (image, labels)}, ["a"], norm="image", gin=0.5)


def test_recipe_checks_the_gin_chance():
    assert get_recipe("cpu").gin == 0.0
    get_recipe("cpu", gin=0.5).check()
    with pytest.raises(ValueError, match="gin=1.5"):
        get_recipe("cpu", gin=1.5).check()
    with pytest.raises(ValueError, match="gin=0.5"):
        get_recipe("cpu", gin=0.5, norm="image").check()
