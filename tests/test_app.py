"""The app of notebook 06 without a browser: decoding uploads, the pipeline, measurements, downloads, widgets."""

import csv
import datetime
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nucleiseg_lib import app as appmod
from nucleiseg_lib import pretrained
from nucleiseg_lib.app import (SegmentApp, area_stats, decode_image_bytes, display_factor, download_filename,
                               download_link, measure_nuclei, resolve_run_dir, results_zip, table_to_csv,
                               uploaded_files)
from nucleiseg_lib.errors import CheckpointError, DataError
from nucleiseg_lib.inference import Predictor, otsu_threshold

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "06_segment_your_image.ipynb"


# ------------------------------------------------------------------ helpers ---

def encode(arr, fmt="PNG", **kw):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


def tiff(arr, **kw):
    import tifffile
    buf = io.BytesIO()
    tifffile.imwrite(buf, arr, **kw)
    return buf.getvalue()


def discs(h=96, w=128, centres=((20, 20), (30, 80), (70, 40), (72, 100)), r=8, dtype=np.uint8):
    """A dark image with bright discs (one nucleus each) and their count."""
    yy, xx = np.mgrid[:h, :w]
    img = np.zeros((h, w), np.float64)
    for cy, cx in centres:
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1.0
    img = 0.05 + 0.85 * img  # background 0.05, nuclei 0.9
    scale = 255 if dtype == np.uint8 else 65535
    return (img * scale).astype(dtype), len(centres)


class FakePredictor:
    """Stands for the U-Net: the probability of a nucleus is the image's brightness (counts calls)."""

    def __init__(self, threshold=0.6):
        self.postprocess = dict(threshold=threshold, method="cc", min_size=8, contour_threshold=0.5)
        self.path = "fake.pt"
        self.calls = 0

    def predict_proba(self, image):
        self.calls += 1
        return image.mean(axis=2)[None].astype(np.float32)

    def postprocess_proba(self, prob, rule=None, **overrides):
        return Predictor.postprocess_proba(self, prob, rule, **overrides)


