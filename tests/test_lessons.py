"""The lesson helpers: viz_lessons figures and the report's results page (small arrays built by hand)."""

import json

import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")

from nucleiseg_lib.metrics import match_table  # noqa: E402
from nucleiseg_lib.report.summary import build_summary, save_summary, summary_markdown, summary_notebook  # noqa: E402
from nucleiseg_lib.viz import is_stamped  # noqa: E402
from nucleiseg_lib.viz_lessons import display_range, plot_match_table, show_batch, show_receptive_field  # noqa: E402


def test_display_range_stretches_to_unit_interval():
    x = np.stack([np.arange(16, dtype=np.float32).reshape(4, 4) * 3 - 20] * 3)
    out = display_range(x)
    assert out.shape == (4, 4, 3) and out.min() == 0 and out.max() == 1
    assert display_range(x[:1]).shape == (4, 4, 3)


def test_show_batch_one_row_per_crop():
    x, y = torch.randn(3, 3, 8, 8), (torch.rand(3, 2, 8, 8) > 0.5).float()
    fig = show_batch(x, y, ("mask", "contour"), n=2, synthetic=True)
    assert len([a for a in fig.axes if a.get_visible()]) == 6 and is_stamped(fig)


def test_receptive_field_and_match_table_figures():
    fig = show_receptive_field(np.zeros((50, 60, 3)), 20)
    assert fig.axes[0].patches[0].get_width() == 20
    true = np.array([[1, 1, 0, 2]])
    fig = plot_match_table(match_table(true, np.array([[1, 1, 0, 0]])))
    assert "DSB score 0.500" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()][1]


def rows(ids, dsb):
    return [dict(id=i, pixel_accuracy=0.9, iou=0.5, dice=0.6, dsb_score=d) for i, d in zip(ids, dsb)]


def test_results_page_from_the_run(tmp_path):
    state = dict(config=dict(recipe="smoke", base=8, loss="bce+dice", targets=["mask", "contour"], mode="crop",
                             size=128, epochs=2, augment=True),
                 data=dict(source="synthetic", n_images=6), postprocess=dict(threshold=0.45, method="watershed"),
                 history=[dict(epoch=1, val_iou=0.3, seconds=10.0), dict(epoch=2, val_iou=0.2, seconds=12.0)],
                 split=dict(train=["a", "b", "c"], val=["d"], test=["e", "f"], method="experiments"))
    kinds = dict(a="fluorescence", b="fluorescence", c="stained", d="fluorescence", e="stained", f="fluorescence")
    splits = dict(validation=rows(["d"], [0.4]), test=rows(["e", "f"], [0.2, 0.6]))
    baselines = {k: [dict(id=r["id"], pixel_accuracy=0.8) for r in v] for k, v in splits.items()}
    s = build_summary(state, splits, baselines, kinds)
    assert s["training"] == dict(epochs=2, seconds=22.0, best_epoch=1, best_val_iou=0.3)
    assert s["split"] == dict(method="experiments", train=3, val=1, test=2)
    test = next(r for r in s["scores"] if r["split"] == "test")
    assert test["dsb_score"] == 0.4 and test["background_pixel_accuracy"] == 0.8 and test["images"] == 2
    stained = next(r for r in s["by_kind"] if r["split"] == "test" and r["kind"] == "stained")
    assert (stained["train_images"], stained["images"], stained["dsb_score"]) == (1, 1, 0.2)
    text = summary_markdown(s)
    assert "SYNTHETIC" in text and "| test | 2 |" in text and "threshold 0.45" in text
    save_summary(s, tmp_path)
    assert json.loads((tmp_path / "summary.json").read_text())["postprocess"]["method"] == "watershed"
    nb = summary_notebook(tmp_path)
    assert nb.cells[0].source.startswith("# Results")
    assert summary_notebook(tmp_path / "nothing") is None
