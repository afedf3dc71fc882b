"""Fluorescence crops rendered as stained tissue (data.render)."""

import numpy as np
import pytest
from skimage.color import rgb2hed

from nucleiseg_lib.data import dataset
from nucleiseg_lib.data.dataset import NucleiDataset
from nucleiseg_lib.data.render import render_stained, stain_vector
from nucleiseg_lib.data.transforms import is_bright_background
from nucleiseg_lib.training import get_recipe


def fluorescence_crop():
    """Three bright discs on a dark, slightly noisy background, and their labels."""
    rng = np.random.default_rng(0)
    image = rng.uniform(0.0, 0.05, (96, 96, 3)).astype(np.float32)
    labels = np.zeros((96, 96), np.int32)
    yy, xx = np.mgrid[:96, :96]
    for k, (cy, cx) in enumerate([(20, 20), (50, 60), (75, 25)], 1):
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < 10 ** 2
        image[disc] += 0.6
        labels[disc] = k
    return image, labels


def test_rendered_crop_has_dark_haematoxylin_nuclei_on_a_bright_slide():
    image, labels = fluorescence_crop()
    nuclei, far = labels > 0, labels == 0
    for seed in range(10):
        out = render_stained(image, labels, np.random.default_rng(seed))
        assert out.shape == image.shape and out.dtype == np.float32
        assert out.min() >= 0 and out.max() <= 1
        grey = out.mean(axis=2)
        assert grey[nuclei].mean() < grey[far].mean() - 0.1      # nuclei absorb the light
        assert is_bright_background(out)                       # so prediction inverts it, as real stained tissue
        h = rgb2hed(out)[..., 0]
        assert h[nuclei].mean() > h[far].mean()                 # and the haematoxylin is in them
    for empty in (np.zeros_like(labels), np.ones_like(labels)):   # no nucleus, or nothing but nucleus
        assert np.isfinite(render_stained(image, empty, np.random.default_rng(0))).all()
    a = render_stained(image, labels, np.random.default_rng(3))
    np.testing.assert_array_equal(a, render_stained(image, labels, np.random.default_rng(3)))
    assert not np.array_equal(a, render_stained(image, labels, np.random.default_rng(4)))


def test_stain_vectors_are_unit_and_near_their_base():
    rng = np.random.default_rng(0)
    for base in ([0.65, 0.70, 0.29], [0.07, 0.99, 0.11]):
        v = stain_vector(base, rng)
        assert abs(np.linalg.norm(v) - 1) < 1e-5 and (v > 0).all()
        assert v @ (np.array(base) / np.linalg.norm(base)) > 0.9


def test_dataset_renders_only_dark_background_crops(monkeypatch):
    image, labels = fluorescence_crop()
    plain = NucleiDataset({"a": (image, labels)}, ["a"], size=64, augment=True, targets=("mask",), scale=(1, 1))
    drawn = NucleiDataset({"a": (image, labels)}, ["a"], size=64, augment=True, targets=("mask",), scale=(1, 1),
                          render=1.0)
    assert drawn.render == 1.0
    for i in range(4):
        (x0, y0), (x1, y1) = plain[i], drawn[i]
        assert not np.allclose(x0.numpy(), x1.numpy())
    # a bright-background image (brightfield, stained tissue) is never rendered
    calls = []
    monkeypatch.setattr(dataset, "render_stained", lambda *a: calls.append(1) or a[0])
    bright = NucleiDataset({"b": (1.0 - image, labels)}, ["b"], size=64, augment=True, targets=("mask",),
                           scale=(1, 1), render=1.0)
    for i in range(4):
        bright[i]
    assert calls == []
    drawn[0]
    assert calls == [1]
    with pytest.raises(ValueError, match="render"):
        NucleiDataset({"a": (image, labels)}, ["a"], input="nuclei", render=0.5)
    with pytest.raises(ValueError, match="render"):
        NucleiDataset({"a": (image, labels)}, ["a"], norm="image", render=0.5)


def test_recipe_checks_the_render_chance():
    assert get_recipe("cpu").render == 0.0
    get_recipe("cpu", render=0.3).check()
    with pytest.raises(ValueError, match="render=1.5"):
        get_recipe("cpu", render=1.5).check()
    with pytest.raises(ValueError, match="render=0.3"):
        get_recipe("cpu", render=0.3, input="nuclei").check()