def upload_value(*files):
    """A FileUpload.value as ipywidgets 8 sets it from the browser."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return tuple(dict(name=n, type="", size=len(b), content=memoryview(b), last_modified=now) for n, b in files)


def html_attr(html_text, attr):
    import re
    m = re.search(rf'{attr}="([^"]*)"', html_text)
    return m.group(1) if m else None


# ----------------------------------------------------------------- decoding ---

@pytest.mark.parametrize("kind", ["png8-gray", "png8-rgb", "png8-rgba", "png16-gray", "jpeg", "tif8-gray",
                                  "tif16-gray", "tif16-rgb", "tif-float", "tif-planar-rgb", "tif-lzw", "bmp"])
def test_decode_formats_and_depths(kind):
    gray8, _ = discs()
    gray16, _ = discs(dtype=np.uint16)
    rgb8 = np.repeat(gray8[..., None], 3, axis=2)
    data = {
        "png8-gray": lambda: encode(gray8),
        "png8-rgb": lambda: encode(rgb8),
        "png8-rgba": lambda: encode(np.dstack([rgb8, np.full(gray8.shape, 255, np.uint8)])),
        "png16-gray": lambda: encode(gray16),
        "jpeg": lambda: encode(rgb8, "JPEG", quality=95),
        "tif8-gray": lambda: tiff(gray8),
        "tif16-gray": lambda: tiff(gray16),
        "tif16-rgb": lambda: tiff(np.repeat(gray16[..., None], 3, axis=2), photometric="rgb"),
        "tif-float": lambda: tiff(gray16.astype(np.float32) / 65535),
        "tif-planar-rgb": lambda: tiff(np.repeat(gray8[None], 3, axis=0), photometric="rgb", planarconfig="separate"),
        "tif-lzw": lambda: encode(rgb8, "TIFF", compression="tiff_lzw"),
        "bmp": lambda: encode(rgb8, "BMP"),
    }[kind]()
    img = decode_image_bytes(data, f"x.{kind}")
    assert img.shape == gray8.shape + (3,) and img.dtype == np.float32
    want = gray16 / 65535 if ("16" in kind or "float" in kind) else gray8 / 255
    np.testing.assert_allclose(img[..., 0], want, atol=0.04 if kind == "jpeg" else 1e-6)


def test_decode_16bit_keeps_levels_that_8bit_would_lose():
    dim = np.array([[0, 100, 200, 300] * 4] * 16, np.uint16)  # a dim 16-bit image: all below 1/255 of the range
    for data in (encode(dim), tiff(np.repeat(dim[..., None], 3, axis=2), photometric="rgb")):
        img = decode_image_bytes(data, "dim")
        assert len(np.unique(img[..., 0])) == 4
        np.testing.assert_allclose(img[0, :4, 0], np.array([0, 100, 200, 300]) / 65535, atol=1e-7)


def test_decode_accepts_2048_square():
    img = decode_image_bytes(encode(np.zeros((2048, 2048), np.uint8)), "big.png")
    assert img.shape == (2048, 2048, 3)


def _stack_pil():
    buf = io.BytesIO()
    Image.new("L", (32, 32)).save(buf, format="TIFF", save_all=True, append_images=[Image.new("L", (32, 32))] * 2)
    return buf.getvalue()


def _gif_animation():
    buf = io.BytesIO()
    Image.new("L", (32, 32)).save(buf, format="GIF", save_all=True, append_images=[Image.new("L", (32, 32), 200)])
    return buf.getvalue()


@pytest.mark.parametrize("name,make,words", [
    ("empty.png", lambda: b"", "is empty"),
    ("notes.txt", lambda: b"nuclei counted by hand: 42\n", "not an image this app can read; it looks like text"),
    ("paper.pdf", lambda: b"%PDF-1.7\n\x00\x01\x02", "looks like a PDF"),
    ("cells.npy", lambda: b"\x93NUMPY\x01\x00" + bytes(100), "looks like a NumPy"),
    ("random.bin", lambda: bytes(np.random.default_rng(0).integers(128, 256, 300, dtype=np.uint8)), "not an image"),
    ("stack.tif", _stack_pil, "is a stack of 3 images"),
    ("zstack.tif", lambda: tiff(np.zeros((5, 32, 32), np.uint16)), "is a stack of 5 images"),
    ("hyper.tif", lambda: tiff(np.zeros((4, 2, 32, 32), np.uint8), imagej=True, metadata={"axes": "ZCYX"}),
     "is a stack of 8 images (4 z-slices, 2 channels"),
    ("movie.gif", _gif_animation, "is a stack of 2 images"),
    ("huge.png", lambda: encode(np.zeros((5000, 4000), np.uint8)), "is 4000x5000 pixels (20.0 megapixels)"),
    ("tiny.png", lambda: encode(np.zeros((4, 4), np.uint8)), "is only 4x4 pixels"),
    ("cut.png", lambda: encode(discs()[0])[:200], "damaged or truncated"),
    ("fivech.tif", lambda: tiff(np.zeros((32, 32, 5), np.uint8), photometric="minisblack", planarconfig="contig"),
     "5 samples per pixel"),
])
def test_decode_bad_input_says_what_is_wrong(name, make, words):
    with pytest.raises(DataError) as err:
        decode_image_bytes(make(), name)
    assert str(err.value).startswith(f"{name}: ") and words in str(err.value)


def test_huge_image_is_refused_before_decoding(monkeypatch):
    from PIL import ImageFile
    data = encode(np.zeros((12000, 12000), np.uint8))  # 144 megapixels, a small PNG

    def no_decoding(self):
        raise AssertionError("the pixels were decoded")
    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(DataError, match="crop it into tiles or downscale it"):
        decode_image_bytes(data, "huge.png")
    monkeypatch.undo()
    with pytest.raises(DataError, match="is 40x40 pixels"):
        decode_image_bytes(encode(np.zeros((40, 40), np.uint8)), "small-limit.png", max_pixels=1000)


def test_uploaded_files_reads_ipywidgets_8_and_7_values():
    assert uploaded_files(upload_value(("a.png", b"1"), ("b.tif", b"22"))) == [("a.png", b"1"), ("b.tif", b"22")]
    assert uploaded_files({"a.png": {"metadata": {}, "content": b"1"}}) == [("a.png", b"1")]
    assert uploaded_files(()) == [] and uploaded_files(None) == []


# ------------------------------------------------------------- measurements ---

def test_measurements_match_scikit_image():
    from skimage.measure import regionprops
    labels = np.zeros((60, 80), np.int32)
    yy, xx = np.mgrid[:60, :80]
    labels[(yy - 20) ** 2 + (xx - 20) ** 2 <= 100] = 1       # disc
    labels[40:44, 30:70] = 2                                  # long bar
    labels[0:5, 75:80] = 4                                    # at the border; label 3 absent
    image = np.random.default_rng(1).random((60, 80, 3)).astype(np.float32)
    prob = image[..., 0]
    t = measure_nuclei(labels, image, prob)
    assert list(t) == list(appmod.MEASUREMENT_COLUMNS)
    assert list(t["nucleus"]) == [1, 2, 4]
    for i, rp in enumerate(regionprops(labels, intensity_image=image.mean(axis=2))):
        assert t["area_px"][i] == rp.area
        assert (t["centroid_y"][i], t["centroid_x"][i]) == pytest.approx(rp.centroid)
        assert (t["bbox_y0"][i], t["bbox_x0"][i], t["bbox_y1"][i], t["bbox_x1"][i]) == rp.bbox
        assert t["major_axis_px"][i] == pytest.approx(rp.axis_major_length, rel=1e-6)
        assert t["minor_axis_px"][i] == pytest.approx(rp.axis_minor_length, rel=1e-6)
        assert t["eccentricity"][i] == pytest.approx(rp.eccentricity, abs=1e-6)
        assert t["equivalent_diameter_px"][i] == pytest.approx(rp.equivalent_diameter_area)
        assert t["mean_intensity"][i] == pytest.approx(rp.intensity_mean, rel=1e-5)
        assert t["mean_probability"][i] == pytest.approx(prob[labels == rp.label].mean(), rel=1e-5)
    assert list(t["touches_border"]) == [False, False, True]
    assert t["eccentricity"][0] < 0.2 < 0.9 < t["eccentricity"][1]
    stats = area_stats(t, labels.shape)
    assert stats["count"] == 3 and stats["foreground_px"] == (labels > 0).sum()
    assert stats["area_max"] == 317 and stats["touching_border"] == 1


def test_measurements_of_no_nuclei():
    t = measure_nuclei(np.zeros((10, 10), np.int32))
    assert all(len(v) == 0 for v in t.values())
    s = area_stats(t, (10, 10))
    assert s["count"] == 0 and s["foreground_px"] == 0 and np.isnan(s["area_mean"])
    assert table_to_csv(t).strip() == ",".join(appmod.MEASUREMENT_COLUMNS)


def test_outlines_are_inside_each_nucleus_and_survive_reduction():
    from nucleiseg_lib.app import outline_rgb
    labels = np.zeros((40, 40), np.int32)
    labels[4:14, 4:14], labels[4:14, 14:24] = 1, 2         # two touching squares
    edge = outline_rgb(np.zeros((40, 40, 3), np.uint8), labels)[..., 0] > 0
    assert edge.sum() == 2 * 36 and not edge[labels == 0].any()
    assert edge[8, 13] and edge[8, 14] and not edge[8, 12]  # each square keeps its own 1-pixel outline
    wide = outline_rgb(np.zeros((40, 40, 3), np.uint8), labels, width=2)[..., 0] > 0
    assert wide.sum() == 2 * (36 + 28) and not wide[labels == 0].any()
    small = outline_rgb(np.zeros((10, 10, 3), np.uint8), labels, factor=4)[..., 0] > 0
    assert small.shape == (10, 10) and small[1:4, 1:6].any()


def test_csv_round_trip():
    labels = np.zeros((20, 20), np.int32)
    labels[2:6, 2:6], labels[10:15, 10:18] = 1, 2
    t = measure_nuclei(labels, np.ones((20, 20, 3), np.float32), np.ones((20, 20)))
    rows = list(csv.DictReader(io.StringIO(table_to_csv(t))))
    assert [int(r["area_px"]) for r in rows] == [16, 40]
    assert rows[1]["centroid_x"] == "13.500" and rows[0]["touches_border"] == "false"


# --------------------------------------------------------------- the pipeline ---

@pytest.fixture
def fake_app():
    return SegmentApp(FakePredictor(threshold=0.6))


def test_rules_give_the_thresholds_of_notebook_05(fake_app):
    img, n = discs()
    up = fake_app.add_image(encode(img), "discs.png")
    assert up.prob.shape == (1,) + img.shape       # native resolution
    p = up.prob[0]
    expected = dict(validation=0.6, fixed=0.5, relative=p.max() / 10, otsu=otsu_threshold(p))
    for rule, t in expected.items():
        res = fake_app.segment(up, rule)
        assert res.threshold == pytest.approx(t, abs=1e-6), rule
        assert res.stats["count"] == n and res.labels.shape == img.shape
        assert res.mask.sum() == res.stats["foreground_px"] >= res.stats["nuclei_px"] == (res.labels > 0).sum()
    assert fake_app.segment(up, "manual", 0.95).stats["count"] == 0
    with pytest.raises(ValueError, match="unknown rule"):
        fake_app.segment(up, "median")


def test_download_zip_holds_mask_labels_csv_settings(fake_app):
    img, n = discs()
    img[2:4, 60:62] = 230                                  # a speck under min_size: in the mask, not a nucleus
    res = fake_app.segment(fake_app.add_image(encode(img), "my cells.tif"), "fixed")
    assert res.stats["foreground_px"] == res.stats["nuclei_px"] + 4
    data = fake_app.download_bytes(res)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert sorted(z.namelist()) == ["labels.png", "mask.png", "nuclei.csv", "settings.json"]
        mask = Image.open(io.BytesIO(z.read("mask.png")))
        labels = Image.open(io.BytesIO(z.read("labels.png")))
        settings = json.loads(z.read("settings.json"))
        rows = z.read("nuclei.csv").decode().splitlines()
    assert mask.mode == "L" and set(np.unique(np.asarray(mask))) == {0, 255}
    assert labels.mode.startswith("I;16")
    np.testing.assert_array_equal(np.asarray(labels), res.labels)
    np.testing.assert_array_equal(np.asarray(mask) > 0, res.mask)
    assert (np.asarray(mask) > 0).sum() == settings["foreground_px"] and settings["nuclei_px"] == (res.labels > 0).sum()
    assert len(rows) == n + 1
    assert settings["rule"] == "fixed" and settings["threshold"] == 0.5 and settings["count"] == n
    assert settings["image"] == "my cells.tif" and settings["checkpoint"] == "fake.pt"
    assert settings["min_size"] == 8 and settings["min_score"] == 0.0     # the post-processing, to redo it
    from dataclasses import replace
    from nucleiseg_lib.app.markup import stats_html
    assert "under 8 pixels)" in stats_html(res)
    assert "under 8 pixels and objects of mean probability under 0.8)" in stats_html(replace(res, min_score=0.8))
    assert download_filename("my cells.tif") == "my_cells_nucleiseg.zip"
    assert download_filename("../../x.png") == "x_nucleiseg.zip"
    link = download_link(data, "x.zip")
    import base64
    assert base64.b64decode(link.split("base64,")[1].split('"')[0]) == data
    assert 'download="x.zip"' in link


def test_too_many_labels_for_16_bit_png_is_an_error(fake_app):
    up = fake_app.add_image(encode(discs()[0]), "a.png")
    res = fake_app.segment(up, "fixed")
    res.labels = np.full(res.labels.shape, 70000, np.int32)
    with pytest.raises(ValueError, match="65535"):
        results_zip(res)


def test_keeps_only_the_latest_uploads():
    app = SegmentApp(FakePredictor(), keep=2)
    for i in range(3):
        app.add_image(encode(discs()[0]), f"{i}.png")
    assert [u.name for u in app.uploads] == ["1.png", "2.png"]


# ------------------------------------------------------------------ widgets ---

def test_widget_upload_slider_rule_and_bad_files():
    fake = FakePredictor(threshold=0.6)
    app = SegmentApp(fake)
    ui = app.widget and app._ui
    assert not ui["upload"].disabled and ui["results"].layout.display == "none"
    img, n = discs()
    ui["upload"].value = upload_value(("discs.png", encode(img)))
    assert fake.calls == 1
    assert html_attr(ui["count"].value, "data-count") == str(n)
    assert html_attr(ui["count"].value, "data-name") == "discs.png"
    fg0 = int(html_attr(ui["foreground"].value, "data-foreground"))
    assert ui["upload"].value == ()                       # ready for the same file again
    assert ui["results"].layout.display is None and ui["select"].layout.display == "none"
    assert "discs.png: 128x96 pixels" in ui["message"].value and 'data-kind="ok"' in ui["message"].value
    for key in ("image", "prob", "overlay"):
        png = Image.open(io.BytesIO(ui["panels"][key][0].value))
        assert png.size == (128, 96), key                 # shown at the image's own resolution
    assert "base64," in ui["download"].value and "discs_nucleiseg.zip" in ui["download"].value

    # the slider: manual rule, a new mask, no new prediction
    overlay0 = ui["panels"]["overlay"][0].value
    ui["slider"].value = 0.02                             # below the background: everything is foreground
    assert ui["rule"].value == "manual" and fake.calls == 1
    assert int(html_attr(ui["foreground"].value, "data-foreground")) == img.size != fg0
    assert html_attr(ui["count"].value, "data-count") == "1" and ui["count"].value.endswith("</span> nucleus")
    assert ui["panels"]["overlay"][0].value != overlay0

    # a rule moves the slider to its threshold and stays that rule
    ui["rule"].value = "relative"
    assert ui["rule"].value == "relative" and ui["slider"].value == pytest.approx(0.09, abs=0.006)
    assert app.result.threshold == pytest.approx(app.uploads[0].prob.max() / 10)
    ui["rule"].value = "validation"
    assert ui["slider"].value == 0.6 and html_attr(ui["count"].value, "data-count") == str(n)

    # bad files: a message naming each, the good file of the same upload still segmented
    shown = app.result
    ui["upload"].value = upload_value(("notes.txt", b"hello"), ("empty.png", b""))
    msg = ui["message"].value
    assert 'data-kind="error"' in msg and "notes.txt: is not an image" in msg and "empty.png: is empty" in msg
    assert app.result is shown and fake.calls == 1
    img2, n2 = discs(centres=((30, 30), (60, 90)))
    ui["upload"].value = upload_value(("bad.tif", b"II*\x00garbage"), ("two.png", encode(img2)))
    assert "bad.tif" in ui["message"].value and "two.png: 128x96 pixels" in ui["message"].value
    assert html_attr(ui["count"].value, "data-count") == str(n2)
    assert len(ui["select"].options) == 2 and ui["select"].layout.display is None
    ui["select"].value = 0
    assert html_attr(ui["count"].value, "data-name") == "discs.png" and fake.calls == 2


def test_widget_shows_large_images_reduced_but_segments_at_full_size():
    app = SegmentApp(FakePredictor(), display_max=64)
    ui = app.widget and app._ui
    img, n = discs(h=96, w=200)
    ui["upload"].value = upload_value(("wide.png", encode(img)))
    assert display_factor((96, 200), 64) == 4
    assert Image.open(io.BytesIO(ui["panels"]["overlay"][0].value)).size == (50, 24)
    assert "shown reduced 4x" in ui["panels"]["image"][1].value
    assert app.result.labels.shape == (96, 200) and app.result.stats["count"] == n
    ui["zoom"].value = "full"
    assert ui["panels"]["image"][0].layout.width == "50px"
    ui["zoom"].value = "fit"
    assert ui["panels"]["image"][0].layout.width == "100%"


def test_widget_never_raises_into_the_page():
    class Broken(FakePredictor):
        def predict_proba(self, image):
            raise RuntimeError("out of memory")
    app = SegmentApp(Broken())
    ui = app.widget and app._ui
    ui["upload"].value = upload_value(("a.png", encode(discs()[0])))
    assert "a.png: could not be segmented (RuntimeError: out of memory)" in ui["message"].value


# ------------------------------------------------- the model and its absence ---

def _random_checkpoint(path, out_channels=2):
    from nucleiseg_lib.model import UNet
    from nucleiseg_lib.training.checkpoint import save_checkpoint
    model = UNet(in_channels=3, out_channels=out_channels, base=4, batch_norm=True).eval()
    save_checkpoint(dict(model=model.state_dict(), model_config=model.config, postprocess=None,
                         config=dict(recipe="test"), epoch=0), path)


def test_no_model_explains_how_to_get_one_and_retry_finds_it(tmp_path):
    run = tmp_path / "runs" / "smoke"
    app = SegmentApp.from_run_dir(run, pretrained=False)
    assert not app.ready and "not found" in app.problem
    ui = app.widget and app._ui
    text = ui["model"].value
    assert "No trained model yet" in text and str(run / "best.pt") in text and "04_training" in text
    assert f"nucleiseg train --data auto --run {run} --profile smoke" in text
    assert ui["upload"].disabled and ui["retry"].layout.display is None
    with pytest.raises(CheckpointError):
        app.add_image(encode(discs()[0]), "a.png")

    run.mkdir(parents=True, exist_ok=True)
    (run / "best.pt").write_bytes(b"not a checkpoint")
    assert not app.retry() and "cannot be read" in app.problem and "cannot be read" in ui["model"].value

    _random_checkpoint(run / "best.pt")
    assert app.retry() and not ui["upload"].disabled and ui["retry"].layout.display == "none"
    assert "U-Net base 4" in ui["model"].value
    img, _ = discs(h=37, w=83)
    ui["upload"].value = upload_value(("odd.png", encode(img)))
    assert app.result.upload.prob.shape == (2, 37, 83)   # the real Predictor, at native resolution
    assert app.result.labels.shape == (37, 83)
    assert 'data-kind="ok"' in ui["message"].value


def test_pretrained_message_quotes_the_cards_left_out_score(monkeypatch):
    """A model with test images quotes its own left-out score; one trained on every experiment, its recipe's."""
    from nucleiseg_lib.app import markup
    cards = [dict(recipe="cpu", scores=dict(test=dict(dsb_score=0.349))),
             dict(recipe="cpu", scores={}, left_out_recipe=dict(dsb_score=0.312)), dict(recipe="cpu", scores={})]
    texts = []
    for card in cards:
        monkeypatch.setattr(pretrained, "card", lambda card=card: card)
        texts.append(markup.pretrained_message("runs/cpu", "U-Net base 16"))
    assert "left out of its training is 0.35" in texts[0] and "every experiment" not in texts[0]
    assert "trained on every experiment" in texts[1] and "scored DSB 0.31 on them" in texts[1]
    assert "DSB" not in texts[2] and "Using the pretrained course model" in texts[2]


