"""Tests of the figures, tables and the threshold slider (nucleiseg_lib.viz, nucleiseg_lib.widgets)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy import ndimage  # noqa: E402

from nucleiseg_lib import viz  # noqa: E402
from nucleiseg_lib.data.locate import SYNTHETIC_WARNING  # noqa: E402
from nucleiseg_lib.data.synth import make_synthetic_sample  # noqa: E402
from nucleiseg_lib.widgets import RULES, ThresholdApp, threshold_slider  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def sample():
    image, labels = make_synthetic_sample(np.random.default_rng(1), (64, 80), "fluorescence")
    return image / 255.0, labels


@pytest.fixture(scope="module")
def prob(sample):
    """A plausible probability map: the truth, blurred, so every threshold gives another mask."""
    _, labels = sample
    p = ndimage.gaussian_filter((labels > 0).astype(np.float32), 2.0)
    return (0.05 + 0.9 * p / p.max()).astype(np.float32)[None]


HISTORY = [dict(epoch=e, train_loss=1 / e, val_loss=1.2 / e, val_iou=0.5 + 0.1 * e, lr=1e-3, seconds=1.0)
           for e in range(1, 5)]
SWEEP = [dict(method=m, threshold=t, dsb_score=0.3 + 0.1 * t) for m in ("cc", "watershed") for t in (0.3, 0.5, 0.7)]


def figures(sample, prob):
    image, labels = sample
    return {
        "show_samples": lambda s: viz.show_samples([image, image], [labels, None], ["a", "b"], synthetic=s),
        "show_panels": lambda s: viz.show_panels([image, labels, labels > 0, prob[0]], synthetic=s),
        "show_prediction": lambda s: viz.show_prediction(image, prob, labels, labels, metrics={"IoU": 0.5},
                                                         synthetic=s),
        "bar_counts": lambda s: viz.bar_counts({"a": 3, "b": 1}, synthetic=s),
        "histogram": lambda s: viz.histogram([1, 2, 2, 3, 50], "x", logx=True, groups=list("aabba"),
                                             vline=(2, "mean"), synthetic=s),
        "scatter_sizes": lambda s: viz.scatter_sizes([256, 256, 696], [256, 256, 520], synthetic=s),
        "plot_history": lambda s: viz.plot_history(HISTORY, resumed_at=[2], synthetic=s),
        "plot_threshold_sweep": lambda s: viz.plot_threshold_sweep(SWEEP, dict(method="cc", threshold=0.7),
                                                                   synthetic=s),
        "plot_metric_comparison": lambda s: viz.plot_metric_comparison(
            {"a": dict(pixel_accuracy=0.9, iou=0.5, dice=0.6, dsb_score=0.3), "b": dict(iou=0.4)},
            baseline=(0.88, "all background"), synthetic=s),
    }


@pytest.mark.parametrize("name", ["show_samples", "show_panels", "show_prediction", "bar_counts", "histogram",
                                  "scatter_sizes", "plot_history", "plot_threshold_sweep",
                                  "plot_metric_comparison"])
def test_every_figure_carries_the_synthetic_stamp_only_when_asked(name, sample, prob):
    make = figures(sample, prob)[name]
    fig = make(True)
    assert viz.is_stamped(fig)
    texts = [t.get_text().replace("\n", " ") for t in fig.texts]
    assert any(SYNTHETIC_WARNING in t for t in texts)
    fig.canvas.draw()  # renders without error
    assert not viz.is_stamped(make(False))


def test_plot_history_accepts_tuples_and_missing_validation():
    hist = [dict(epoch=1, train_loss=1.0, val_loss=None, val_iou=None)]
    fig = viz.plot_history(hist)
    fig.canvas.draw()
    fig = viz.plot_threshold_sweep([("cc", 0.5, 0.2), ("cc", 0.6, 0.3)])
    assert len(fig.axes[0].lines) == 1


def test_overlay_outline(sample):
    image, labels = sample
    out = viz.overlay_outline(image, labels, colour=(1, 0, 0), thickness=1)
    assert out.shape == image.shape and out.dtype == np.float32
    red = np.all(out == (1, 0, 0), axis=2)
    assert red.any()
    assert not red[labels == 0].any()          # outlines lie inside nuclei
    inner = ndimage.binary_erosion(labels > 0, iterations=3)
    assert not red[inner].any()                # but not deep inside
    mask_out = viz.overlay_outline(image[..., 0], labels > 0)  # grey image and a bool mask work too
    assert mask_out.shape == image.shape


def test_error_map():
    p = np.array([[1, 1, 0, 0]], bool)
    t = np.array([[1, 0, 1, 0]], bool)
    e = viz.error_map(p, t)
    assert e[0, 0].tolist() == pytest.approx([0.9, 0.9, 0.9])
    assert e[0, 1, 0] == 1.0 and e[0, 2, 2] == 1.0 and not e[0, 3].any()


def test_label_rgb_colours_instances_and_keeps_background_black():
    lab = np.array([[0, 1, 2]])
    rgb = viz.label_rgb(lab)
    assert not rgb[0, 0].any() and rgb[0, 1].any() and not np.array_equal(rgb[0, 1], rgb[0, 2])


def test_format_table():
    rows = [dict(id="x" * 64, score=0.12345, n=3, ok=True), dict(id="short", score=1.0, n=4, ok=False)]
    html, text = viz.format_table(rows, digits=2, title="T", synthetic=True)
    assert "<table>" in html and SYNTHETIC_WARNING in html and "T" in html
    assert "0.12" in text and "0.123" not in text and "..." in text
    assert text.splitlines()[0].startswith("!!!")
    html, text = viz.format_table(rows, columns=["n"], max_rows=1)
    assert "score" not in text and "1 more rows" in text and SYNTHETIC_WARNING not in html
    _, text = viz.format_table({"a": 1.5})
    assert "name" in text and "1.500" in text
    _, text = viz.format_table({"a": 1.5}, columns=["metric", "score"])
    assert text.splitlines()[0].split() == ["metric", "score"]


def test_table_prints_outside_jupyter(capsys):
    viz.table([dict(a=1)], synthetic=True)
    out = capsys.readouterr().out
    assert "SYNTHETIC DATA" in out and "a" in out


# ------------------------------------------------------------------ slider ---

def test_slider_update_changes_the_mask_and_the_numbers(sample, prob):
    image, labels = sample
    app = threshold_slider(None, image, labels, prob=prob)
    low = dict(app.update(0.1))
    low_mask = app.mask.copy()
    high = dict(app.update(0.8))
    assert app.rule == "manual" and app.threshold == 0.8
    assert low_mask.sum() > app.mask.sum()
    assert low["iou"] != high["iou"] and low["dice"] != high["dice"]
    mid = app.update(0.5)
    assert mid["iou"] > low["iou"] and mid["n_pred"] >= 1 and mid["n_true"] == len(np.unique(labels)) - 1
    assert set(mid) >= {"threshold", "n_pred", "n_true", "iou", "dice", "dsb_score", "pixel_accuracy"}


def test_slider_rules(sample, prob):
    image, labels = sample
    app = ThresholdApp(None, image, labels, prob=prob, rule="fixed")
    assert app.threshold == 0.5
    app.update(rule="relative")
    assert app.threshold == pytest.approx(prob[0].max() / 10)
    app.update(rule="otsu")
    assert 0.05 < app.threshold < 0.95 and app.rule == "otsu"
    app.postprocess["threshold"] = 0.37
    app.update(rule="validation")
    assert app.threshold == pytest.approx(0.37)
    assert set(RULES.values()) == {"manual", "fixed", "relative", "otsu", "validation"}


def test_slider_without_truth_counts_nuclei_only(sample, prob):
    image, _ = sample
    app = threshold_slider(None, image, prob=prob[0])
    assert set(app.metrics) == {"threshold", "rule", "n_pred"}
    with pytest.raises(ValueError):
        threshold_slider(None, image)


def test_slider_widget_follows_slider_and_dropdown(sample, prob):
    pytest.importorskip("ipywidgets")
    image, labels = sample
    app = threshold_slider(None, image, labels, prob=prob, synthetic=True)
    w = app.widget
    assert app.picture.value[:8] == b"\x89PNG\r\n\x1a\n"
    before = dict(app.metrics)
    app.slider.value = 0.2                       # what a student's drag does
    assert app.rule == "manual" and app.threshold == pytest.approx(0.2)
    assert app.metrics["iou"] != before["iou"]
    assert "0.200" in app.scores.value and "SYNTHETIC" in app.scores.value
    app.dropdown.value = "otsu"                  # picking a rule moves the slider
    assert app.slider.value == pytest.approx(round(app.threshold, 4))
    assert app.dropdown.value == "otsu"
    app.update(0.6)                              # code moves the widgets too
    assert app.slider.value == pytest.approx(0.6) and app.dropdown.value == "manual"
    assert w is app.widget


def test_slider_with_a_predictor(tmp_path, sample):
    import torch

    from nucleiseg_lib.inference import Predictor
    from nucleiseg_lib.model import UNet
    from nucleiseg_lib.training import save_checkpoint
    torch.manual_seed(0)
    model = UNet(3, 2, base=4)
    save_checkpoint(dict(model=model.state_dict(), model_config=model.config, epoch=1, history=[],
                         postprocess=dict(threshold=0.45, method="watershed")), tmp_path / "best.pt")
    image, labels = sample
    app = threshold_slider(Predictor(tmp_path / "best.pt"), image, labels)
    assert app.prob.shape == (2,) + labels.shape
    assert app.rule == "validation" and app.threshold == pytest.approx(0.45)
    assert len(app.render_png()) > 1000
