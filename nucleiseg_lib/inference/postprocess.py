"""From probability maps to masks and nucleus instances (numpy/scipy/scikit-image).

One post-processing path for everything that segments: :func:`postprocess_proba` (used by
:meth:`Predictor.postprocess_proba`, the app of notebook 06 and the threshold slider), with
one set of defaults, :data:`DEFAULT_POSTPROCESS` / :func:`postprocess_settings`.
"""

import numpy as np
from scipy import ndimage

THRESHOLD_RULES = ("fixed", "relative", "otsu", "validation")
#: How notebook 05, the app and the slider name the rules ("manual" follows a slider).
RULE_LABELS = {"validation": "validation-optimal", "fixed": "fixed 0.5", "relative": "max/10 (original project)",
               "otsu": "Otsu", "manual": "manual (slider)"}
#: Post-processing without calibration; a model with a contour channel uses "watershed" (see
#: :func:`postprocess_settings`). ``seed_opening``: iterations of the binary opening that cleans watershed
#: seeds; ``min_score``: instances whose mean nucleus probability is lower are dropped (0: none).
#: ``seed_split``: seeds are split where their distance transform has several maxima this many px high (0: never).
#: ``seed_split_size``: when not 0, that height is this fraction of the image's median seed radius instead
#: (:func:`split_height`), so that small nuclei get a lower one.
#: ``distance_threshold``: with ``method="distance"`` (a model with a distance channel), seeds are where the
#: predicted distance to the nucleus edge is above it (1 at a nucleus's centre).
#: ``border_threshold``: with a border channel (a model trained with the "border" target), watershed seeds are
#: also cut where the probability that two nuclei touch there is at or above it.
#: ``seed_min_fraction``: watershed seeds smaller than this fraction of the image's median seed area are dropped
#: before the seeds grow, so that their pixels go to the neighbouring nucleus (:func:`drop_small_seeds`; 0: none).
DEFAULT_POSTPROCESS = dict(threshold=0.5, method="cc", min_size=8, contour_threshold=0.5, seed_opening=1,
                           min_score=0.0, seed_split=0.0, seed_split_size=0.0, distance_threshold=0.5,
                           border_threshold=0.5, seed_min_fraction=0.0)
#: The output channels of a model by their number, when its checkpoint does not name them (a ``channels`` entry
#: of the post-processing names them: :func:`postprocess_settings`).
CHANNELS = ("mask", "contour", "distance")
#: Instance methods: connected components, watershed from contour-cut seeds, watershed from distance peaks.
METHODS = ("cc", "watershed", "distance")
#: What :func:`~nucleiseg_lib.inference.calibrate` stores beside the settings: the validation sweeps.
SWEEP_KEYS = ("sweep", "refine")


def postprocess_settings(out_channels=1, stored=None, targets=None):
    """The post-processing of a model: the defaults, watershed with a contour channel, then `stored`.

    Parameters
    ----------
    out_channels : int
        The model's output channels (2: nucleus and contour).
    stored : dict, optional
        What calibration stored in the checkpoint (``threshold``, ``method``, ...).
    targets : sequence of str, optional
        The names of the model's output channels (its training config's ``targets``), kept as ``channels``, so
        that :func:`postprocess_proba` reads each map by its name; without them, :data:`CHANNELS` by number.

    Returns
    -------
    dict
        ``threshold``, ``method``, ``min_size``, ``contour_threshold`` (and whatever `stored` adds).
    """
    pp = dict(DEFAULT_POSTPROCESS)
    if out_channels > 1:
        pp["method"] = "watershed"
    if targets:
        pp["channels"] = list(targets)
    pp.update(stored or {})
    return pp


def channel_names(postprocess, n):
    """The names of `n` probability maps under a post-processing: its ``channels``, else :data:`CHANNELS`."""
    names = list((postprocess or {}).get("channels") or CHANNELS[:n])
    if len(names) != n:
        raise ValueError(f"the post-processing names {len(names)} channels {names}, but there are {n} maps")
    return names


def settings_only(postprocess):
    """The settings of a stored post-processing, without the validation sweeps (for printing and JSON)."""
    return {k: v for k, v in (postprocess or {}).items() if k not in SWEEP_KEYS}


