"""Reading the Kaggle layout: images of every kind, masks of every kind, and clear errors."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nucleiseg_lib.data import (binary_target, count_overlaps, list_samples, merge_masks, read_image, read_mask,
                                read_sample, split_ids)
from nucleiseg_lib.errors import DataError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "dsb2018" / "stage1_train"


def write_sample(root, sid, image, masks):
    (root / sid / "images").mkdir(parents=True)
    Image.fromarray(image).save(root / sid / "images" / f"{sid}.png")
    (root / sid / "masks").mkdir()
    for i, m in enumerate(masks):
        Image.fromarray(m).save(root / sid / "masks" / f"m{i}.png")


@pytest.mark.parametrize("arr", [
    np.full((4, 5, 4), 255, np.uint8),                 # RGBA
    np.full((4, 5, 3), 255, np.uint8),                 # RGB
    np.full((4, 5), 255, np.uint8),                    # L
    np.full((4, 5), 65535, np.uint16),                 # 16-bit gray
])
def test_read_image_is_float_rgb_in_unit_range(tmp_path, arr):
    arr = arr.copy()
    arr[0, 0] = 0
    Image.fromarray(arr).save(tmp_path / "x.png")
    img = read_image(tmp_path / "x.png")
    assert img.shape == (4, 5, 3) and img.dtype == np.float32
    assert img.max() == pytest.approx(1.0) and img[0, 0].max() == 0.0


def test_read_image_16bit_keeps_levels(tmp_path):
    arr = np.array([[0, 32768, 65535]], np.uint16)
    Image.fromarray(arr).save(tmp_path / "x.png")
    np.testing.assert_allclose(read_image(tmp_path / "x.png")[0, :, 0], [0, 32768 / 65535, 1], atol=1e-6)


@pytest.mark.parametrize("on", [255, 1, True])
def test_read_mask_accepts_0_255_and_0_1_and_bool(tmp_path, on):
    m = np.zeros((3, 3), np.uint8 if on is not True else bool)
    m[1, 1] = on
    Image.fromarray(m).save(tmp_path / "m.png")
    mask = read_mask(tmp_path / "m.png")
    assert mask.dtype == bool and mask.sum() == 1 and mask[1, 1]


def test_merge_masks_labels_and_target_shape():
    a = np.zeros((4, 4), np.uint8); a[0, 0] = 255
    b = np.zeros((4, 4), np.uint8); b[3, 3] = 1
    labels = merge_masks([a, b])
    assert labels[0, 0] == 1 and labels[3, 3] == 2 and labels.sum() == 3
    t = binary_target(labels)
    assert t.shape == (1, 4, 4) and set(np.unique(t)) == {0.0, 1.0}
    assert count_overlaps([a, b]) == 0 and count_overlaps([a, a]) == 1
    assert merge_masks([], shape=(2, 3)).shape == (2, 3)


def test_read_sample_roundtrip(tmp_path):
    img = np.zeros((6, 7, 4), np.uint8); img[..., 3] = 255
    m1 = np.zeros((6, 7), np.uint8); m1[:2, :2] = 255
    m2 = np.zeros((6, 7), np.uint8); m2[4:, 4:] = 255
    write_sample(tmp_path, "abc", img, [m1, m2])
    image, labels = read_sample(tmp_path, "abc")
    assert image.shape == (6, 7, 3) and labels.shape == (6, 7)
    assert sorted(np.unique(labels)) == [0, 1, 2]
    assert list_samples(tmp_path) == ["abc"]


def test_errors_name_the_file_and_problem(tmp_path):
    with pytest.raises(DataError, match="data folder not found"):
        list_samples(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty"):
        list_samples(tmp_path / "empty")
    (tmp_path / "d" / "s1").mkdir(parents=True)
    with pytest.raises(DataError, match=r"s1: sample folder has no images/"):
        read_sample(tmp_path / "d", "s1")
    (tmp_path / "d" / "s1" / "images").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "d" / "s1" / "images" / "s1.png")
    with pytest.raises(DataError, match=r"s1: sample folder has no masks/"):
        read_sample(tmp_path / "d", "s1")
    (tmp_path / "d" / "s1" / "masks").mkdir()
    Image.fromarray(np.zeros((5, 4), np.uint8)).save(tmp_path / "d" / "s1" / "masks" / "m.png")
    with pytest.raises(DataError, match=r"m.png: mask size 4x5 differs from its image's 4x4"):
        read_sample(tmp_path / "d", "s1")
    (tmp_path / "d" / "s1" / "masks" / "m.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataError, match=r"m.png: cannot be read as an image"):
        read_sample(tmp_path / "d", "s1")
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"e.png: file is empty"):
        read_image(tmp_path / "e.png")


def test_multiframe_tiff_is_refused(tmp_path):
    frames = [Image.fromarray(np.zeros((4, 4), np.uint8)) for _ in range(3)]
    frames[0].save(tmp_path / "stack.tif", save_all=True, append_images=frames[1:])
    with pytest.raises(DataError, match="stack of 3 frames"):
        read_image(tmp_path / "stack.tif")


def test_split_is_seeded_deterministic_and_disjoint():
    ids = [f"id{i:03d}" for i in range(50)]
    tr, va = split_ids(ids, 0.1, seed=0)
    assert len(va) == 5 and not set(tr) & set(va) and sorted(tr + va) == ids
    assert split_ids(list(reversed(ids)), 0.1, seed=0) == (tr, va)
    assert split_ids(ids, 0.1, seed=1)[1] != va


@pytest.mark.skipif(not SHARED.is_dir(), reason="real DSB2018 data not present in ../shared")
def test_real_data_sample():
    ids = list_samples(SHARED)
    assert len(ids) == 664
    big = "1ec74a26e772966df764e063f1391109a60d803cff9d15680093641ed691bf72"
    sid = big if big in ids else ids[0]
    image, labels = read_sample(SHARED, sid)
    assert image.ndim == 3 and image.shape[2] == 3 and labels.shape == image.shape[:2]
    assert 0 <= image.min() and image.max() <= 1 and labels.max() >= 1


def test_read_mask_refuses_a_huge_mask_without_changing_pil_limits(tmp_path, monkeypatch):
    from PIL import Image

    import nucleiseg_lib.data.io as io_mod
    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(path)
    before = Image.MAX_IMAGE_PIXELS
    monkeypatch.setattr(io_mod, "MAX_PIXELS", 100)
    with pytest.raises(io_mod.DataError, match=r"big.png.*is too large \(more than 100 pixels\)"):
        io_mod.read_mask(path)
    assert Image.MAX_IMAGE_PIXELS == before      # uploads are checked against their own limit, not one set here