@pytest.mark.skipif(not pretrained.available(), reason="this installation ships no pretrained model")
def test_without_a_run_the_pretrained_model_is_used_until_one_is_trained(tmp_path):
    run = tmp_path / "runs" / "cpu"
    app = SegmentApp.from_run_dir(run)
    assert app.ready and app.using_pretrained and Path(app.predictor.path) == pretrained.MODEL
    ui = app.widget and app._ui
    text = ui["model"].value
    assert "Using the pretrained course model" in text and str(run / "best.pt") in text and "04_training" in text
    assert "nucleiseg-pretrained" in text and str(pretrained.MODEL) in text
    assert not ui["upload"].disabled and ui["retry"].layout.display is None
    ui["upload"].value = upload_value(("a.png", encode(discs()[0])))
    assert app.result is not None and app.result.labels.max() > 0

    assert app.retry() and app.using_pretrained            # still nothing trained: nothing changes
    assert app.result is not None

    run.mkdir(parents=True, exist_ok=True)
    _random_checkpoint(run / "best.pt")
    assert app.retry() and not app.using_pretrained and app.predictor.path == str(run / "best.pt")
    assert app.result is None and app.uploads == [] and ui["results"].layout.display == "none"
    assert ui["retry"].layout.display == "none" and "U-Net base 4" in ui["model"].value
    assert "pretrained" not in ui["model"].value


