"""Normalisation, targets, crops and augmentation."""

import numpy as np
import pytest
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


def test_padded_crops_label_the_mirrored_nuclei_as_asked():
    from nucleiseg_lib.data.transforms import reflect_labels
    labels = np.zeros((4, 5), np.int32)
    labels[0:2, 0:2] = 3                                 # in the corner: mirrored into three neighbours
    labels[3, 4] = 7
    pad = ((2, 3), (1, 4))
    out = reflect_labels(labels, pad)
    assert out.shape == (9, 10) and out.dtype == np.int32
    np.testing.assert_array_equal(out[2:6, 1:6], labels)             # the image itself is unchanged
    assert (out[1:4, 0:3] == 3).all()                    # the corner nucleus and its mirrors: one blob, one label
    assert out[5, 5] == 7 and (out == 7).sum() == 1      # a pixel on the mirror axis is not repeated
    copies = reflect_labels(labels, pad, copies=True)
    np.testing.assert_array_equal(copies > 0, out > 0)
    assert copies.max() == len(np.unique(copies)) - 1 == 10          # numbered 1..N, 0 stays background
    assert len(np.unique(copies[2:4, 1:3])) == 1 and copies[1, 1] != copies[2, 1] != copies[2, 0]
    image = np.zeros((4, 5, 3), np.float32)
    image[labels > 0] = 1.0                              # bright nuclei on a dark background
    rng = lambda: np.random.default_rng(0)               # noqa: E731 (the same window each time)
    img, lab = random_crop(image, labels, 16, rng(), pad_labels="reflect")
    np.testing.assert_array_equal(lab > 0, img[..., 0] > 0.5)   # every nucleus shown is a nucleus of the target
    img_b, lab_b = random_crop(image, labels, 16, rng())          # the default: the padding is background
    np.testing.assert_array_equal(img_b, img)
    assert (lab_b > 0).sum() == (labels > 0).sum() < (lab > 0).sum()
    with pytest.raises(ValueError, match="unknown pad_labels 'zero'"):
        random_crop(image, labels, 16, rng(), pad_labels="zero")
    row = reflect_labels(np.full((1, 3), 2, np.int32), ((1, 1), (0, 0)))   # one row: repeated, not reflected
    assert (row == 2).all() and row.shape == (3, 3)


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


def test_nuclei_channel_makes_nuclei_bright_in_every_modality():
    from nucleiseg_lib.data.transforms import nuclei_channel
    nucleus = np.zeros((20, 20), bool)
    nucleus[5:10, 5:10] = True
    fluo = np.repeat(np.where(nucleus, 0.8, 0.05)[..., None], 3, axis=2).astype(np.float32)
    bright = np.repeat(np.where(nucleus, 0.3, 0.9)[..., None], 3, axis=2).astype(np.float32)
    stained = np.empty((20, 20, 3), np.float32)
    stained[:] = (0.95, 0.75, 0.85)            # pink background (eosin)
    stained[nucleus] = (0.35, 0.2, 0.55)       # purple nucleus (haematoxylin)
    for image in (fluo, bright, stained):
        c = nuclei_channel(image)
        assert c.shape == (20, 20)
        assert c[nucleus].min() > c[~nucleus].max()
    # "grey" for stained tissue is the inverted grey level
    np.testing.assert_allclose(nuclei_channel(stained, stain="grey"), 1 - stained.mean(axis=2), atol=1e-6)


def test_normalize_nuclei_scales_by_percentiles():
    rng = np.random.default_rng(0)
    image = np.repeat(rng.random((32, 32, 1)).astype(np.float32) * 0.2 + 0.1, 3, axis=2)
    x = normalize_image(image, "nuclei")
    assert x.shape == (1, 32, 32) and x.dtype == np.float32
    lo, hi = np.percentile(x, (1, 99.8))
    assert abs(lo) < 1e-5 and abs(hi - 1) < 1e-5
    # the same picture at another exposure gives the same input
    np.testing.assert_allclose(normalize_image(image * 2, "nuclei"), x, atol=1e-4)
    with pytest.raises(ValueError, match="unknown input"):
        normalize_image(image, "lab")


