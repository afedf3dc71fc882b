"""Figures and tables of the course (matplotlib; works headless).

Every figure function returns its :class:`matplotlib.figure.Figure` and takes
``synthetic=False``; with ``synthetic=True`` the figure is stamped with a large
red "SYNTHETIC DATA" watermark and the warning
:data:`nucleiseg_lib.data.locate.SYNTHETIC_WARNING`, so a figure made from
generated images can never be mistaken for a result on microscopy.

In a notebook write ``fig = viz.show_samples(...)``: the figure is shown once,
and ``fig`` can be saved with ``fig.savefig(...)``.
"""

import html
import textwrap

import matplotlib.pyplot as plt  # headless: matplotlib falls back to Agg by itself when there is no display
import numpy as np
from scipy import ndimage

from .data.locate import SYNTHETIC_WARNING
from .data.transforms import instance_contours

STAMP = "SYNTHETIC DATA"
TRUE_COLOUR = (0.2, 1.0, 0.2)     # ground truth outlines: green
PRED_COLOUR = (1.0, 0.2, 1.0)     # predicted outlines: magenta
METHOD_LABELS = {"cc": "connected components", "watershed": "watershed"}


# ---------------------------------------------------------------- warnings ---

def stamp_synthetic(fig, synthetic=True):
    """Stamp a figure as made from synthetic data (does nothing when `synthetic` is false).

    Adds a large translucent red diagonal "SYNTHETIC DATA" across the figure and a
    red banner with :data:`SYNTHETIC_WARNING` above it.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    synthetic : bool

    Returns
    -------
    matplotlib.figure.Figure
        `fig`, for chaining.
    """
    if not synthetic:
        return fig
    width, height = fig.get_size_inches() * 72  # points
    # as large as fits inside the figure once rotated (bold capitals: about 0.65 em per letter)
    size = max(14.0, min(0.85 * width / (0.65 * len(STAMP) * 0.94 + 0.34),
                         0.85 * height / (0.65 * len(STAMP) * 0.34 + 0.94)))
    mark = fig.text(0.5, 0.5, STAMP, transform=fig.transFigure, ha="center", va="center", rotation=20,
                    fontsize=size, color="red", alpha=0.35, fontweight="bold", zorder=1000)
    mark.set_in_layout(False)  # never widens the saved figure
    fig.text(0.5, 1.01, "\n".join(textwrap.wrap(SYNTHETIC_WARNING, int(width / 6.5))), transform=fig.transFigure,
             ha="center", va="bottom", fontsize=11, color="white", fontweight="bold", zorder=1000,
             bbox=dict(facecolor="red", edgecolor="darkred", boxstyle="round,pad=0.4"))
    fig._nucleiseg_synthetic = True
    return fig


def is_stamped(fig):
    """Whether :func:`stamp_synthetic` marked `fig`."""
    return any(t.get_text() == STAMP for t in fig.texts)


def banner(text, colour="#c00000"):
    """Display a loud banner in Jupyter (HTML, with a plain-text fallback), or print it elsewhere.

    Parameters
    ----------
    text : str
    colour : str
        CSS background colour.
    """
    plain = f"\n{'!' * 78}\n!!! {text}\n{'!' * 78}\n"
    rich = (f'<div style="background:{colour};color:white;font-size:1.4em;font-weight:bold;padding:12px 16px;'
            f'border-radius:6px;margin:6px 0">&#9888; {html.escape(text)}</div>')
    _display({"text/html": rich, "text/plain": plain}, plain)


def synthetic_banner():
    """The banner every notebook shows when it runs on synthetic data."""
    banner(SYNTHETIC_WARNING)


def _display(bundle, plain):
    try:
        from IPython import get_ipython
        from IPython.display import display
        if get_ipython() is not None:
            display(bundle, raw=True)
            return
    except ImportError:
        pass
    print(plain)


# ------------------------------------------------------------------ tables ---

def _fmt(value, digits):
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    if isinstance(value, np.ndarray):
        return f"array{value.shape}"
    return str(value)