def test_upload_limit_follows_the_model_and_the_memory():
    from types import SimpleNamespace
    from nucleiseg_lib.app import MAX_UPLOAD_PIXELS, MIN_UPLOAD_PIXELS, auto_max_pixels

    def pred(base, device="cpu"):
        return SimpleNamespace(device=SimpleNamespace(type=device), model=SimpleNamespace(config=dict(base=base)))
    gib = 2 ** 30
    assert auto_max_pixels(pred(8), available=128 * gib) == MAX_UPLOAD_PIXELS == 4096 * 4096
    assert auto_max_pixels(pred(64), available=4 * gib) == MIN_UPLOAD_PIXELS == 2048 * 2048
    assert MIN_UPLOAD_PIXELS < auto_max_pixels(pred(16), available=8 * gib) < MAX_UPLOAD_PIXELS
    assert auto_max_pixels(pred(64, "cuda"), available=1 * gib) == MAX_UPLOAD_PIXELS
    app = SegmentApp(FakePredictor(), max_pixels=5000)
    with pytest.raises(DataError, match="is 128x96 pixels"):
        app.add_image(encode(discs()[0]), "a.png")


def test_resolve_run_dir(tmp_path):
    assert resolve_run_dir(tmp_path / "r", "cpu") == (tmp_path / "r").resolve()
    assert resolve_run_dir(tmp_path / "r2", "auto").is_dir()


