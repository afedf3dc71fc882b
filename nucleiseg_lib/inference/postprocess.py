"""From probability maps to masks and nucleus instances (numpy/scipy/scikit-image)."""

import numpy as np
from scipy import ndimage

THRESHOLD_RULES = ("fixed", "relative", "otsu", "validation")


def otsu_threshold(prob, bins=256):
    """Otsu's threshold of a probability map (maximises between-class variance).

    Parameters
    ----------
    prob : ndarray, any shape, values in [0, 1]

    Returns
    -------
    float
    """
    hist, edges = np.histogram(np.asarray(prob, np.float64).ravel(), bins=bins, range=(0.0, 1.0))
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centers)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(edges[1:][np.argmax(between)])


def find_threshold(prob, rule="fixed", value=0.5):
    """The threshold a rule gives for one probability map.

    Parameters
    ----------
    prob : ndarray, shape (H, W), values in [0, 1]
    rule : {"fixed", "relative", "otsu", "validation"} or float
        "fixed" is 0.5; "relative" is the original
        project's rule, a tenth of the image's maximum; "otsu" is Otsu's threshold;
        "validation" uses `value`, which the caller takes from the checkpoint
        (the threshold that was best on the validation split). A number is a
        fixed threshold.
    value : float
        The validation-chosen threshold (used by "validation" only).

    Returns
    -------
    float
    """
    if isinstance(rule, (int, float)):
        return float(rule)
    if rule == "fixed":
        return 0.5
    if rule == "validation":
        return float(value)
    if rule == "relative":
        return float(np.max(prob)) / 10.0
    if rule == "otsu":
        return otsu_threshold(prob)
    raise ValueError(f"unknown threshold rule {rule!r}; use one of {THRESHOLD_RULES} or a number")


def remove_small(labels, min_size):
    """Drop instances smaller than `min_size` pixels and renumber 1..N."""
    if min_size <= 0 or labels.max() == 0:
        return labels
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_size
    keep[0] = False
    lut = np.zeros(len(sizes), dtype=np.int32)
    lut[keep] = np.arange(1, keep.sum() + 1)
    return lut[labels]


def label_instances(prob, threshold=0.5, contour=None, method="watershed", min_size=8, contour_threshold=0.5):
    """Nucleus instances from a foreground probability map.

    Parameters
    ----------
    prob : ndarray, shape (H, W), foreground probability
    threshold : float
    contour : ndarray, shape (H, W), optional
        Probability of nucleus contour (the model's second channel).
    method : {"cc", "watershed"}
        "cc": connected components of the thresholded mask (touching nuclei merge).
        "watershed": seeds are the mask minus predicted contours (or, without a
        contour map, peaks of the distance transform); each seed grows back over
        the mask, which splits touching nuclei.
    min_size : int
        Instances smaller than this many pixels are dropped.
    contour_threshold : float

    Returns
    -------
    ndarray, shape (H, W), int32, 0 = background, 1..N nuclei
    """
    mask = np.asarray(prob) > threshold
    if method == "cc":
        labels, _ = ndimage.label(mask)
        return remove_small(labels.astype(np.int32), min_size)
    if method != "watershed":
        raise ValueError(f"unknown instance method {method!r}; use 'cc' or 'watershed'")
    from skimage.segmentation import watershed
    if contour is not None:
        seeds = mask & (np.asarray(contour) < contour_threshold)
        seeds = ndimage.binary_opening(seeds, iterations=1)
        markers, _ = ndimage.label(seeds)
        markers = remove_small(markers.astype(np.int32), max(1, min_size // 4))
        surface = -(np.asarray(prob) * (1 - np.asarray(contour)))
    else:
        from skimage.feature import peak_local_max
        dist = ndimage.distance_transform_edt(mask)
        dist = ndimage.gaussian_filter(dist, 1.0)
        comps, _ = ndimage.label(mask)
        peaks = peak_local_max(dist, min_distance=4, labels=comps, exclude_border=False)
        markers = np.zeros(mask.shape, np.int32)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
        surface = -dist
    labels = watershed(surface, markers, mask=mask)
    # foreground components that received no seed are kept as they are
    rest, n_rest = ndimage.label(mask & (labels == 0))
    if n_rest:
        labels = np.where(rest > 0, rest + labels.max(), labels)
    return remove_small(labels.astype(np.int32), min_size)