def format_table(rows, columns=None, digits=3, title=None, synthetic=False, max_rows=40, max_chars=24):
    """Render rows as an HTML table and as plain text (no pandas).

    Parameters
    ----------
    rows : list of dict, or dict key -> value (shown as two columns)
    columns : list of str, optional
        Which keys, in order (default: the keys of the first row); for a dict,
        the names of its two columns (default "name", "value").
    digits : int
        Decimals of floats.
    title : str, optional
    synthetic : bool
        Put the synthetic-data warning above the table.
    max_rows : int
        Rows beyond this are left out (the table says how many).
    max_chars : int
        Longer strings (e.g. 64-character image ids) are shortened with "...".

    Returns
    -------
    html_text, plain_text : str
    """
    if isinstance(rows, dict):
        key, value = columns or ("name", "value")
        rows, columns = [{key: k, value: v} for k, v in rows.items()], [key, value]
    rows = list(rows)
    columns = list(columns or (rows[0].keys() if rows else []))

    def cell(v):
        s = _fmt(v, digits)
        return s if len(s) <= max_chars else s[: max_chars - 3] + "..."

    body = [[cell(r.get(c, "")) for c in columns] for r in rows[:max_rows]]
    more = len(rows) - len(body)
    widths = [max([len(c)] + [len(b[i]) for b in body]) for i, c in enumerate(columns)]
    lines = []
    if synthetic:
        lines.append(f"!!! {SYNTHETIC_WARNING}")
    if title:
        lines.append(title)
    lines.append("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
    lines += ["  ".join(s.rjust(w) for s, w in zip(b, widths)) for b in body]
    if more:
        lines.append(f"... {more} more rows")
    parts = []
    if synthetic:
        parts.append(f'<div style="background:#c00000;color:white;font-weight:bold;padding:6px 10px">&#9888; '
                     f'{html.escape(SYNTHETIC_WARNING)}</div>')
    if title:
        parts.append(f"<b>{html.escape(title)}</b>")
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    trs = "".join("<tr>" + "".join(f'<td style="text-align:right">{html.escape(s)}</td>' for s in b) + "</tr>"
                  for b in body)
    parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
    if more:
        parts.append(f"<i>... {more} more rows</i>")
    return "\n".join(parts), "\n".join(lines)


def table(rows, columns=None, digits=3, title=None, synthetic=False, max_rows=40):
    """Display rows as a table: HTML in Jupyter, text elsewhere (and in PDF exports).

    Parameters are those of :func:`format_table`. Returns nothing, so a cell that
    ends with ``viz.table(...)`` shows the table once.
    """
    rich, plain = format_table(rows, columns, digits, title, synthetic, max_rows)
    _display({"text/html": rich, "text/plain": plain}, plain)


# ---------------------------------------------------------------- overlays ---

def to_rgb(image):
    """Any (H, W) or (H, W, 3) image as float32 RGB in [0, 1]."""
    x = np.asarray(image, np.float32)
    if x.ndim == 2:
        x = np.repeat(x[..., None], 3, axis=2)
    return np.clip(x[..., :3], 0, 1)


def overlay_outline(image, labels_or_mask, colour=(1.0, 1.0, 0.0), thickness=None):
    """The image with the outline of every nucleus drawn in one colour.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3) or (H, W), float in [0, 1]
    labels_or_mask : ndarray, shape (H, W)
        Instance labels (each nucleus outlined, touching ones separated) or a
        binary mask (the outline of the foreground).
    colour : tuple of 3 floats
    thickness : int, optional
        Outline width in pixels; default grows with the image so that outlines stay
        visible when a large image is shown small.

    Returns
    -------
    ndarray, shape (H, W, 3), float32 in [0, 1]
    """
    rgb = to_rgb(image).copy()
    lab = np.asarray(labels_or_mask).astype(np.int32)  # a bool mask becomes one "instance": its outline
    edge = instance_contours(lab)
    if thickness is None:
        thickness = max(1, int(round(max(lab.shape) / 320)))
    if thickness > 1:
        edge = ndimage.binary_dilation(edge, iterations=thickness - 1) & (lab > 0) | edge
    rgb[edge] = colour
    return rgb


def error_map(pred_mask, true_mask):
    """Pixel errors as colours: true positives white, false positives red, false negatives blue.

    Returns
    -------
    ndarray, shape (H, W, 3), float32
    """
    p, t = np.asarray(pred_mask, bool), np.asarray(true_mask, bool)
    out = np.zeros(p.shape + (3,), np.float32)
    out[p & t] = (0.9, 0.9, 0.9)
    out[p & ~t] = (1.0, 0.15, 0.15)
    out[~p & t] = (0.2, 0.5, 1.0)
    return out


def _off(ax):
    ax.set_xticks([])
    ax.set_yticks([])


def _grid(n, ncols, size):
    """A figure with `n` image axes in rows of `ncols` (spare axes hidden): (fig, list of n axes)."""
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False,
                             constrained_layout=True)
    axes = list(axes.ravel())
    for ax in axes:
        _off(ax)
    for ax in axes[n:]:
        ax.axis("off")
    return fig, axes[:n]


def show_samples(images, labels, titles=None, ncols=4, size=3.2, synthetic=False):
    """A grid of images with the outline of every nucleus.

    Parameters
    ----------
    images : list of ndarray (H, W, 3)
    labels : list of ndarray (H, W), instance labels or masks (or None: no outline)
    titles : list of str, optional
    ncols : int
    size : float
        Inches per panel.
    synthetic : bool

    Returns
    -------
    matplotlib.figure.Figure
    """
    n = len(images)
    fig, axes = _grid(n, max(1, min(ncols, n)), size)
    for k, ax in enumerate(axes):
        img = images[k] if labels is None or labels[k] is None else overlay_outline(images[k], labels[k])
        ax.imshow(to_rgb(img), interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[k], fontsize=9)
    return stamp_synthetic(fig, synthetic)