def describe_postprocess(postprocess):
    """The chosen post-processing in words, for the ablation table and the model card.

    Parameters
    ----------
    postprocess : dict
        ``threshold`` and ``method``; ``seed_opening`` and ``min_score`` (described when ``min_score`` is stored),
        ``seed_split`` (described when not 0), ``contour_threshold`` (described for the watershed when stored).

    Returns
    -------
    str
        E.g. "threshold 0.4, watershed from seeds where the contour probability is under 0.5, seeds opened 1x,
        objects of mean probability under 0.7 dropped".
    """
    pp = postprocess
    words = f"threshold {pp.get('threshold')}, {pp.get('method')}"
    if pp.get("method") == "watershed" and "contour_threshold" in pp:
        words += f" from seeds where the contour probability is under {pp['contour_threshold']:g}"
    if "min_score" in pp:
        words += (f", seeds opened {pp.get('seed_opening', 1)}x, objects of mean probability under "
                  f"{pp['min_score']:g} dropped")
    if pp.get("method") == "distance":
        words += f", seeds where the predicted distance to the edge is above {pp.get('distance_threshold', 0.5):g}"
    if pp.get("method") == "watershed" and "border" in (pp.get("channels") or ()):
        words += f", seeds cut where the border probability is {pp.get('border_threshold', 0.5):g} or more"
    if pp.get("seed_split_size"):
        words += f", seeds split at distance maxima {pp['seed_split_size']:g} x the median seed radius high"
    elif pp.get("seed_split"):
        words += f", seeds split at distance maxima {pp['seed_split']:g} px high"
    if pp.get("seed_min_fraction"):
        words += f", seeds under {pp['seed_min_fraction']:g} x the median seed area dropped"
    return words


def otsu_threshold(prob, bins=256):
    """Otsu's threshold of a probability map (:func:`skimage.filters.threshold_otsu`).

    Parameters
    ----------
    prob : ndarray, any shape, values in [0, 1]
    bins : int
        Histogram bins.

    Returns
    -------
    float
        0.5 for an empty map; the value itself for a constant one.
    """
    from skimage.filters import threshold_otsu
    prob = np.asarray(prob)
    if prob.size == 0:
        return 0.5
    return float(threshold_otsu(prob, nbins=bins))


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


def _keep_instances(labels, keep):
    """`labels` with only the instances where ``keep[label]`` is true, renumbered 1..N (one lookup table)."""
    keep = np.array(keep, bool)
    keep[0] = False
    lut = np.zeros(len(keep), dtype=np.int32)
    lut[keep] = np.arange(1, keep.sum() + 1)
    return lut[labels]


def remove_small(labels, min_size):
    """Drop instances smaller than `min_size` pixels and renumber 1..N.

    One ``bincount`` and one lookup table. Kept instead of scikit-image's
    ``remove_small_objects`` + ``relabel_sequential``, which give the same labels but took
    0.135 s against 0.034 s on a 1392x1040 label map of 1252 nuclei (4x slower; it runs twice
    per watershed image; ``benchmarks/refactor_speed.py``, one thread).

    Parameters
    ----------
    labels : ndarray, shape (H, W), int
    min_size : int

    Returns
    -------
    ndarray, shape (H, W), int32 (`labels` itself when nothing is to be dropped)
    """
    labels = np.asarray(labels)
    if min_size <= 0 or labels.size == 0 or labels.max() == 0:
        return labels.astype(np.int32, copy=False)
    return _keep_instances(labels, np.bincount(labels.ravel()) >= min_size)


def remove_unsure(labels, prob, min_score):
    """Drop instances whose mean probability is under `min_score` and renumber 1..N.

    The 2018 winners dropped low-confidence objects: on a stain the model never saw, background
    texture comes out as faint, patchy "nuclei" that a threshold alone lets through.

    Parameters
    ----------
    labels : ndarray, shape (H, W), int, 0..N
    prob : ndarray, shape (H, W), nucleus probability
    min_score : float
        0 keeps everything.

    Returns
    -------
    ndarray, shape (H, W), int32
    """
    labels = np.asarray(labels)
    if min_score <= 0 or labels.size == 0 or labels.max() == 0:
        return labels.astype(np.int32, copy=False)
    counts = np.bincount(labels.ravel())
    sums = np.bincount(labels.ravel(), weights=np.asarray(prob, np.float64).ravel(), minlength=len(counts))
    return _keep_instances(labels, sums >= min_score * np.maximum(counts, 1))


