"""Tests of the synthetic DSB2018-layout generator."""

import os

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from nucleiseg_lib.data.synth import (
    is_synthetic,
    make_synthetic_dataset,
    make_synthetic_sample,
)


def _load(root, sid):
    img = Image.open(os.path.join(root, sid, "images", f"{sid}.png"))
    masks = [Image.open(os.path.join(root, sid, "masks", f))
             for f in sorted(os.listdir(os.path.join(root, sid, "masks")))]
    return img, masks


def _tree_bytes(root):
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = fh.read()
    return out


@pytest.mark.parametrize("size,hw", [(64, (64, 64)), ((200, 320), (200, 320))])
def test_layout_and_formats(tmp_path, size, hw):
    ids = make_synthetic_dataset(tmp_path, n=4, size=size, seed=1)
    assert ids == sorted(ids) and len(set(ids)) == 4
    assert sorted(os.listdir(tmp_path)) == sorted(ids + ["SYNTHETIC.txt"])
    for sid in ids:
        assert sorted(os.listdir(tmp_path / sid)) == ["images", "masks"]
        assert os.listdir(tmp_path / sid / "images") == [f"{sid}.png"]
        img, masks = _load(tmp_path, sid)
        assert img.mode == "RGBA" and img.size == (hw[1], hw[0])
        a = np.asarray(img)
        assert a.dtype == np.uint8 and (a[..., 3] == 255).all()
        assert len(masks) >= 1
        stack = []
        for m in masks:
            assert m.mode == "L" and m.size == img.size
            arr = np.asarray(m)
            assert set(np.unique(arr)) == {0, 255}
            assert (arr > 0).sum() >= 15
            stack.append(arr > 0)
        assert (np.sum(stack, axis=0) <= 1).all(), "masks overlap"


def test_sample_api_shapes_and_labels():
    rng = np.random.default_rng(0)
    img, lab = make_synthetic_sample(rng, size=(100, 150), style="brightfield")
    assert img.shape == (100, 150, 3) and img.dtype == np.uint8
    assert lab.shape == (100, 150) and lab.dtype == np.int32
    n = lab.max()
    assert n >= 1 and set(np.unique(lab)) == set(range(n + 1))  # consecutive
    assert np.bincount(lab.ravel())[1:].min() >= 15
    with pytest.raises(ValueError):
        make_synthetic_sample(rng, style="confocal")


def test_determinism(tmp_path):
    a = make_synthetic_dataset(tmp_path / "a", n=5, size=96, seed=7)
    b = make_synthetic_dataset(tmp_path / "b", n=5, size=96, seed=7)
    c = make_synthetic_dataset(tmp_path / "c", n=5, size=96, seed=8)
    assert a == b and a != c
    assert _tree_bytes(tmp_path / "a") == _tree_bytes(tmp_path / "b")
    ia = _tree_bytes(tmp_path / "a")[os.path.join(a[0], "images", f"{a[0]}.png")]
    ic = _tree_bytes(tmp_path / "c")[os.path.join(c[0], "images", f"{c[0]}.png")]
    assert ia != ic
    # sample i does not depend on n
    d = make_synthetic_dataset(tmp_path / "d", n=2, size=96, seed=7)
    assert set(d) <= set(a)
    assert _tree_bytes(tmp_path / "d" / d[0]) == _tree_bytes(tmp_path / "a" / d[0])


def test_some_nuclei_touch(tmp_path):
    ids = make_synthetic_dataset(tmp_path, n=6, size=128, seed=0)
    touching = 0
    for sid in ids:
        _, masks = _load(tmp_path, sid)
        lab = np.zeros(np.asarray(masks[0]).shape, np.int32)
        for k, m in enumerate(masks, 1):
            lab[np.asarray(m) > 0] = k
        for k in range(1, len(masks) + 1):
            grown = ndimage.binary_dilation(lab == k)
            touching += bool(((lab[grown] != 0) & (lab[grown] != k)).any())
    assert touching >= 2


@pytest.mark.parametrize("style", ["fluorescence", "stained", "brightfield"])
def test_style_intensities(style):
    for seed in range(3):
        img, lab = make_synthetic_sample(np.random.default_rng(seed), 128, style)
        gray = img.astype(float).mean(axis=2)
        fg, bg = gray[lab > 0].mean(), gray[lab == 0].mean()
        if style == "fluorescence":
            assert fg > bg + 30 and bg < 60
            assert (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all()
        else:
            assert fg < bg - 15 and bg > 150
        if style == "stained":
            assert np.abs(img[..., 0].astype(int) - img[..., 2]).mean() > 10
            assert img[lab > 0, 2].mean() > img[lab > 0, 0].mean()  # nuclei bluish


def test_mixed_uses_several_styles():
    rgb = [make_synthetic_sample(np.random.default_rng(s), 64, "mixed")[0] for s in range(30)]
    coloured = sum(bool((im[..., 0] != im[..., 2]).any()) for im in rgb)
    assert 0 < coloured < 30


def test_marker_and_is_synthetic(tmp_path):
    assert not is_synthetic(tmp_path)
    make_synthetic_dataset(tmp_path, n=1, size=32, seed=3, style="stained")
    assert is_synthetic(tmp_path) and is_synthetic(str(tmp_path))
    text = (tmp_path / "SYNTHETIC.txt").read_text()
    assert "synthetic" in text.lower() and "seed=3" in text and "stained" in text


def test_resume_and_overwrite(tmp_path):
    ids = make_synthetic_dataset(tmp_path, n=3, size=64, seed=0)
    img = tmp_path / ids[0] / "images" / f"{ids[0]}.png"
    img.write_bytes(b"sentinel")
    before = {p: os.stat(tmp_path / p).st_mtime_ns for p in _tree_bytes(tmp_path)}
    assert make_synthetic_dataset(tmp_path, n=3, size=64, seed=0) == ids
    assert img.read_bytes() == b"sentinel"
    assert {p: os.stat(tmp_path / p).st_mtime_ns for p in _tree_bytes(tmp_path)} == before
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]
    make_synthetic_dataset(tmp_path, n=3, size=64, seed=0, overwrite=True)
    assert img.read_bytes() != b"sentinel"
    assert Image.open(img).mode == "RGBA"