def label_rgb(labels, seed=0):
    """Colour every instance of a label map with its own random bright colour (background black).

    Parameters
    ----------
    labels : ndarray, shape (H, W), int
    seed : int

    Returns
    -------
    ndarray, shape (H, W, 3), float32
    """
    lab = np.asarray(labels).astype(np.int64)
    colours = np.random.default_rng(seed).uniform(0.25, 1.0, (int(lab.max()) + 1, 3)).astype(np.float32)
    colours[0] = 0
    return colours[lab]


def show_panels(panels, titles=None, size=3.2, ncols=None, synthetic=False):
    """Arrays side by side: RGB images as they are, label maps in random colours, other 2-D arrays in grey.

    Parameters
    ----------
    panels : list of ndarray
        (H, W, 3) images; (H, W) integer arrays are drawn as label maps (each
        instance its colour); (H, W) bool or float arrays in grey levels (0 black,
        1 white).
    titles : list of str, optional
    size : float
        Inches per panel.
    ncols : int, optional
        Default: all in one row.
    synthetic : bool

    Returns
    -------
    matplotlib.figure.Figure
    """
    n = len(panels)
    fig, axes = _grid(n, ncols or n, size)
    for k, ax in enumerate(axes):
        a = np.asarray(panels[k])
        if a.ndim == 3:
            ax.imshow(to_rgb(a), interpolation="nearest")
        elif np.issubdtype(a.dtype, np.integer):
            ax.imshow(label_rgb(a), interpolation="nearest")
        else:
            ax.imshow(a.astype(np.float32), cmap="gray", vmin=0, vmax=max(1.0, float(a.max())),
                      interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[k], fontsize=9)
    return stamp_synthetic(fig, synthetic)


def show_prediction(image, prob, pred_labels, true_labels=None, title=None, metrics=None, size=3.6,
                    synthetic=False):
    """One image: ground truth, probability map, predicted nuclei and pixel errors side by side.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3)
    prob : ndarray, shape (H, W) or (C, H, W)
        Nucleus probability (channel 0 is used).
    pred_labels : ndarray, shape (H, W), int
        Predicted instances.
    true_labels : ndarray, shape (H, W), int, optional
        Ground truth; without it only the first three panels are drawn.
    title : str, optional
    metrics : dict, optional
        Shown in the title (e.g. ``iou``, ``dsb_score``).
    synthetic : bool

    Returns
    -------
    matplotlib.figure.Figure
    """
    prob = np.asarray(prob)
    prob = prob[0] if prob.ndim == 3 else prob
    pred_labels = np.asarray(pred_labels)
    panels = 4 if true_labels is not None else 3
    fig, axes = plt.subplots(1, panels, figsize=(size * panels, size * 1.05), constrained_layout=True)
    n_pred = len(np.unique(pred_labels[pred_labels > 0]))
    if true_labels is not None:
        true_labels = np.asarray(true_labels)
        n_true = len(np.unique(true_labels[true_labels > 0]))
        axes[0].imshow(overlay_outline(image, true_labels, TRUE_COLOUR))
        axes[0].set_title(f"ground truth ({n_true} nuclei)", fontsize=10)
    else:
        axes[0].imshow(to_rgb(image))
        axes[0].set_title("image", fontsize=10)
    im = axes[1].imshow(prob, cmap="magma", vmin=0, vmax=1)
    fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.02)
    axes[1].set_title("nucleus probability", fontsize=10)
    axes[2].imshow(overlay_outline(image, pred_labels, PRED_COLOUR))
    axes[2].set_title(f"prediction ({n_pred} nuclei)", fontsize=10)
    if true_labels is not None:
        axes[3].imshow(error_map(pred_labels > 0, true_labels > 0))
        axes[3].set_title("errors: FP red, FN blue", fontsize=10)
    for ax in axes:
        _off(ax)
    text = title or ""
    if metrics:
        text += ("  " if text else "") + "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                                   for k, v in metrics.items())
    if text:
        fig.suptitle(text, fontsize=11)
    return stamp_synthetic(fig, synthetic)


# ------------------------------------------------------------------ charts ---

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
    def line(r):  # one line per method (and, for watershed, per contour threshold of its seeds)
        return r["method"], r.get("contour_threshold")

    for m, ct in dict.fromkeys(line(r) for r in rows):
        sel = sorted((r for r in rows if line(r) == (m, ct)), key=lambda r: r["threshold"])
        label = METHOD_LABELS.get(m, m) + ("" if ct is None else f", seeds where contour < {ct:g}")
        ax.plot([r["threshold"] for r in sel], [r["dsb_score"] for r in sel], "o-", label=label)
    if chosen:
        best = [r for r in rows if all(chosen.get(k) == r[k] for k in ("method", "threshold", "contour_threshold")
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