def _maxima_regions(smooth, own, h):
    """An upper bound of the number of h-maxima in `own` (:func:`skimage.morphology.h_maxima`), found fast.

    Every 4-connected region of h-maxima in `own` holds a pixel as high as its 8 neighbours, and, unless it
    is the highest, that pixel stands at least `h` above the lowest value of `smooth`. So :func:`split_seeds`
    asks for h-maxima (a grey reconstruction, the slow step) only where this counts 2 or more such regions.
    """
    top = ndimage.maximum_filter(smooth, size=3)
    tol = 4 * np.finfo(smooth.dtype).resolution * np.abs(top)
    high = smooth >= min(smooth.min() + h, smooth.max()) - tol
    return ndimage.label((smooth >= top - tol) & high & own)[1]


def split_seeds(seeds, h, sigma=1.0, size_fraction=0.0):
    """Label watershed seeds, cutting a seed in two where its distance transform has two maxima.

    When the model predicts no contour between two touching nuclei, their seeds join into one
    dumbbell-shaped region. Its (smoothed) distance to the background has one maximum per nucleus,
    separated by a saddle at the neck; each maximum at least `h` pixels above the saddle becomes a
    seed of its own, which grows back over its part of the region. Only regions larger than a disc
    of their inner radius (area over 1.2 pi r^2: elongated or joined) are looked at, each in its own box.

    Parameters
    ----------
    seeds : ndarray, shape (H, W), bool
    h : float
        Height in pixels of distance that a maximum needs over its saddle (:func:`skimage.morphology.h_maxima`);
        0 labels the connected regions as they are.
    sigma : float
        Gaussian smoothing of the distance transform (pixels), so that a ragged outline makes no maxima.
    size_fraction : float
        When not 0, `h` is instead this fraction of the median radius of the seeds (:func:`split_height`).

    Returns
    -------
    ndarray, shape (H, W), int32, 0 = not a seed
    """
    comps, n = ndimage.label(seeds)
    comps = comps.astype(np.int32, copy=False)
    areas = np.bincount(comps.ravel()) if n else None
    if size_fraction > 0 and n:
        h = _median_radius(areas[1:]) * size_fraction
    if h <= 0 or n == 0:
        return comps
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed
    out, next_label = np.zeros_like(comps), 1
    for i, box in enumerate(ndimage.find_objects(comps), start=1):
        own = np.zeros((box[0].stop - box[0].start + 4, box[1].stop - box[1].start + 4), bool)
        own[2:-2, 2:-2] = comps[box] == i
        dist = ndimage.distance_transform_edt(own)
        parts = None
        if areas[i] > 1.2 * np.pi * dist.max() ** 2:
            smooth = ndimage.gaussian_filter(dist, sigma) if sigma else dist
            if _maxima_regions(smooth, own, h) > 1:
                peaks, k = ndimage.label(h_maxima(smooth, h).astype(bool) & own)
                if k > 1:
                    parts = watershed(-smooth, peaks, mask=own)[2:-2, 2:-2]
        if parts is None:
            out[box][own[2:-2, 2:-2]] = next_label
            next_label += 1
        else:
            inside = parts > 0
            out[box][inside] = parts[inside] + next_label - 1
            next_label += int(parts.max())
    return out


def split_height(seeds, fraction):
    """The height of a size-relative seed split: `fraction` of the median inner radius of an image's seeds.

    The radius of a seed is ``sqrt(area / pi)``, that of a disc of its area. A fixed height of 1 px
    (what validation chose) is a tenth of the radius of the training set's median nucleus and a fifth
    of the radius of the 80-px nuclei of some left-out experiments, too high to cut many of their necks;
    0.5 px cut more of those, but over-split large stained nuclei (README, "a finer seed split"). A height
    proportional to the image's own seed size gives each its own.

    Parameters
    ----------
    seeds : ndarray, shape (H, W), bool
    fraction : float

    Returns
    -------
    float, pixels (0 where there are no seeds)
    """
    comps, _ = ndimage.label(seeds)
    return fraction * _median_radius(np.bincount(comps.ravel())[1:])