def test_dataset_one_channel_input_uses_whole_image_percentiles():
    image = np.zeros((64, 64, 3), np.float32)
    image[40:50, 40:50] = 1.0                   # the only nucleus, far from the top-left corner
    labels = np.zeros((64, 64), np.int32)
    labels[40:50, 40:50] = 1
    ds = NucleiDataset({"a": (image, labels)}, ["a"], mode="resize", size=64, input="nuclei",
                       targets=("mask", "contour"))
    x, y = ds[0]
    assert x.shape == (1, 64, 64) and y.shape == (2, 64, 64)
    ds = NucleiDataset({"a": (image + 0.01, labels)}, ["a"], mode="crop", size=16, input="nuclei", seed=1)
    # a crop of empty background stays dark: scaled by the whole image's percentiles, not stretched
    crops = [ds[i][0] for i in range(8)]
    empty = [c for c, (_, t) in zip(crops, (ds[i] for i in range(8))) if t.sum() == 0]
    assert empty and all(float(c.max()) < 0.05 for c in empty)
    aug = NucleiDataset({"a": (image, labels)}, ["a"], mode="crop", size=32, augment=True, input="nuclei", seed=2)
    xa, ya = aug[0]
    assert xa.shape == (1, 32, 32) and torch.isfinite(xa).all()


def test_contour_width_grows_inward_and_follows_the_area():
    from nucleiseg_lib.data.transforms import AREA_WIDTHS, contour_width_map
    lab = np.zeros((40, 60), int)
    lab[2:10, 2:10] = 1          # 64 px: width 1 under "area"
    lab[12:32, 2:22] = 2         # 400 px: width 2
    lab[5:35, 28:58] = 3         # 900 px: width 3
    one = instance_contours(lab)
    assert (instance_contours(lab, 1) == one).all()
    two = instance_contours(lab, 2)
    assert (two >= one).all() and two[13, 13] and not one[13, 13] and not two[14, 14]
    area = instance_contours(lab, "area")
    assert area[2, 5] and not area[3, 5]                  # small nucleus: one pixel
    assert area[13, 10] and not area[14, 10] and area[12, 10]   # medium: two
    assert area[7, 40] and not area[8, 40]                # large: three
    assert not area[lab == 0].any()
    assert [w for _, w in AREA_WIDTHS] == [1, 2, 3]
    assert contour_width_map(lab, "area")[20, 40] == 3 and contour_width_map(lab, 2)[0, 0] == 0
    target = make_target(lab, ("mask", "contour"), contour_width="area")
    assert (target[1] == area).all() and (target[0] == (lab > 0)).all()
    with pytest.raises(ValueError, match="contour width"):
        instance_contours(lab, 5)


def test_contour_width_keeps_touching_nuclei_apart_by_its_width():
    lab = np.zeros((6, 12), int)
    lab[:, :6], lab[:, 6:] = 1, 2
    c = instance_contours(lab, 2)
    assert c[3, 4] and c[3, 5] and c[3, 6] and c[3, 7] and not c[3, 3] and not c[3, 8]


def test_hue_rotation_keeps_grey_and_turns_hues():
    from nucleiseg_lib.data.transforms import hue_rotation
    np.testing.assert_allclose(hue_rotation(0.0), np.eye(3), atol=1e-6)
    grey = np.full((1, 3), 0.4, np.float32)
    np.testing.assert_allclose(grey @ hue_rotation(1.0), grey, atol=1e-6)      # grey stays grey
    red = np.array([[1.0, 0.0, 0.0]], np.float32)
    np.testing.assert_allclose(red @ hue_rotation(2 * np.pi / 3), [[0, 1, 0]], atol=1e-6)  # a third of a turn
    purple = np.array([[0.5, 0.2, 0.7]], np.float32)
    assert np.isclose((purple @ hue_rotation(2.0)).mean(), purple.mean())      # the grey level is kept


