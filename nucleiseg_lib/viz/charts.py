"""Charts of the course: counts, histograms, sizes, training history, threshold sweeps, comparisons."""

import matplotlib.pyplot as plt  # headless: matplotlib falls back to Agg by itself when there is no display
import numpy as np

from .stamp import stamp_synthetic

METHOD_LABELS = {"cc": "connected components", "watershed": "watershed", "distance": "distance watershed"}

def bar_counts(counts, title=None, xlabel=None, ylabel="images", synthetic=False, figsize=(6, 3.2)):
    """Bar chart of counts (e.g. images per modality or per size).

    Parameters
    ----------
    counts : dict label -> int
    title, xlabel, ylabel : str, optional
    synthetic : bool

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    labels, values = list(map(str, counts)), list(counts.values())
    bars = ax.bar(range(len(values)), values, color="tab:blue")
    ax.bar_label(bars, fontsize=9)
    ax.set_xticks(range(len(values)), labels, rotation=30 if len(labels) > 4 else 0,
                  ha="right" if len(labels) > 4 else "center")
    ax.set_ylabel(ylabel)
    if xlabel:
        ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title)
    ax.margins(y=0.15)
    return stamp_synthetic(fig, synthetic)


def histogram(values, xlabel, title=None, bins=30, logx=False, groups=None, ylabel="count", vline=None,
              synthetic=False, figsize=(6, 3.2)):
    """Histogram, optionally stacked by group (e.g. by modality).

    Parameters
    ----------
    values : array_like
    xlabel : str
    title : str, optional
    bins : int
    logx : bool
        Logarithmic bins and axis (for nucleus areas, which span decades).
    groups : array_like of str, optional
        One label per value: one stacked colour per group.
    vline : (float, str), optional
        A vertical marker line and its label (e.g. the mean).
    synthetic : bool

    Returns
    -------
    matplotlib.figure.Figure
    """
    values = np.asarray(values, np.float64)
    fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    if len(values):
        lo, hi = float(values.min()), float(values.max())
        if logx:
            lo = max(lo, 0.5)
            edges = np.geomspace(lo, max(hi, lo * 1.01), bins + 1)
        else:
            edges = np.linspace(lo, hi if hi > lo else lo + 1, bins + 1)
        if groups is None:
            ax.hist(values, bins=edges, color="tab:blue")
        else:
            groups = np.asarray(groups)
            names = [g for g, _ in sorted(((g, -np.sum(groups == g)) for g in set(groups.tolist())),
                                          key=lambda t: t[1])]
            ax.hist([values[groups == g] for g in names], bins=edges, stacked=True, label=names)
            ax.legend(fontsize=8)
        if logx:
            ax.set_xscale("log")
    if vline is not None:
        ax.axvline(vline[0], color="black", linestyle="--", linewidth=1)
        ax.text(vline[0], ax.get_ylim()[1] * 0.95, f" {vline[1]}", va="top", fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return stamp_synthetic(fig, synthetic)


def scatter_sizes(widths, heights, groups=None, title="image sizes", synthetic=False, figsize=(5, 4)):
    """Scatter of image width against height (marker area grows with the number of images of that size).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from collections import Counter
    fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    groups = ["images"] * len(widths) if groups is None else list(groups)
    for g in sorted(set(groups)):
        c = Counter((w, h) for w, h, gg in zip(widths, heights, groups) if gg == g)
        ax.scatter([k[0] for k in c], [k[1] for k in c], s=[20 + 4 * v for v in c.values()], alpha=0.6, label=g)
    ax.set_xlabel("width (pixels)")
    ax.set_ylabel("height (pixels)")
    ax.legend(fontsize=8)
    ax.set_title(title)
    return stamp_synthetic(fig, synthetic)


