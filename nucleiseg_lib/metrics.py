"""Segmentation metrics: pixel scores on binary masks, object scores on label maps.

Pixel metrics take two binary arrays of the same shape (anything nonzero is
foreground). Object metrics take two integer label maps ``[H, W]`` where 0 is
background and every other value is one nucleus; ids need not be contiguous.

The object score is the one of the 2018 Data Science Bowl: at an IoU threshold
``t`` a true and a predicted nucleus match when their IoU is strictly greater
than ``t`` (one-to-one), and ``AP(t) = TP / (TP + FP + FN)``. The image score
:func:`dsb_score` is the mean of ``AP(t)`` over :data:`DSB_THRESHOLDS`.
"""

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = [
    "DSB_THRESHOLDS", "pixel_accuracy", "iou", "dice", "precision", "recall",
    "iou_matrix", "match_instances", "average_precision", "dsb_score",
    "evaluate_image", "summarize", "match_table", "summarize_groups", "nucleus_outcomes",
]

#: IoU thresholds of the DSB 2018 score: 0.50, 0.55, ..., 0.95 (10 values).
DSB_THRESHOLDS = np.round(np.arange(0.5, 1.0, 0.05), 2)


def _check_shapes(a, b, name_a, name_b):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {name_a} has shape {a.shape}, "
                         f"{name_b} has shape {b.shape}")
    return a, b


def _counts(pred, true):
    """Return (tp, fp, fn, tn) pixel counts of two binary arrays."""
    pred, true = _check_shapes(pred, true, "pred", "true")
    p, t = pred.astype(bool), true.astype(bool)
    tp = int(np.count_nonzero(p & t))
    fp = int(np.count_nonzero(p & ~t))
    fn = int(np.count_nonzero(~p & t))
    return tp, fp, fn, p.size - tp - fp - fn


def _ratio(num, den):
    return 1.0 if den == 0 else float(num) / float(den)


def pixel_accuracy(pred, true):
    """Fraction of pixels where `pred` and `true` agree.

    Parameters
    ----------
    pred, true : array_like of bool or int, any equal shape
        Binary masks; nonzero is foreground.

    Returns
    -------
    float
        ``(TP + TN) / N``; 1.0 for empty arrays.
    """
    tp, fp, fn, tn = _counts(pred, true)
    return _ratio(tp + tn, tp + fp + fn + tn)


def iou(pred, true):
    """Foreground intersection over union ``TP / (TP + FP + FN)`` (1.0 if both empty)."""
    tp, fp, fn, _ = _counts(pred, true)
    return _ratio(tp, tp + fp + fn)


def dice(pred, true):
    """Dice coefficient ``2 TP / (2 TP + FP + FN)`` (1.0 if both empty)."""
    tp, fp, fn, _ = _counts(pred, true)
    return _ratio(2 * tp, 2 * tp + fp + fn)


def precision(pred, true):
    """Pixel precision ``TP / (TP + FP)`` (1.0 if `pred` is empty)."""
    tp, fp, _, _ = _counts(pred, true)
    return _ratio(tp, tp + fp)


def recall(pred, true):
    """Pixel recall ``TP / (TP + FN)`` (1.0 if `true` is empty)."""
    tp, _, fn, _ = _counts(pred, true)
    return _ratio(tp, tp + fn)


def _relabel(labels, name):
    """Map the ids of a label map to 0 (background), 1..n; return (flat, n)."""
    labels = np.asarray(labels)
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        if labels.size and not np.array_equal(labels, np.round(labels)):
            raise ValueError(f"{name} must hold integer labels, got dtype {labels.dtype}")
    flat = labels.ravel()
    if flat.dtype.kind in "bui" and flat.size and 0 <= flat.min() and flat.max() < 4 * flat.size:
        flat = flat.astype(np.intp)
        present = np.bincount(flat) > 0  # lookup table, no sort
        present[0] = False
        table = np.cumsum(present) * present
        return table[flat], int(present.sum())
    ids, inverse = np.unique(flat, return_inverse=True)
    new = np.zeros(ids.size, dtype=np.intp)
    fg = ids != 0
    new[fg] = np.arange(1, np.count_nonzero(fg) + 1)
    return new[inverse.ravel()], int(np.count_nonzero(fg))


def iou_matrix(true_labels, pred_labels):
    """IoU between every true and every predicted instance.

    Parameters
    ----------
    true_labels, pred_labels : ndarray of int, shape (H, W)
        Label maps; 0 is background, ids need not be contiguous.

    Returns
    -------
    ndarray of float, shape (n_true, n_pred)
        ``out[i, j]`` is the IoU of the i-th true and j-th predicted object,
        objects ordered by increasing id.
    """
    return _ious(_joint(true_labels, pred_labels))


