"""Figures of images: samples with outlines, panels side by side, a prediction against the truth."""

import matplotlib.pyplot as plt  # headless: matplotlib falls back to Agg by itself when there is no display
import numpy as np

from .pictures import PRED_COLOUR, TRUE_COLOUR, error_map, label_rgb, overlay_outline, to_rgb
from .stamp import stamp_synthetic

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