def drop_small_seeds(markers, fraction):
    """Drop watershed seeds smaller than `fraction` of the median seed area of the image, and renumber 1..N.

    On a stain the model never saw, a nucleus can come out as one large seed and a few small pieces
    (cut by texture, a contour or a border drawn through it), each of which would grow into an object.
    A piece much smaller than the image's typical seed is more likely such a fragment than a nucleus:
    without its seed, its pixels are flooded from the neighbouring seed by the watershed; a small seed
    alone in its own foreground component still becomes an object (:func:`label_instances` keeps
    components that no seed reached). The 2018 winners used a minimum seed size relative to the
    image's nucleus size for over-splitting on new stains.

    Parameters
    ----------
    markers : ndarray, shape (H, W), int, 0 = no seed
    fraction : float
        0 keeps every seed.

    Returns
    -------
    ndarray, shape (H, W), int32

    Examples
    --------
    >>> m = np.zeros((1, 30), int); m[0, :10] = 1; m[0, 12:22] = 2; m[0, 25:27] = 3
    >>> drop_small_seeds(m, 0.5).max()
    2
    """
    markers = np.asarray(markers)
    if fraction <= 0 or markers.size == 0 or markers.max() == 0:
        return markers.astype(np.int32, copy=False)
    areas = np.bincount(markers.ravel())
    return _keep_instances(markers, areas >= fraction * np.median(areas[1:][areas[1:] > 0]))


def _median_radius(areas):
    """The radius of a disc of the median of `areas` (0 when there are none)."""
    return float(np.sqrt(np.median(areas) / np.pi)) if len(areas) else 0.0