def _ious(joint):
    """The IoU matrix (n_true, n_pred) of a :func:`_joint` count table."""
    area_true, area_pred = joint.sum(axis=1)[1:], joint.sum(axis=0)[1:]
    inter = joint[1:, 1:].astype(float)
    union = area_true[:, None] + area_pred[None, :] - inter
    return inter / np.maximum(union, 1)


def _joint(true_labels, pred_labels):
    """Pixel counts ``joint[i, j]`` of true object i and predicted object j (row and column 0: background)."""
    true_labels, pred_labels = _check_shapes(true_labels, pred_labels,
                                             "true_labels", "pred_labels")
    t, n_true = _relabel(true_labels, "true_labels")
    p, n_pred = _relabel(pred_labels, "pred_labels")
    joint = np.bincount(t * (n_pred + 1) + p, minlength=(n_true + 1) * (n_pred + 1))
    return joint.reshape(n_true + 1, n_pred + 1)


def nucleus_outcomes(true_labels, pred_labels):
    """What happened to each true nucleus, and how many predictions are spurious.

    Parameters
    ----------
    true_labels, pred_labels : ndarray of int, shape (H, W)
        Label maps; 0 is background.

    Returns
    -------
    dict of int
        Counts of true nuclei, each in exactly one class, checked in this order:

        - ``matched``: a predicted object overlaps it with IoU > 0.5;
        - ``missed``: under half of its pixels lie in any predicted object;
        - ``merged``: over half of it lies in one predicted object that also holds over half of
          another true nucleus (touching nuclei not separated);
        - ``other``: the rest (cut into pieces, or an outline too far off).

        And ``spurious``: predicted objects with under half of their pixels on any true nucleus.

    Examples
    --------
    >>> true = np.array([[1, 1, 2, 2, 0, 3]])
    >>> pred = np.array([[5, 5, 5, 5, 0, 0]])      # 1 and 2 merged, 3 missed
    >>> nucleus_outcomes(true, pred)
    {'matched': 0, 'missed': 1, 'merged': 2, 'other': 0, 'spurious': 0}
    """
    joint = _joint(true_labels, pred_labels)
    inter = joint[1:, 1:]
    area_true, area_pred = joint.sum(axis=1)[1:], joint.sum(axis=0)[1:]
    out = dict(matched=0, missed=0, merged=0, other=0, spurious=0)
    if inter.size:
        matched = (_ious(joint) > 0.5).any(axis=1)
        missed = ~matched & (2 * inter.sum(axis=1) < area_true)
        holds = 2 * inter > area_true[:, None]          # over half of true i lies in predicted j
        merged = ~matched & ~missed & (holds & (holds.sum(axis=0) >= 2)[None, :]).any(axis=1)
        out.update(matched=int(matched.sum()), missed=int(missed.sum()), merged=int(merged.sum()),
                   other=int((~matched & ~missed & ~merged).sum()))
    else:
        out["missed"] = len(area_true)
    out["spurious"] = int((2 * inter.sum(axis=0) < area_pred).sum()) if len(area_pred) else 0
    return out


def _match(ious, threshold):
    """(tp, fp, fn) of a one-to-one matching at IoU > `threshold`."""
    n_true, n_pred = ious.shape
    hits = ious > threshold
    if threshold >= 0.5:  # IoU > 0.5 pairs are already one-to-one
        tp = int(np.count_nonzero(hits))
    else:
        rows, cols = np.flatnonzero(hits.any(axis=1)), np.flatnonzero(hits.any(axis=0))
        sub = hits[np.ix_(rows, cols)]
        r, c = linear_sum_assignment(sub.astype(float), maximize=True)
        tp = int(np.count_nonzero(sub[r, c]))
    return tp, n_pred - tp, n_true - tp


def _ap(ious, threshold):
    if ious.size == 0:  # at least one side has no objects
        return 1.0 if ious.shape == (0, 0) else 0.0
    tp, fp, fn = _match(ious, threshold)
    return tp / (tp + fp + fn)


def match_instances(true_labels, pred_labels, threshold=0.5):
    """Count matched objects at one IoU threshold.

    Parameters
    ----------
    true_labels, pred_labels : ndarray of int, shape (H, W)
        Label maps; 0 is background.
    threshold : float, optional
        A pair matches when its IoU is strictly greater than this.

    Returns
    -------
    tp, fp, fn : int
        Matched pairs (one-to-one), unmatched predictions, unmatched truths.
    """
    return _match(iou_matrix(true_labels, pred_labels), threshold)


