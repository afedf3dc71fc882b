"""Exploration statistics of a dataset: sizes, modality, nuclei counts and areas, checks of the masks.

Used by notebook 01 (exploration) and 02 (mask merging); numpy only.

The imaging modality is guessed with a two-feature rule that separates the three
looks of DSB2018 ``stage1_train`` cleanly (its 557 grey-level images have a
colour spread of exactly 0, its 107 coloured ones 0.047 or more; the slightly
tinted synthetic brightfield images about 0.025):

* **stained** -- the image is coloured: the mean over pixels of (max channel -
  min channel) is above ``colour_threshold`` (0.035). H&E tissue: purple nuclei
  on pink.
* **brightfield** -- grey-level and bright: the median pixel brightness is above
  ``bright_threshold`` (0.5). Dark nuclei on a light background.
* **fluorescence** -- grey-level and dark: bright nuclei on a black background.
"""

from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import DataError
from .io import count_overlaps, list_samples, read_image, read_mask, read_sample, sample_paths

MODALITIES = ("fluorescence", "brightfield", "stained")


def colour_spread(image):
    """Mean over pixels of (largest channel - smallest channel); 0 for a grey-level image.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), float in [0, 1]

    Returns
    -------
    float
    """
    x = np.asarray(image, np.float32)
    return float(np.mean(x.max(axis=2) - x.min(axis=2)))


def classify_modality(image, colour_threshold=0.035, bright_threshold=0.5):
    """Guess the imaging modality of one image (see the module docstring for the rule).

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), float in [0, 1]
    colour_threshold : float
        Above this :func:`colour_spread` the image counts as "stained".
    bright_threshold : float
        A grey-level image whose median brightness is above this is "brightfield".

    Returns
    -------
    {"fluorescence", "brightfield", "stained"}
    """
    x = np.asarray(image, np.float32)
    if colour_spread(x) > colour_threshold:
        return "stained"
    return "brightfield" if float(np.median(x.mean(axis=2))) > bright_threshold else "fluorescence"


def nucleus_areas(labels):
    """Area in pixels of every nucleus of a label map (labels without pixels are skipped).

    Parameters
    ----------
    labels : ndarray, shape (H, W), int

    Returns
    -------
    ndarray of int64, one entry per nucleus
    """
    counts = np.bincount(np.asarray(labels, np.int64).ravel())[1:]
    return counts[counts > 0]


def image_stats(image, labels):
    """Statistics of one sample.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), float in [0, 1]
    labels : ndarray, shape (H, W), int

    Returns
    -------
    dict
        ``height``, ``width`` (int), ``modality`` (str), ``n_nuclei`` (int),
        ``areas`` (ndarray of nucleus areas in pixels), ``mean_area``,
        ``median_area`` (float, 0 when no nuclei), ``foreground_fraction`` (float).
    """
    labels = np.asarray(labels)
    areas = nucleus_areas(labels)
    return dict(height=int(labels.shape[0]), width=int(labels.shape[1]), modality=classify_modality(image),
                n_nuclei=int(len(areas)), areas=areas,
                mean_area=float(areas.mean()) if len(areas) else 0.0,
                median_area=float(np.median(areas)) if len(areas) else 0.0,
                foreground_fraction=float(np.count_nonzero(labels) / labels.size))


def _iter_samples(source, ids):
    """(id, image, labels) from a mapping id -> (image, labels) or a Kaggle-layout folder."""
    if isinstance(source, (str, Path)):
        ids = list_samples(source) if ids is None else ids
        for sid in ids:
            yield (sid, *read_sample(source, sid))
    else:
        ids = sorted(source) if ids is None else ids
        for sid in ids:
            image, labels = source[sid]
            yield sid, image, labels


def dataset_stats(source, ids=None):
    """Per-image statistics of a dataset.

    Parameters
    ----------
    source : str, Path or mapping id -> (image, labels)
        A Kaggle-layout folder (read from the PNGs: slow) or samples already in
        memory, e.g. ``SampleCache(root).load_all()`` (fast).
    ids : list of str, optional
        Default: every sample.

    Returns
    -------
    list of dict
        One row per image: ``id`` plus the keys of :func:`image_stats`.
    """
    return [dict(id=sid, **image_stats(image, labels)) for sid, image, labels in _iter_samples(source, ids)]


def count_by(rows, key):
    """How many rows have each value of `key`, most frequent first.

    Returns
    -------
    dict value -> int
    """
    return dict(Counter(r[key] for r in rows).most_common())


def size_counts(rows):
    """How many images have each size, as ``"WxH"`` strings (width first, as image viewers say)."""
    return dict(Counter(f"{r['width']}x{r['height']}" for r in rows).most_common())


def all_areas(rows):
    """Areas of every nucleus of every row, in one array."""
    parts = [np.asarray(r["areas"]) for r in rows]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def summary_by(rows, key="modality", values=("n_nuclei", "median_area", "foreground_fraction")):
    """Per group of `key`: the number of images and the mean of each of `values`.

    Returns
    -------
    list of dict, one per group, largest group first
    """
    out = []
    for group, n in count_by(rows, key).items():
        sel = [r for r in rows if r[key] == group]
        out.append({key: group, "images": n, **{f"mean {v}": float(np.mean([r[v] for r in sel])) for v in values}})
    return out


def examples_by(rows, key="modality", per_group=2):
    """Ids of a few rows of every group (the first ones, in row order): a grid that shows each kind.

    Returns
    -------
    list of str
    """
    out = []
    for group in count_by(rows, key):
        out += [r["id"] for r in rows if r[key] == group][:per_group]
    return out


def all_background_scores(samples, ids=None):
    """The scores of a "model" that predicts background everywhere, per image.

    Parameters
    ----------
    samples : mapping id -> (image, labels)
    ids : list of str, optional

    Returns
    -------
    list of dict
        ``id``, ``pixel_accuracy`` (the background fraction: high), ``iou``,
        ``dice`` and ``dsb_score`` (0 on any image with a nucleus).
    """
    from ..metrics import evaluate_image
    rows = []
    for sid in (sorted(samples) if ids is None else ids):
        true = np.asarray(samples[sid][1])
        empty = np.zeros(true.shape, np.int32)
        r = evaluate_image(empty > 0, true > 0, empty, true)
        rows.append(dict(id=sid, pixel_accuracy=r["pixel_accuracy"], iou=r["iou"], dice=r["dice"],
                         dsb_score=r["dsb_score"]))
    return rows


def check_masks(root, ids=None):
    """Check the per-nucleus masks of each sample before merging them.

    Parameters
    ----------
    root : str or Path
        Kaggle-layout folder.
    ids : list of str, optional

    Returns
    -------
    list of dict
        ``id``, ``n_masks``, ``overlap_pixels`` (pixels claimed by two or more
        masks; merging would give them to the later mask), ``empty_masks`` (masks
        with no pixel) and ``problem`` (``""``, or why a mask could not be used,
        e.g. a size different from the image's).
    """
    rows = []
    for sid in (list_samples(root) if ids is None else ids):
        image_path, mask_paths = sample_paths(root, sid)
        row = dict(id=sid, n_masks=len(mask_paths), overlap_pixels=0, empty_masks=0, problem="")
        try:
            shape = read_image(image_path).shape[:2]
            masks = [read_mask(p, shape) for p in mask_paths]
        except DataError as exc:
            row["problem"] = exc.problem
        else:
            row["overlap_pixels"] = count_overlaps(masks)
            row["empty_masks"] = sum(1 for m in masks if not m.any())
        rows.append(row)
    return rows
