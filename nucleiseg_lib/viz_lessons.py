"""Figures of the lessons: a batch as the network sees it, the receptive field, the DSB score threshold by threshold.

Built on :mod:`nucleiseg_lib.viz` (its panels, outlines and synthetic-data stamp).
"""

import matplotlib.pyplot as plt
import numpy as np

from .viz import show_panels, stamp_synthetic, to_rgb


def display_range(x):
    """A normalised network input (C, H, W), any range, as an image (H, W, 3) in [0, 1] for display.

    Parameters
    ----------
    x : ndarray or Tensor, shape (C, H, W)
        C is 3 (RGB) or 1 (one channel, drawn in grey).

    Returns
    -------
    ndarray, shape (H, W, 3), float32
        Stretched so that the 1st and 99th percentiles map to 0 and 1.
    """
    a = np.asarray(x, np.float32)
    lo, hi = np.percentile(a, [1, 99])
    a = np.clip((a - lo) / max(hi - lo, 1e-6), 0, 1)
    return to_rgb(np.moveaxis(a, 0, -1) if a.shape[0] == 3 else a[0])


def show_batch(x, y, targets=("mask",), n=4, synthetic=False):
    """A training batch as the network sees it: one row per crop, the input then each target channel.

    Parameters
    ----------
    x : Tensor or ndarray, shape (B, C, H, W)
        Inputs (normalised, augmented crops).
    y : Tensor or ndarray, shape (B, T, H, W)
        Targets in {0, 1}, one channel per name of `targets`.
    targets : sequence of str
    n : int
        Rows to show (at most B).
    synthetic : bool

    Returns
    -------
    matplotlib.figure.Figure
    """
    x, y = np.asarray(x), np.asarray(y)
    panels, titles = [], []
    for b in range(min(n, len(x))):
        panels.append(display_range(x[b]))
        titles.append(f"input {b}: {x.shape[2]} x {x.shape[3]}")
        for t, name in enumerate(targets):
            panels.append(y[b, t].astype(bool))
            titles.append(f"target: {name}")
    return show_panels(panels, titles, size=2.4, ncols=1 + len(targets), synthetic=synthetic)


def show_receptive_field(image, size, centre=None, synthetic=False):
    """An image with the square of side `size` that one output pixel (at `centre`) depends on.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3) or (H, W)
    size : int
        The receptive field, e.g. ``model.receptive_field(model)``.
    centre : (int, int), optional
        Row and column of the output pixel; default the image's centre.
    synthetic : bool

    Returns
    -------
    matplotlib.figure.Figure
    """
    rgb = to_rgb(image)
    r, c = centre if centre is not None else (rgb.shape[0] // 2, rgb.shape[1] // 2)
    fig, ax = plt.subplots(figsize=(4.5, 4.5 * rgb.shape[0] / rgb.shape[1]), constrained_layout=True)
    ax.imshow(rgb)
    ax.add_patch(plt.Rectangle((c - size / 2, r - size / 2), size, size, fill=False, color="yellow", lw=2))
    ax.plot([c], [r], "r+", ms=12, mew=2)
    ax.set_title(f"one output pixel (+) sees {size} x {size} input pixels", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return stamp_synthetic(fig, synthetic)


def plot_match_table(table, title=None, synthetic=False, figsize=(6, 3.2)):
    """The DSB score of one image, threshold by threshold: AP and the counts of matches against IoU threshold.

    Parameters
    ----------
    table : list of dict
        From :func:`nucleiseg_lib.metrics.match_table` (``threshold``, ``tp``, ``fp``, ``fn``, ``ap``).
    title : str, optional
    synthetic : bool

    Returns
    -------
    matplotlib.figure.Figure
        AP (left axis) and TP / FP / FN (right axis) against the IoU threshold; the
        dashed line is the mean AP, the image's DSB score.
    """
    t = [r["threshold"] for r in table]
    ap = [r["ap"] for r in table]
    fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    ax.plot(t, ap, "o-", color="k", label="AP = TP / (TP + FP + FN)")
    ax.axhline(np.mean(ap), ls="--", color="grey", label=f"mean: DSB score {np.mean(ap):.3f}")
    ax.set_xlabel("IoU threshold (a match needs IoU > threshold)")
    ax.set_ylabel("AP")
    ax.set_ylim(0, 1.02)
    counts = ax.twinx()
    for key, colour in (("tp", "tab:green"), ("fp", "tab:red"), ("fn", "tab:blue")):
        counts.plot(t, [r[key] for r in table], ".:", color=colour, label=key.upper())
    counts.set_ylabel("nuclei")
    lines = ax.get_legend_handles_labels()
    more = counts.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="lower left")
    ax.set_title(title or "the DSB score of one image", fontsize=10)
    return stamp_synthetic(fig, synthetic)