def average_precision(true_labels, pred_labels, threshold=0.5):
    """DSB average precision ``TP / (TP + FP + FN)`` at one IoU threshold.

    Returns 1.0 when neither map has objects and 0.0 when only one has.
    """
    return _ap(iou_matrix(true_labels, pred_labels), threshold)


def dsb_score(true_labels, pred_labels):
    """DSB 2018 score of one image: mean AP over :data:`DSB_THRESHOLDS`."""
    ious = iou_matrix(true_labels, pred_labels)
    return float(np.mean([_ap(ious, t) for t in DSB_THRESHOLDS]))


def match_table(true_labels, pred_labels, thresholds=DSB_THRESHOLDS):
    """The DSB score of one image, threshold by threshold.

    Parameters
    ----------
    true_labels, pred_labels : ndarray of int, shape (H, W)
        Label maps; 0 is background.
    thresholds : sequence of float, optional
        IoU thresholds; default the ten of the DSB score, 0.50 to 0.95.

    Returns
    -------
    list of dict
        One per threshold: ``threshold``, ``tp``, ``fp``, ``fn`` (int) and
        ``ap`` (float, ``TP / (TP + FP + FN)``). The mean of ``ap`` over the DSB
        thresholds is :func:`dsb_score`.

    Examples
    --------
    >>> true = np.array([[1, 1, 0, 2]])
    >>> pred = np.array([[1, 1, 1, 0]])        # one nucleus too wide, one missed
    >>> [(r["threshold"], r["tp"], r["fp"], r["fn"]) for r in match_table(true, pred, [0.5, 0.7])]
    [(0.5, 1, 0, 1), (0.7, 0, 1, 2)]
    """
    ious = iou_matrix(true_labels, pred_labels)
    rows = []
    for t in thresholds:
        tp, fp, fn = _match(ious, t) if ious.size else (0, ious.shape[1], ious.shape[0])
        rows.append(dict(threshold=float(t), tp=tp, fp=fp, fn=fn, ap=float(_ap(ious, t))))
    return rows


def evaluate_image(pred_mask, true_mask, pred_labels, true_labels):
    """All metrics of one image.

    Parameters
    ----------
    pred_mask, true_mask : ndarray, shape (H, W)
        Binary masks for the pixel metrics.
    pred_labels, true_labels : ndarray of int, shape (H, W)
        Label maps for the object metrics.

    Returns
    -------
    dict
        ``pixel_accuracy``, ``iou``, ``dice``, ``precision``, ``recall``,
        ``dsb_score``, ``ap50`` (float) and ``n_true``, ``n_pred`` (int).
    """
    ious = iou_matrix(true_labels, pred_labels)
    return {
        "pixel_accuracy": pixel_accuracy(pred_mask, true_mask),
        "iou": iou(pred_mask, true_mask),
        "dice": dice(pred_mask, true_mask),
        "precision": precision(pred_mask, true_mask),
        "recall": recall(pred_mask, true_mask),
        "dsb_score": float(np.mean([_ap(ious, t) for t in DSB_THRESHOLDS])),
        "ap50": float(_ap(ious, 0.5)),
        "n_true": int(ious.shape[0]),
        "n_pred": int(ious.shape[1]),
    }


def summarize(per_image):
    """Mean of every numeric key over a list of :func:`evaluate_image` dicts.

    Parameters
    ----------
    per_image : list of dict
        One dict per image.

    Returns
    -------
    dict
        For each numeric (non-bool) key present in every dict, its mean as a
        float; plus ``n_images`` (int).
    """
    per_image = list(per_image)
    out = {}
    if per_image:
        for key, value in per_image[0].items():
            numeric = isinstance(value, (int, float, np.integer, np.floating))
            if (numeric and not isinstance(value, (bool, np.bool_))
                    and all(key in d for d in per_image)):
                out[key] = float(np.mean([d[key] for d in per_image]))
    out["n_images"] = len(per_image)
    return out


def summarize_groups(per_image, groups):
    """:func:`summarize` within each group of images (e.g. each kind of microscopy).

    Parameters
    ----------
    per_image : list of dict
        One dict per image, each with an ``id``.
    groups : mapping id -> str
        The group of every image.

    Returns
    -------
    dict group -> dict
        The :func:`summarize` of the group's images, groups in sorted order.
    """
    by_group = {}
    for row in per_image:
        by_group.setdefault(groups[row["id"]], []).append(row)
    return {g: summarize(rows) for g, rows in sorted(by_group.items())}
