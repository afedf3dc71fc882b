"""The report's first page: the results of the run, for a reader who reads nothing else.

Notebook 05 computes the numbers (:func:`build_summary`) and stores them in the run
folder with an example figure (:func:`save_summary`: ``summary.json`` and
``summary.png``). The report runner turns them into the first section after the
cover (:func:`summary_notebook`), so every number on the page comes from the run.
"""

import json
from collections import Counter
from pathlib import Path

import numpy as np

from ..inference.postprocess import settings_only
from ..metrics import summarize_groups

JSON_NAME, FIGURE_NAME = "summary.json", "summary.png"
KEYS = ("pixel_accuracy", "iou", "dice", "dsb_score")


def _mean(rows, key):
    return float(np.mean([r[key] for r in rows])) if rows else None


def build_summary(state, splits, baselines, kinds):
    """The numbers of the results page.

    Parameters
    ----------
    state : dict
        The checkpoint (``Predictor.state``): config, data, history, postprocess, split.
    splits : dict name -> list of dict
        Per-image rows (:func:`nucleiseg_lib.inference.evaluate_predictions`) of
        ``"validation"`` and, when there is one, ``"test"``.
    baselines : dict name -> list of dict
        The all-background rows (:func:`nucleiseg_lib.data.stats.all_background_scores`) of the same images.
    kinds : dict id -> str
        The kind of every image (training ones included), e.g. from
        :func:`nucleiseg_lib.data.stats.classify_modality`.

    Returns
    -------
    dict
        JSON-ready: ``data``, ``recipe``, ``training`` (epochs, seconds, best
        epoch), ``postprocess`` (threshold, method), ``scores`` (one row per split
        with the baseline beside it) and ``by_kind`` (one row per kind and split,
        with the number of training images of that kind).
    """
    cfg, hist = state.get("config", {}), state.get("history", [])
    split = state.get("split") or {}
    best = max((h for h in hist if h.get("val_iou") is not None), key=lambda h: h["val_iou"], default={})
    train_kinds = Counter(kinds[i] for i in split.get("train", []) if i in kinds)
    scores, by_kind = [], []
    for name, rows in splits.items():
        scores.append(dict(split=name, images=len(rows), **{k: _mean(rows, k) for k in KEYS},
                           background_pixel_accuracy=_mean(baselines.get(name, []), "pixel_accuracy")))
        for kind, s in summarize_groups(rows, kinds).items():
            by_kind.append(dict(kind=kind, split=name, images=s["n_images"], train_images=train_kinds.get(kind, 0),
                                dsb_score=s["dsb_score"], iou=s["iou"]))
    post = settings_only(state.get("postprocess"))
    return dict(
        data={k: v for k, v in (state.get("data") or {}).items()},
        split=dict(method=split.get("method", "random"), train=len(split.get("train", [])),
                   val=len(split.get("val", [])), test=len(split.get("test", []))),
        recipe=dict(name=cfg.get("recipe"), base=cfg.get("base"), loss=cfg.get("loss"), targets=cfg.get("targets"),
                    mode=cfg.get("mode"), size=cfg.get("size"), epochs=cfg.get("epochs"), augment=cfg.get("augment")),
        training=dict(epochs=len(hist), seconds=float(sum(h.get("seconds", 0) for h in hist)),
                      best_epoch=best.get("epoch"), best_val_iou=best.get("val_iou")),
        postprocess=post, scores=scores, by_kind=by_kind)


def save_summary(summary, run_dir, figure=None):
    """Write ``summary.json`` (and the example figure as ``summary.png``) into `run_dir`; return the JSON path.

    Without a run folder (05 on the pretrained model, nothing trained) they go to ``./summary``.
    """
    run_dir = Path(run_dir) if run_dir is not None else Path.cwd() / "summary"
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / JSON_NAME
    path.write_text(json.dumps(summary, indent=1, default=float), encoding="utf-8")
    if figure is not None:
        figure.savefig(run_dir / FIGURE_NAME, dpi=110, bbox_inches="tight")
    return path


def _fmt(v, digits=3):
    if v is None:
        return "–"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def summary_markdown(summary):
    """The results page as Markdown (tables and sentences, every number from `summary`)."""
    d, r, t, p, s = (summary[k] for k in ("data", "recipe", "training", "postprocess", "split"))
    synthetic = d.get("source") == "synthetic"
    lines = ["# Results", ""]
    if synthetic:
        lines += ["**SYNTHETIC DATA: these numbers say nothing about microscopy.**", ""]
    lines += [
        f"**Data:** {d.get('source', '?')} data, {d.get('n_images', '?')} images ({d.get('root', '')}); "
        f"split {s['method']}: {s['train']} training, {s['val']} validation, {s['test']} test images.",
        f"**Recipe:** `{r['name']}`: U-Net base {r['base']}, outputs {', '.join(r['targets'] or [])}, loss "
        f"{r['loss']}, {r['mode']} {r['size']}, augmentation {'on' if r['augment'] else 'off'}.",
        f"**Training:** {t['epochs']} epochs in {t['seconds'] / 60:.1f} min; best epoch {t['best_epoch']} "
        f"(validation IoU {_fmt(t['best_val_iou'])}).",
        f"**Chosen on validation:** threshold {_fmt(p.get('threshold'), 2)}, instances by "
        f"{p.get('method', '?')}.",
        "",
        "| split | images | pixel accuracy | all background | IoU | Dice | DSB score |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in summary["scores"]:
        lines.append(f"| {row['split']} | {row['images']} | {_fmt(row['pixel_accuracy'])} | "
                     f"{_fmt(row['background_pixel_accuracy'])} | {_fmt(row['iou'])} | {_fmt(row['dice'])} | "
                     f"{_fmt(row['dsb_score'])} |")
    if not any(row["split"] == "test" for row in summary["scores"]):
        lines += ["", "*No test images in this run (random split, or too few images): validation only; the "
                      "validation images chose the epoch, the threshold and the method, so they flatter the model.*"]
    lines += ["", "| kind | training images | split | images | IoU | DSB score |", "|---|---:|---|---:|---:|---:|"]
    for row in summary["by_kind"]:
        lines.append(f"| {row['kind']} | {row['train_images']} | {row['split']} | {row['images']} | "
                     f"{_fmt(row['iou'])} | {_fmt(row['dsb_score'])} |")
    return "\n".join(lines)


def summary_notebook(run_dir):
    """The results page as an executed notebook (markdown and the example figure), or None if 05 wrote none.

    The report runner writes it as ``executed/00_results_summary.ipynb`` and places it
    first, right after the cover and the contents.
    """
    import base64

    import nbformat
    run_dir = Path(run_dir)
    if not (run_dir / JSON_NAME).is_file():
        return None
    summary = json.loads((run_dir / JSON_NAME).read_text(encoding="utf-8"))
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell(summary_markdown(summary)))
    if (run_dir / FIGURE_NAME).is_file():
        png = base64.b64encode((run_dir / FIGURE_NAME).read_bytes()).decode()
        cell = nbformat.v4.new_code_cell("", metadata={"tags": ["hide-input"]})
        cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "examples"})]
        nb.cells.append(cell)
    return nb