def plot_history(history, resumed_at=None, title=None, synthetic=False, figsize=(10, 3.5)):
    """Training curves: train and validation loss, and validation IoU, over the whole history.

    Parameters
    ----------
    history : list of dict
        Entries with ``epoch``, ``train_loss``, ``val_loss`` and ``val_iou`` (as
        stored in a checkpoint, so a resumed run shows all its epochs).
    resumed_at : list of int, optional
        Epochs after which training was resumed: drawn as dashed lines.
    title : str, optional
    synthetic : bool

    Returns
    -------
    matplotlib.figure.Figure
    """
    ep = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=figsize, constrained_layout=True)
    ax1.plot(ep, [h["train_loss"] for h in history], "o-", label="train loss")
    if any(h.get("val_loss") is not None for h in history):
        ax1.plot(ep, [np.nan if h.get("val_loss") is None else h["val_loss"] for h in history], "s-",
                 label="validation loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ious = [np.nan if h.get("val_iou") is None else h["val_iou"] for h in history]
    ax2.plot(ep, ious, "o-", color="tab:green", label="validation IoU (threshold 0.5)")
    if np.isfinite(ious).any():
        b = int(np.nanargmax(ious))
        ax2.plot([ep[b]], [ious[b]], "*", color="gold", markersize=16, markeredgecolor="black",
                 label=f"best: epoch {ep[b]} (best.pt)")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("IoU")
    ax2.set_ylim(0, 1.02)
    for ax in (ax1, ax2):
        for r in resumed_at or []:
            ax.axvline(r + 0.5, color="gray", linestyle="--", linewidth=1)
            ax.text(r + 0.5, 0.02, " resumed", transform=ax.get_xaxis_transform(), fontsize=8, color="gray")
        ax.legend(fontsize=8)
        if ep:
            ax.set_xticks(ep if len(ep) <= 20 else ax.get_xticks())
    if title:
        fig.suptitle(title)
    return stamp_synthetic(fig, synthetic)


def plot_threshold_sweep(sweep, chosen=None, synthetic=False, figsize=(6, 3.5)):
    """Mean validation DSB score against threshold, one line per instance method.

    Parameters
    ----------
    sweep : list of dict (``method``, ``threshold``, ``dsb_score``, optional ``contour_threshold``) or of
        (method, threshold, dsb_score) tuples
        As stored by :func:`nucleiseg_lib.inference.calibrate`.
    chosen : dict, optional
        With ``method`` and ``threshold``: marked with a star.
    synthetic : bool

    Returns
    -------
    matplotlib.figure.Figure
    """
    rows = [r if isinstance(r, dict) else dict(method=r[0], threshold=r[1], dsb_score=r[2]) for r in sweep]
    fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    def line(r):  # one line per method (and per contour or distance threshold of its seeds)
        return r["method"], r.get("contour_threshold"), r.get("distance_threshold")

    for m, ct, dt in dict.fromkeys(line(r) for r in rows):
        sel = sorted((r for r in rows if line(r) == (m, ct, dt)), key=lambda r: r["threshold"])
        label = (METHOD_LABELS.get(m, m) + ("" if ct is None else f", seeds where contour < {ct:g}")
                 + ("" if dt is None else f", seeds where distance > {dt:g}"))
        ax.plot([r["threshold"] for r in sel], [r["dsb_score"] for r in sel], "o-", label=label)
    if chosen:
        best = [r for r in rows if all(chosen.get(k) == r[k] for k in ("method", "threshold", "contour_threshold",
                                                                                   "distance_threshold")
                                       if k in r)]
        if best:
            ax.plot([best[0]["threshold"]], [best[0]["dsb_score"]], "*", color="gold", markersize=16,
                    markeredgecolor="black", label=f"chosen: {chosen['method']} at {chosen['threshold']:.2f}")
    ax.set_xlabel("threshold on the nucleus probability")
    ax.set_ylabel("mean DSB score (validation)")
    ax.legend(fontsize=8)
    return stamp_synthetic(fig, synthetic)


def plot_metric_comparison(summaries, metrics=("pixel_accuracy", "iou", "dice", "dsb_score"), baseline=None,
                           title=None, synthetic=False, figsize=(8, 3.8)):
    """Grouped bars: each metric for each variant (threshold rule, instance method...).

    Parameters
    ----------
    summaries : dict name -> dict metric -> float
        E.g. ``{"max/10": summarize_rows(rows), ...}``.
    metrics : tuple of str
    baseline : (float, str), optional
        A horizontal line, e.g. the pixel accuracy of an all-background prediction.
    title : str, optional
    synthetic : bool

    Returns
    -------
    matplotlib.figure.Figure
    """
    names = list(summaries)
    fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    w = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        vals = [summaries[name].get(m, np.nan) for m in metrics]
        bars = ax.bar(np.arange(len(metrics)) + (i - (len(names) - 1) / 2) * w, vals, w, label=name)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    if baseline is not None:
        ax.axhline(baseline[0], color="red", linestyle="--", linewidth=1)
        ax.text(len(metrics) - 0.5, baseline[0], f"{baseline[1]} {baseline[0]:.3f}", color="red", ha="right",
                va="bottom", fontsize=8)
    ax.set_xticks(range(len(metrics)), [m.replace("_", " ") for m in metrics])
    ax.set_ylim(0, 1.12)
    ax.legend(fontsize=8, ncol=min(len(names), 4), loc="upper center", bbox_to_anchor=(0.5, -0.1))
    if title:
        ax.set_title(title)
    return stamp_synthetic(fig, synthetic)