def label_instances(prob, threshold=0.5, contour=None, method=None, min_size=None, contour_threshold=None,
                    seed_opening=None, min_score=None, seed_split=None, distance=None, distance_threshold=None,
                    seed_split_size=None, border=None, border_threshold=None, seed_min_fraction=None):
    """Nucleus instances from a foreground probability map.

    Parameters
    ----------
    prob : ndarray, shape (H, W), foreground probability
    threshold : float
    contour : ndarray, shape (H, W), optional
        Probability of nucleus contour (the model's second channel).
    method : {"cc", "watershed", "distance"}, optional
        "cc": connected components of the thresholded mask (touching nuclei merge).
        "watershed": seeds are the mask minus predicted contours (or, without a
        contour map, peaks of the distance transform); each seed grows back over
        the mask, which splits touching nuclei. "distance": seeds are where the
        predicted `distance` exceeds `distance_threshold`, and grow down it.
        Default: as :func:`postprocess_settings` ("watershed" with a contour map, else "cc").
    min_size : int, optional
        Instances smaller than this many pixels are dropped (default 8).
    contour_threshold : float, optional
        Default 0.5.
    seed_opening : int, optional
        Iterations of the binary opening of the watershed seeds (default 1): more
        cut the thin bridges that join the seeds of touching nuclei.
    min_score : float, optional
        Instances whose mean `prob` is lower are dropped (:func:`remove_unsure`; default 0: none).
    seed_split : float, optional
        Watershed seeds are cut where their distance transform has maxima this many pixels
        high (:func:`split_seeds`; default 0: never).
    seed_split_size : float, optional
        When not 0, that height is this fraction of the median seed radius of the image
        (:func:`split_height`) instead of `seed_split` (default 0).
    distance : ndarray, shape (H, W), optional
        Predicted distance to the nucleus edge, 1 at its centre (the model's third channel); needed by
        ``method="distance"``.
    distance_threshold : float, optional
        Default 0.5.
    border : ndarray, shape (H, W), optional
        Probability that two nuclei touch at a pixel (a model trained with the "border" target): with the
        watershed, seeds are also cut where it is at least `border_threshold`, and the seeds' basins meet
        where it is high.
    border_threshold : float, optional
        Default 0.5.
    seed_min_fraction : float, optional
        Watershed seeds smaller than this fraction of the image's median seed area are dropped
        (:func:`drop_small_seeds`; default 0: none).

    Returns
    -------
    ndarray, shape (H, W), int32, 0 = background, 1..N nuclei
    """
    defaults = postprocess_settings(1 if contour is None else 2)
    method = method or defaults["method"]
    min_size = defaults["min_size"] if min_size is None else min_size
    contour_threshold = defaults["contour_threshold"] if contour_threshold is None else contour_threshold
    seed_opening = defaults["seed_opening"] if seed_opening is None else int(seed_opening)
    min_score = defaults["min_score"] if min_score is None else float(min_score)
    seed_split = defaults["seed_split"] if seed_split is None else float(seed_split)
    seed_split_size = defaults["seed_split_size"] if seed_split_size is None else float(seed_split_size)
    mask = np.asarray(prob) > threshold
    if method == "cc":
        labels, _ = ndimage.label(mask)
        return remove_unsure(remove_small(labels, min_size), prob, min_score)
    if method not in METHODS:
        raise ValueError(f"unknown instance method {method!r}; use one of {METHODS}")
    if method == "distance" and distance is None:
        raise ValueError("method 'distance' needs a distance map: a model trained with the 'distance' target")
    from skimage.segmentation import watershed
    if method == "distance":
        distance_threshold = defaults["distance_threshold"] if distance_threshold is None else distance_threshold
        seeds = mask & (np.asarray(distance) > distance_threshold)
        surface = -np.asarray(distance)
    elif contour is not None:
        seeds = mask & (np.asarray(contour) < contour_threshold)
        surface = -(np.asarray(prob) * (1 - np.asarray(contour)))
        if border is not None:
            border_threshold = defaults["border_threshold"] if border_threshold is None else border_threshold
            seeds &= np.asarray(border) < border_threshold
            surface = surface * (1 - np.asarray(border))
    if method == "distance" or contour is not None:
        if seed_opening > 0:
            seeds = ndimage.binary_opening(seeds, iterations=seed_opening)
        markers = split_seeds(seeds, seed_split, size_fraction=seed_split_size)
        markers = remove_small(markers, max(1, min_size // 4))
        seed_min_fraction = defaults["seed_min_fraction"] if seed_min_fraction is None else float(seed_min_fraction)
        markers = drop_small_seeds(markers, seed_min_fraction)
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
    return remove_unsure(remove_small(labels, min_size), prob, min_score)


def rule_threshold(prob, rule, postprocess, manual=None):
    """The threshold of a rule on one probability map, "manual" included.

    Parameters
    ----------
    prob : ndarray, shape (H, W)
        Nucleus probability.
    rule : {"validation", "fixed", "relative", "otsu", "manual"} or float
    postprocess : dict
        Its ``threshold`` is the validation-chosen one.
    manual : float, optional
        The slider's value for "manual" (default: the validation-chosen threshold).

    Returns
    -------
    float
    """
    if rule == "manual":
        return float(postprocess["threshold"] if manual is None else manual)
    return find_threshold(prob, rule, postprocess["threshold"])


def postprocess_proba(prob, postprocess, rule=None):
    """Mask and instance labels from probability maps: the one post-processing path.

    Parameters
    ----------
    prob : ndarray, shape (C, H, W)
        Channel 0 nucleus probability, then (optional) the contour probability and a third map: the distance
        to the nucleus edge or the touching border, as ``postprocess["channels"]`` names them
        (:func:`channel_names`).
    postprocess : dict
        ``threshold``, ``method``, ``min_size``, ``contour_threshold`` and optionally ``seed_opening``,
        ``min_score``, ``seed_split``, ``seed_split_size``, ``distance_threshold``, ``border_threshold``,
        ``seed_min_fraction``, ``channels`` (defaults: :data:`DEFAULT_POSTPROCESS`).
    rule : threshold rule or float, optional
        See :func:`find_threshold`; default "validation" (``postprocess["threshold"]``).

    Returns
    -------
    dict with ``prob`` (C, H, W), ``threshold`` float, ``mask`` (H, W) bool, ``labels`` (H, W) int32
    """
    t = find_threshold(prob[0], "validation" if rule is None else rule, postprocess["threshold"])
    maps = dict(zip(channel_names(postprocess, prob.shape[0]), prob))
    labels = label_instances(prob[0], t, maps.get("contour"), postprocess["method"], postprocess["min_size"],
                             postprocess["contour_threshold"], postprocess.get("seed_opening"),
                             postprocess.get("min_score"), postprocess.get("seed_split"), maps.get("distance"),
                             postprocess.get("distance_threshold"), postprocess.get("seed_split_size"),
                             maps.get("border"), postprocess.get("border_threshold"),
                             postprocess.get("seed_min_fraction"))
    return dict(prob=prob, threshold=t, mask=prob[0] > t, labels=labels)