def test_stain_colour_augmentation_draws_new_hues_and_leaves_mix_unchanged():
    from nucleiseg_lib.data.transforms import augment_colour
    img = np.zeros((8, 8, 3), np.float32)
    img[..., 0], img[..., 2] = 0.8, 0.6                 # one purple-pink "stain"
    img[2:5, 2:5] = (0.3, 0.1, 0.5)
    hues = set()
    for seed in range(20):
        out = augment_colour(img, np.random.default_rng(seed), "stain")
        assert out.shape == img.shape and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
        hues.add(int(np.argmax(out[0, 0])))
    assert len(hues) >= 2                               # the background is not always the reddest channel
    a = augment_colour(img, np.random.default_rng(3))
    np.testing.assert_array_equal(a, augment_colour(img, np.random.default_rng(3), "mix"))
    with pytest.raises(ValueError, match="colour augmentation"):
        augment_colour(img, np.random.default_rng(0), "hsv")


def test_paste_nuclei_copies_whole_nuclei_onto_background_only():
    from nucleiseg_lib.data.transforms import paste_nuclei
    labels = np.zeros((24, 24), np.int32)
    labels[3:6, 3:7] = 1                                # 12 pixels, wholly inside
    labels[0:3, 18:21] = 2                              # touches the top edge: cut by the crop, never copied
    image = np.full((24, 24, 3), 0.1, np.float32)
    image[labels == 1] = (0.9, 0.5, 0.2)
    image[labels == 2] = (0.3, 0.3, 0.3)
    out, lab = paste_nuclei(image, labels, np.random.default_rng(0), most=6)
    new = np.unique(lab[lab > 2])
    assert len(new) >= 1 and lab.dtype == np.int32
    np.testing.assert_array_equal(lab[labels > 0], labels[labels > 0])          # nothing pasted over a nucleus
    for k in new:
        assert (lab == k).sum() == 12                                           # a turned copy of nucleus 1
        np.testing.assert_array_equal(out[lab == k], np.tile(np.float32([0.9, 0.5, 0.2]), ((lab == k).sum(), 1)))
    np.testing.assert_array_equal(out[lab == 0], image[lab == 0])              # background elsewhere unchanged
    assert (image[labels == 0] == 0.1).all() and lab.max() == 2 + len(new)     # inputs untouched, ids 3, 4, ...
    rng = np.random.default_rng(0)
    same_img, same_lab = paste_nuclei(image, labels, rng, most=0)
    assert same_img is image and same_lab is labels and rng.random() == np.random.default_rng(0).random()


