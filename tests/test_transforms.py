"""Normalisation, targets, crops and augmentation."""

import numpy as np
import torch

from nucleiseg_lib.data import instance_contours, make_target, normalize_image
from nucleiseg_lib.data.dataset import NucleiDataset
from nucleiseg_lib.data.transforms import random_crop


def test_normalize_inverts_bright_background():
    dark = np.zeros((8, 8, 3), np.float32); dark[2:4, 2:4] = 1.0
    bright = 1.0 - dark
    np.testing.assert_allclose(normalize_image(dark), normalize_image(bright), atol=1e-6)
    x = normalize_image(dark)
    assert x.shape == (3, 8, 8) and abs(x.mean()) < 1e-6


def test_contours_separate_touching_nuclei():
    lab = np.zeros((5, 6), int)
    lab[1:4, 0:3] = 1
    lab[1:4, 3:6] = 2
    c = instance_contours(lab)
    assert c[2, 2] and c[2, 3] and not c[0, 0]
    core = (lab > 0) & ~c
    assert not (core[:, 2] | core[:, 3]).any()  # the two cores do not touch
    assert make_target(lab, ("mask", "contour")).shape == (2, 5, 6)


def test_random_crop_pads_small_images():
    rng = np.random.default_rng(0)
    img, lab = random_crop(np.ones((10, 12, 3), np.float32), np.ones((10, 12), np.int32), 16, rng)
    assert img.shape == (16, 16, 3) and lab.shape == (16, 16)


def test_dataset_items_are_deterministic_per_epoch():
    img = np.random.default_rng(0).random((40, 50, 3)).astype(np.float32)
    lab = np.zeros((40, 50), np.int32); lab[10:20, 10:20] = 1
    ds = NucleiDataset({"a": (img, lab)}, ["a"], size=16, augment=True, targets=("mask",), seed=3)
    x1, y1 = ds[0]
    x2, _ = ds[0]
    assert torch.equal(x1, x2) and y1.shape == (1, 16, 16)
    ds.set_epoch(1)
    assert not torch.equal(ds[0][0], x1)
    full = NucleiDataset({"a": (img, lab)}, ["a"], mode="full")
    assert full[0][0].shape == (3, 40, 50) and full[0][1].shape == (1, 40, 50)
