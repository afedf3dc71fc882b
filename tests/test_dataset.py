"""NucleiDataset and PngSamples on small hand-built samples."""

import numpy as np
import pytest
import torch
from PIL import Image

from nucleiseg_lib.data import SampleCache
from nucleiseg_lib.data.dataset import NucleiDataset, PngSamples, load_split


def two_squares(h=12, w=16):
    """An image with two bright squares and their label map (labels 1 and 2)."""
    labels = np.zeros((h, w), np.int32)
    labels[2:6, 2:6] = 1
    labels[6:10, 9:14] = 2
    image = np.full((h, w, 3), 0.1, np.float32)
    image[labels > 0] = 0.9
    return image, labels


def write_kaggle(root, samples):
    """Write {id: (image, labels)} in the Kaggle layout (one mask PNG per nucleus)."""
    for sid, (image, labels) in samples.items():
        (root / sid / "images").mkdir(parents=True)
        (root / sid / "masks").mkdir()
        Image.fromarray((image * 255 + 0.5).astype(np.uint8)).save(root / sid / "images" / f"{sid}.png")
        for k in range(1, labels.max() + 1):
            Image.fromarray(((labels == k) * 255).astype(np.uint8)).save(root / sid / "masks" / f"m{k}.png")


def test_full_mode_returns_the_image_and_its_targets():
    image, labels = two_squares()
    ds = NucleiDataset({"a": (image, labels)}, ["a"], mode="full", targets=("mask", "contour"))
    x, y = ds[0]
    assert x.shape == (3, 12, 16) and x.dtype == torch.float32
    assert y.shape == (2, 12, 16)
    np.testing.assert_array_equal(y[0].numpy(), labels > 0)
    # contour: the ring of each square (4x4 -> 12 pixels, 4x5 -> 14 pixels), inside the nucleus
    assert int(y[1].sum()) == 12 + 14 and not y[1].numpy()[labels == 0].any()


def test_crop_mode_gives_the_asked_size_and_is_reproducible():
    image, labels = two_squares(40, 50)
    ds = NucleiDataset({"a": (image, labels)}, ["a"], mode="crop", size=16, augment=True, seed=3)
    x1, y1 = ds[0]
    x2, y2 = ds[0]
    assert x1.shape == (3, 16, 16) and y1.shape == (1, 16, 16)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)          # same (seed, epoch, index): same item
    ds.set_epoch(1)
    assert not torch.equal(ds[0][0], x1)                        # another epoch: another crop/augmentation


def test_warp_reaches_the_crops_only_when_augmenting():
    image, labels = two_squares(40, 50)
    kw = dict(mode="crop", size=16, seed=3, targets=("mask",))
    plain = NucleiDataset({"a": (image, labels)}, ["a"], augment=True, **kw)[0]
    warped = NucleiDataset({"a": (image, labels)}, ["a"], augment=True, warp=1.0, **kw)[0]
    assert warped[0].shape == (3, 16, 16) and not torch.equal(warped[0], plain[0])
    plain = NucleiDataset({"a": (image, labels)}, ["a"], augment=False, **kw)[0]
    unaugmented = NucleiDataset({"a": (image, labels)}, ["a"], augment=False, warp=1.0, **kw)[0]
    assert torch.equal(unaugmented[0], plain[0]) and torch.equal(unaugmented[1], plain[1])


def test_resize_mode_squashes_to_size():
    image, labels = two_squares()
    x, y = NucleiDataset({"a": (image, labels)}, ["a"], mode="resize", size=24)[0]
    assert x.shape == (3, 24, 24) and y.shape == (1, 24, 24)
    assert set(np.unique(y.numpy())) <= {0.0, 1.0} and 0 < float(y.mean()) < 1


def test_repeats_and_bad_mode():
    image, labels = two_squares()
    samples = {"a": (image, labels), "b": (image, labels)}
    assert len(NucleiDataset(samples, ["a", "b"], repeats=3)) == 6
    with pytest.raises(ValueError, match="mode must be one of"):
        NucleiDataset(samples, ["a"], mode="zoom")


def test_png_samples_and_the_cache_agree(tmp_path):
    image, labels = two_squares()
    write_kaggle(tmp_path / "data", {"s1": (image, labels)})
    png_image, png_labels = PngSamples(tmp_path / "data")["s1"]
    np.testing.assert_array_equal(png_labels, labels)
    np.testing.assert_allclose(png_image, image, atol=1 / 255)
    loaded = load_split(tmp_path / "data", ["s1"], [], cache_dir=tmp_path / "cache", progress=False)
    np.testing.assert_array_equal(loaded["s1"][1], labels)
    assert SampleCache(tmp_path / "data", cache_dir=tmp_path / "cache", progress=False).n_built == 0  # reused


@pytest.mark.parametrize("input", ["rgb", "grey", "nuclei"])
def test_every_input_gives_the_channels_its_model_takes(input):
    from nucleiseg_lib.training.recipes import RECIPES, make_model
    from dataclasses import replace
    cfg = replace(RECIPES["cpu"], input=input, size=16, base=4, paste=2)
    image, labels = two_squares(40, 50)
    ds = NucleiDataset({"a": (image, labels)}, ["a"], mode="crop", size=16, augment=True, input=input, paste=2)
    x, _ = ds[0]
    assert x.shape[0] == cfg.in_channels == (3 if input == "rgb" else 1)
    model = make_model(cfg).eval()
    with torch.no_grad():
        assert model(x[None]).shape == (1, len(cfg.targets), 16, 16)