def test_dataset_pastes_nuclei_only_when_asked():
    labels = np.zeros((40, 40), np.int32)
    labels[10:16, 10:16] = 1
    image = np.full((40, 40, 3), 0.1, np.float32); image[labels > 0] = 0.9
    kw = dict(mode="crop", size=40, augment=True, scale=(1.0, 1.0), seed=1)
    plain = NucleiDataset({"a": (image, labels)}, ["a"], **kw)
    pasted = NucleiDataset({"a": (image, labels)}, ["a"], paste=4, **kw)
    assert int(plain[0][1][0].sum()) == 36                                  # the one nucleus, nothing pasted
    counts = []
    for epoch in range(6):
        pasted.set_epoch(epoch)
        counts.append(int(pasted[0][1][0].sum()) // 36)
    assert max(counts) > 1 and all(c * 36 >= 36 for c in counts)          # whole copies, more nuclei some epochs
    squashed = NucleiDataset({"a": (image, labels)}, ["a"], mode="resize", size=20, augment=True, paste=4, seed=1)
    shapes = set()
    for epoch in range(6):                                 # resized to 20x20 first (one 3x3 nucleus), then pasted
        squashed.set_epoch(epoch)
        x, y = squashed[0]
        assert x.shape == (3, 20, 20)
        shapes.add(int(y[0].sum()) // 9)
    assert max(shapes) > 1


def test_standardize_by_a_reference_and_image_sample():
    from nucleiseg_lib.data.transforms import image_sample, is_bright_background, standardize
    whole = np.zeros((40, 40, 3), np.float32)
    whole[10:20, 10:20] = 1.0
    crop = whole[:8, :8]                                 # empty background
    np.testing.assert_allclose(standardize(crop), 0.0)   # standardised by itself: its mean, nothing else
    by_whole = standardize(crop, whole)
    np.testing.assert_allclose(by_whole, (0 - whole.mean()) / whole.std(), rtol=1e-6)   # below the image's mean
    np.testing.assert_allclose(standardize(whole, whole)[:8, :8], by_whole)
    assert image_sample(whole, pixels=100).shape == (10, 10, 3)     # every 4th row and column
    assert image_sample(whole).shape == whole.shape                  # small images: all of it
    assert not is_bright_background(whole) and is_bright_background(1 - whole)


def test_colour_augmentation_stretches_by_the_reference_range():
    from nucleiseg_lib.data.transforms import augment_colour
    whole = np.zeros((16, 16, 3), np.float32)
    whole[4:8, 4:8] = 0.8
    crop = np.full((6, 6, 3), 0.1, np.float32)           # a crop of faint background
    for seed in range(10):
        out, ref = augment_colour(crop, np.random.default_rng(seed), reference=whole + 0.1)
        assert out.shape == crop.shape and ref.shape == whole.shape and out.dtype == np.float32
        # by the reference, the crop stays as dark as the reference's background (up to noise) ...
        assert abs(float(out.mean()) - float(ref[:4, :4].mean())) < 0.1
        assert float(out.mean()) < float(ref.max()) - 0.2
    # ... while alone, its own narrow range is stretched to the augmentation's full brightness
    alone = [augment_colour(crop + 0.01 * np.arange(6)[:, None, None], np.random.default_rng(s)) for s in range(10)]
    assert max(float(a.max() - a.min()) for a in alone) > 0.4
    out, ref = augment_colour(whole, np.random.default_rng(1), reference=whole)
    np.testing.assert_allclose(out, ref, atol=0.2)       # the same change on both (noise drawn apart)


def test_dataset_norm_image_standardises_crops_as_prediction_does():
    from nucleiseg_lib.data.dataset import NucleiDataset
    labels = np.zeros((48, 48), np.int32)
    labels[5:15, 5:15], labels[30:40, 28:38] = 1, 2
    image = np.full((48, 48, 3), 0.85, np.float32)       # a bright background: inverted
    image[labels > 0] = (0.4, 0.2, 0.5)
    whole = normalize_image(image)                       # what prediction sees
    for norm, same in (("image", True), ("crop", False)):
        ds = NucleiDataset({"a": (image, labels)}, ["a"] * 6, mode="crop", size=16, norm=norm)
        for i in range(6):
            x = ds[i][0].numpy()
            found = any(np.allclose(x, whole[:, r:r + 16, c:c + 16], atol=1e-5)
                        for r in range(33) for c in range(33))
            assert found == same or (norm == "crop" and np.allclose(x, 0))
    with pytest.raises(ValueError, match="norm must be one of"):
        NucleiDataset({"a": (image, labels)}, ["a"], norm="tile")
    aug = NucleiDataset({"a": (image, labels)}, ["a"], mode="crop", size=16, augment=True, norm="image")
    assert aug[0][0].shape == (3, 16, 16) and torch.isfinite(aug[0][0]).all()


def test_touching_band_marks_only_where_nuclei_meet():
    from nucleiseg_lib.data.transforms import touching_band
    labels = np.zeros((12, 20), np.int32)
    labels[2:10, 2:8] = 1                                # touches nucleus 2 along column 7 | 8
    labels[2:10, 8:14] = 2
    labels[3:7, 16:19] = 3                               # 3 columns from nucleus 2: outside a 2-px band
    band = touching_band(labels, 2)
    np.testing.assert_array_equal(np.unique(np.nonzero(band)[1]), [6, 7, 8, 9])   # 2 px on each side
    assert band[2:10, 6:10].all() and not band[labels == 3].any() and not band[labels == 0].any()
    assert touching_band(labels, 3)[labels == 3].any()   # within 3 px: banded too
    assert not touching_band(labels, 0).any()
    y = make_target(labels, ("mask", "contour"), 1, touch=2)
    plain = make_target(labels, ("mask", "contour"), 1)
    np.testing.assert_array_equal(y[0], plain[0])        # the mask is unchanged
    assert (y[1] >= plain[1]).all() and y[1][5, 6] == 1 and plain[1][5, 6] == 0
    edge = np.zeros((6, 6), np.int32)
    edge[0:3, 0:3] = 5                                   # a lone nucleus in the image's corner
    assert not touching_band(edge, 2).any()


def test_touching_border_marks_where_two_nuclei_meet_gap_included():
    from nucleiseg_lib.data.transforms import BORDER_WIDTH, touching_border
    labels = np.zeros((12, 24), np.int32)
    labels[2:10, 2:8] = 1                                # touches nucleus 2 along column 7 | 8
    labels[2:10, 8:13] = 2
    labels[2:10, 15:18] = 3                              # a 2-px gap (columns 13, 14) from nucleus 2
    labels[2:10, 23:24] = 4                              # 5 px from nucleus 3: too far
    border = touching_border(labels, 2)
    # 2 px on each side of the touching line; the gap, whose pixels lie within 2 px of both sides; not the
    # nuclei beside the gap, 3 px from the other one
    np.testing.assert_array_equal(np.unique(np.nonzero(border)[1]), [6, 7, 8, 9, 13, 14])
    assert border[2:10, 6:10].all() and border[2:10, 13:15].all() and not border[labels == 3].any()
    assert not border[labels == 4].any() and not border[:, :6].any()   # a lone side stays off
    np.testing.assert_array_equal(np.nonzero(border[0])[0], [6, 7, 8, 9, 13, 14])   # background near both, too
    assert not touching_border(labels, 0).any() and not touching_border(np.zeros((4, 4), int)).any()
    y = make_target(labels, ("mask", "contour", "border"), 1)
    assert y.shape == (3, 12, 24) and set(np.unique(y[2])) == {0.0, 1.0}
    np.testing.assert_array_equal(y[2], touching_border(labels, BORDER_WIDTH))
    np.testing.assert_array_equal(y[:2], make_target(labels, ("mask", "contour"), 1))


def test_touch_weights_weigh_only_the_contour_where_nuclei_touch():
    from nucleiseg_lib.data.transforms import touch_weights
    labels = np.zeros((12, 20), np.int32)
    labels[2:10, 2:8] = 1                                # touches nucleus 2 along column 7 | 8
    labels[2:10, 8:14] = 2
    labels[3:7, 16:19] = 3                               # alone: its contour keeps weight 1
    contour = make_target(labels, ("contour",), 1)[0] > 0
    w = touch_weights(labels, contour, 10.0)
    assert w.dtype == np.float32 and w.shape == labels.shape and set(np.unique(w)) == {1.0, 11.0}
    heavy = w == 11.0
    assert heavy[5, 7] and heavy[5, 8]                   # the shared border, on both sides
    assert not heavy[5, 6] and not heavy[5, 4]           # inside nucleus 1: not contour
    assert not heavy[labels == 3].any() and not heavy[labels == 0].any()
    assert not heavy[2, 3] and heavy[2, 7]               # nucleus 1's top edge: only near nucleus 2
    np.testing.assert_array_equal(touch_weights(labels, contour, 0.0), np.ones(labels.shape, np.float32))


def test_dataset_touch_weight_adds_a_weight_channel_that_moves_with_the_crop():
    labels = np.zeros((32, 32), np.int32)
    labels[8:20, 4:16] = 1
    labels[8:20, 16:28] = 2
    image = np.zeros((32, 32, 3), np.float32)
    image[labels > 0] = 0.8
    samples = {"a": (image, labels)}
    plain = NucleiDataset(samples, ["a"], mode="full", targets=("mask", "contour"))[0][1]
    x, y = NucleiDataset(samples, ["a"], mode="full", targets=("mask", "contour"), touch_weight=4.0)[0]
    assert y.shape == (3, 32, 32)
    np.testing.assert_array_equal(y[:2].numpy(), plain.numpy())       # the targets as before
    assert y[2].max() == 5.0 and y[2, 12, 15] == 5.0 and y[2, 12, 4] == 1.0
    aug = NucleiDataset(samples, ["a"], mode="crop", size=32, augment=True, targets=("mask", "contour"),
                        touch_weight=4.0)
    for i in range(4):
        aug.set_epoch(i)
        _, ya = aug[0]
        heavy = ya[2] > 1
        assert heavy.any() and bool((ya[1][heavy] == 1).all())      # heavy pixels stay on the contour
    with pytest.raises(ValueError, match="contour"):
        NucleiDataset(samples, ["a"], targets=("mask",), touch_weight=4.0)


def test_instance_distance_is_one_at_each_centre_and_ignores_the_image_border():
    from nucleiseg_lib.data.transforms import instance_distance
    labels = np.zeros((7, 12), np.int32)
    labels[1:6, 1:6] = 1                                 # two 5x5 squares that touch along columns 5 | 6
    labels[1:6, 6:11] = 2
    labels[0:3, 11] = 3                                  # a sliver cut by the image's top and right border
    d = instance_distance(labels)
    assert d.dtype == np.float32 and (d[labels == 0] == 0).all()
    assert d[3, 3] == 1 and d[3, 8] == 1                 # the centres
    np.testing.assert_allclose(d[3, 1:6], [1 / 3, 2 / 3, 1, 2 / 3, 1 / 3], rtol=1e-6)
    assert d[3, 5] == d[3, 6] == pytest.approx(1 / 3)    # low where the two meet: seeds above 0.5 stay apart
    assert (d[0:3, 11] == 1).all()                       # its only edge is its left neighbour
    y = make_target(labels, ("mask", "contour", "distance"), 1)
    assert y.shape == (3, 7, 12) and y.dtype == np.float32
    np.testing.assert_array_equal(y[2], d)
    assert not instance_distance(np.zeros((4, 4), np.int32)).any()
    with pytest.raises(ValueError, match="unknown target 'centre'"):
        make_target(labels, ("mask", "centre"))


def test_config_accepts_only_the_target_orders_post_processing_reads():
    from nucleiseg_lib.training import get_recipe
    assert get_recipe("cpu", targets=("mask", "contour", "distance")).check().targets[2] == "distance"
    assert get_recipe("cpu", targets=("mask", "contour", "border")).check().targets[2] == "border"
    for bad in (("mask", "distance"), ("contour", "mask"), ("mask", "centre"), ("mask", "border")):
        with pytest.raises(ValueError, match="targets="):
            get_recipe("cpu", targets=bad).check()


def test_colour_augmentation_blur_spreads_a_bright_block_and_is_off_by_default():
    from nucleiseg_lib.data.transforms import augment_colour
    img = np.zeros((15, 15, 3), np.float32)
    img[6:9, 6:9] = 1.0                                 # a 3x3 "nucleus" on a dark background
    ring = np.zeros((15, 15), bool)
    ring[5:10, 5:10] = True
    ring[6:9, 6:9] = False                              # the 16 pixels around it
    far = np.zeros((15, 15), bool)
    far[:3], far[-3:] = True, True                      # background 3 px or more away

    def halo(out):
        """How much brighter the ring is than far background, as a share of the block's brightness."""
        g = out.mean(axis=2)
        return (g[ring].mean() - g[far].mean()) / (g[6:9, 6:9].mean() - g[far].mean())

    for seed in range(10):
        sharp = augment_colour(img, np.random.default_rng(seed))
        np.testing.assert_array_equal(sharp, augment_colour(img, np.random.default_rng(seed), blur=0.0))
        assert abs(halo(sharp)) < 0.03                  # no blur: the ring is background (up to noise)
        soft = augment_colour(img, np.random.default_rng(seed), blur=1.0)
        assert soft.shape == img.shape and soft.dtype == np.float32 and 0 <= soft.min() and soft.max() <= 1
        assert halo(soft) > 0.06                        # sigma >= 0.5 px: the 12 edge neighbours get a tenth
    # with a reference (norm="image"), only the crop is blurred: the reference keeps its sharp edge
    out, ref = augment_colour(img, np.random.default_rng(0), reference=img.copy(), blur=1.0)
    assert halo(out) > 0.06 and abs(halo(ref)) < 0.03


def _ellipses(h=300, w=400):
    """Labels of a grid of 20x10 px ellipses, and the image that shows them (1 inside, 0 outside)."""
    yy, xx = np.mgrid[:h, :w]
    lab = np.zeros((h, w), np.int32)
    k = 1
    for cy in range(30, h, 60):
        for cx in range(30, w, 60):
            lab[((yy - cy) / 20) ** 2 + ((xx - cx) / 10) ** 2 <= 1] = k
            k += 1
    return np.repeat((lab > 0).astype(np.float32)[..., None], 3, axis=2), lab


def test_warped_crop_keeps_image_and_labels_together_at_any_scale():
    from nucleiseg_lib.data.transforms import warped_crop
    img, lab = _ellipses()
    rng = np.random.default_rng(0)
    for s in (0.5, 1.0, 2.0):
        out, labels = warped_crop(img, lab, 96, rng, s)
        assert out.shape == (96, 96, 3) and out.dtype == np.float32
        assert labels.shape == (96, 96) and labels.dtype == np.int32
        assert set(np.unique(labels)) <= set(np.unique(lab))          # labels are sampled, never mixed
        assert ((out[..., 0] > 0.5) == (labels > 0)).mean() > 0.97     # the nuclei are where their labels are


def test_warped_crop_turns_nuclei_that_quarter_turns_cannot():
    from nucleiseg_lib.data.transforms import warp_matrix, warped_crop
    img, lab = _ellipses()
    rng = np.random.default_rng(1)
    angles = []
    for _ in range(6):
        _, labels = warped_crop(img, lab, 128, rng)
        ys, xs = np.nonzero(labels == np.bincount(labels.ravel())[1:].argmax() + 1)  # the largest nucleus
        cov = np.cov(np.stack([ys, xs]))
        angles.append(np.degrees(np.arctan2(2 * cov[0, 1], cov[0, 0] - cov[1, 1])) / 2)
    # upright ellipses (long axis vertical: 0 degrees) come out leaning at angles other than 0 and 90
    assert any(10 < abs(a) < 80 for a in angles)
    m = warp_matrix(np.random.default_rng(2), s=2.0)
    assert m.shape == (2, 2) and 0.2 < abs(np.linalg.det(m)) < 0.3    # area shrinks by s^2 = 4, stretch keeps area


def test_random_crop_without_warp_draws_what_it_drew_before():
    img, lab = _ellipses()
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    x1, y1 = random_crop(img, lab, 64, a, (0.5, 2.0))
    x2, y2 = random_crop(img, lab, 64, b, (0.5, 2.0), warp=0.0)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2) and a.random() == b.random()
    c = np.random.default_rng(3)
    random_crop(img, lab, 64, c, (0.5, 2.0), warp=1.0)                # a warp draws more
    assert c.random() != np.random.default_rng(3).random()


def test_warped_crop_of_a_small_image_pads_labels_as_asked():
    from nucleiseg_lib.data.transforms import warped_crop
    img, lab = _ellipses(60, 60)
    out, bg = warped_crop(img, lab, 128, np.random.default_rng(4), 0.5)
    _, mirrored = warped_crop(img, lab, 128, np.random.default_rng(4), 0.5, pad_labels="reflect")
    assert out.shape == (128, 128, 3)
    assert (mirrored > 0).sum() > (bg > 0).sum() > 0                   # mirrored nuclei: background or nuclei
    assert set(np.unique(mirrored)) <= set(np.unique(lab))