# ----------------------------------------------------------------- notebook ---

def test_notebook_skeleton():
    import nbformat
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "commit without outputs"
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    for line in ('PROFILE = os.environ.get("NUCLEISEG_PROFILE", "auto")',
                 'DATA = os.environ.get("NUCLEISEG_DATA_SPEC", "auto")',
                 'RUN_DIR = os.environ.get("NUCLEISEG_RUN_DIR", "auto")'):
        assert line in params[0].source
    intro = "\n".join(c.source for c in nb.cells[:2] if c.cell_type == "markdown")
    assert nb.cells[0].source.startswith("# 06") and "04_training" in intro and "What you will learn" in intro
    assert ("https://colab.research.google.com/github/nucleiseg/nucleiseg/blob/main/notebooks/"
            "06_segment_your_image.ipynb") in intro
    setup = code[0].source
    assert '"google.colab" in sys.modules' in setup and "git+https://github.com/nucleiseg/nucleiseg" in setup
    assert any("SegmentApp.from_run_dir" in c.source and "app.show()" in c.source for c in code)


@pytest.mark.slow
def test_notebook_runs_headless_without_a_model(tmp_path):
    """nbval's situation when notebook 04 has not run: the notebook must finish and say which model it uses."""
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(NOTEBOOK, as_version=4)
    env = {"NUCLEISEG_RUN_DIR": str(tmp_path / "no_run"), "NUCLEISEG_PROFILE": "smoke",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(REPO / "notebooks")}}
                       ).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    state = json.dumps(nb.metadata.get("widgets", {}))
    assert ("Using the pretrained course model" if pretrained.available() else "No trained model yet") in state
