"""Image normalisation, training targets and augmentation (numpy only).

The same :func:`normalize_image` runs in training and in prediction, so a model
always sees inputs prepared one way.
"""

import numpy as np


INPUTS = ("rgb", "grey", "nuclei")
PERCENTILES = (1.0, 99.8)


def nuclei_channel(image, kind=None, stain="hed"):
    """One grey channel in which nuclei are bright, whatever the imaging modality.

    * stained tissue (a coloured image): the haematoxylin channel of a colour
      deconvolution (:func:`skimage.color.rgb2hed`), the stain that marks nuclei;
    * bright-background grey images (brightfield): the inverted grey level;
    * fluorescence: the grey level as it is.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), float in [0, 1]
    kind : {"fluorescence", "brightfield", "stained"}, optional
        The image's modality; default :func:`data.stats.classify_modality` of `image`
        (pass the whole image's kind when `image` is a crop of it).
    stain : {"hed", "grey"}
        For stained tissue, "grey" takes the inverted grey level instead of the
        haematoxylin channel (an ablation: the simpler choice).

    Returns
    -------
    ndarray, shape (H, W), float32 (not rescaled; see :func:`percentile_range`)
    """
    x = np.asarray(image, np.float32)
    if kind is None:
        from .stats import classify_modality
        kind = classify_modality(x)
    if kind == "stained" and stain == "hed":
        from skimage.color import rgb2hed
        return rgb2hed(np.clip(x, 0, 1))[..., 0].astype(np.float32)
    grey = x.mean(axis=2)
    return 1.0 - grey if kind != "fluorescence" else grey


def percentile_range(channel, percentiles=PERCENTILES):
    """The (low, high) percentiles of a channel, used to scale it to about [0, 1].

    Computed on the whole image (not on a training crop), so that a crop of empty
    background is not stretched until its noise looks like nuclei.
    """
    lo, hi = np.percentile(np.asarray(channel, np.float32), percentiles)
    return float(lo), float(max(hi, lo + 1e-3))


def scale_channel(channel, lo_hi):
    """``(channel - low) / (high - low)``: the image's low percentile -> 0, its high one -> 1."""
    lo, hi = lo_hi
    return ((np.asarray(channel, np.float32) - lo) / (hi - lo)).astype(np.float32)


def normalize_image(image, input="rgb"):
    """Put any microscopy image on one footing, as the model expects it.

    ``input="rgb"``: bright-background images (brightfield, stained tissue) are
    inverted so that nuclei are brighter than the background as in fluorescence;
    then the image is standardised with its own mean and standard deviation.

    ``input="nuclei"``: one channel where nuclei are bright (:func:`nuclei_channel`),
    scaled by the image's own 1st and 99.8th percentiles: fluorescence, brightfield
    and stained tissue all look alike to the model. ``input="grey"``: the same with
    the inverted grey level for stained tissue instead of the haematoxylin channel.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), float in [0, 1]
    input : {"rgb", "nuclei"}

    Returns
    -------
    ndarray, shape (3, H, W) for "rgb", (1, H, W) for "nuclei"; float32
    """
    if input in ("nuclei", "grey"):
        c = nuclei_channel(image, stain="hed" if input == "nuclei" else "grey")
        return scale_channel(c, percentile_range(c))[None]
    if input != "rgb":
        raise ValueError(f"unknown input {input!r}; use one of {INPUTS}")
    x = np.asarray(image, dtype=np.float32)
    if is_bright_background(x):
        x = 1.0 - x
    return np.ascontiguousarray(standardize(x).transpose(2, 0, 1))


def is_bright_background(image):
    """True when an RGB image's median grey level is above 0.5 (brightfield, stained tissue).

    :func:`normalize_image` inverts such an image so that its nuclei are brighter than its background.
    """
    return bool(np.median(np.asarray(image, np.float32).mean(axis=2)) > 0.5)


def standardize(x, reference=None):
    """``(x - mean) / std``, with the mean and standard deviation of `reference` (default: `x` itself).

    Training crops are standardised with a sample of their whole image as `reference`
    (:func:`image_sample`), so that a crop of empty background keeps its small contrast
    as it has in the whole image that prediction standardises.
    """
    ref = x if reference is None else reference
    return ((x - ref.mean()) / max(float(ref.std()), 1e-3)).astype(np.float32)


def image_sample(image, pixels=4096):
    """A regular grid of about `pixels` pixels of an image (every s-th row and column), for its statistics.

    Parameters
    ----------
    image : ndarray, shape (H, W, C)

    Returns
    -------
    ndarray, shape (about H / s, W / s, C), float32, ``s = floor(sqrt(H * W / pixels))`` (at least 1)
    """
    h, w = image.shape[:2]
    s = max(1, int(np.sqrt(h * w / pixels)))
    return np.ascontiguousarray(image[::s, ::s], np.float32)


def augment_intensity(x, rng):
    """Random contrast, offset, gamma, blur and noise of a scaled nuclei channel.

    Stands in for other stains, exposures and microscopes: in the nuclei channel a
    stain that is lighter or darker is a scale and an offset, a softer optic a blur.

    Parameters
    ----------
    x : ndarray, shape (1, H, W), float32, about [0, 1] (:func:`normalize_image` with "nuclei")
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, shape (1, H, W), float32
    """
    from scipy import ndimage
    y = np.clip(x, 0, 1.5)
    y = y ** np.float32(np.exp(rng.uniform(-0.4, 0.4)))
    y = y * np.float32(rng.uniform(0.6, 1.4)) + np.float32(rng.uniform(-0.1, 0.1))
    if rng.random() < 0.25:
        y = ndimage.gaussian_filter(y, (0, *(2 * [rng.uniform(0.5, 1.5)])))
    if rng.random() < 0.3:
        y = y + np.float32(rng.uniform(0, 0.08)) * rng.standard_normal(y.shape, dtype=np.float32)
    return y.astype(np.float32)


#: Contour width by nucleus area for ``width="area"``: (largest area in pixels, width), smallest first. A thin
#: contour keeps a seed inside a small nucleus; a wider one separates large touching nuclei more surely (the
#: border widths of the 2018 winners' code, 1/2/3 px by area).
AREA_WIDTHS = ((150, 1), (600, 2), (np.inf, 3))
CONTOUR_WIDTHS = (1, 2, 3, "area")
#: The target channels a model may learn, in this order (post-processing finds each channel by its name: the
#: checkpoint's config says which; a third channel of an older checkpoint is the distance map).
TARGETS = (("mask",), ("mask", "contour"), ("mask", "contour", "distance"), ("mask", "contour", "border"))
#: Width of the "border" target (:func:`touching_border`): pixels within 2 px of two nuclei.
BORDER_WIDTH = 2


def contour_width_map(labels, width=1):
    """The contour width of every pixel: `width`, or by the area of its nucleus (:data:`AREA_WIDTHS`).

    Parameters
    ----------
    labels : ndarray, shape (H, W), int
    width : int or "area"

    Returns
    -------
    ndarray, shape (H, W), int (0 on the background)
    """
    lab = np.asarray(labels)
    if width == "area":
        areas = np.bincount(lab.ravel()) if lab.size else np.zeros(1, np.int64)
        bounds = np.array([a for a, _ in AREA_WIDTHS]), np.array([w for _, w in AREA_WIDTHS])
        lut = bounds[1][np.searchsorted(bounds[0], areas, side="left")]
        lut[0] = 0
        return lut[lab]
    if width not in CONTOUR_WIDTHS:
        raise ValueError(f"unknown contour width {width!r}; use one of {CONTOUR_WIDTHS}")
    return np.where(lab > 0, int(width), 0)


def instance_contours(labels, width=1):
    """Inner boundary pixels of every instance (where a 4-neighbour has another label), `width` pixels wide.

    Parameters
    ----------
    labels : ndarray, shape (H, W), int
    width : int or "area"
        1: the boundary pixels themselves; 2 or 3: also the pixels within 1 or 2 pixels of them
        inside the nucleus; "area": by the nucleus's area (:data:`AREA_WIDTHS`).

    Returns
    -------
    ndarray, shape (H, W), bool
    """
    lab = np.asarray(labels)
    edge = np.zeros(lab.shape, dtype=bool)
    edge[1:, :] |= lab[1:, :] != lab[:-1, :]
    edge[:-1, :] |= lab[:-1, :] != lab[1:, :]
    edge[:, 1:] |= lab[:, 1:] != lab[:, :-1]
    edge[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    edge &= lab > 0
    if width == 1 or not edge.any():
        return edge
    from scipy import ndimage
    inside = ndimage.distance_transform_edt((lab > 0) & ~edge)   # 0 on the boundary, 1 next to it, ...
    return (lab > 0) & (inside < contour_width_map(lab, width))


def touching_band(labels, width=2):
    """Pixels of a nucleus that lie within `width` pixels (chessboard distance) of another nucleus.

    Where two nuclei touch or nearly touch, this band is wider than their contour: added to
    the contour target, it keeps the seeds of touching nuclei apart (the 2018 DSB winners'
    "separation" target), while a nucleus that touches no other keeps its thin contour.

    Parameters
    ----------
    labels : ndarray, shape (H, W), int
    width : int
        0: no band.

    Returns
    -------
    ndarray, shape (H, W), bool
    """
    lab = np.asarray(labels)
    return (lab > 0) & touching_border(lab, width)     # the border's pixels inside a nucleus


def touching_border(labels, width=BORDER_WIDTH):
    """Pixels within `width` pixels (chessboard distance) of two different nuclei: where nuclei touch.

    The "border" target, a channel of its own (the third output of the 2018 DSB winners, topcoders): the
    pixels of a nucleus near another nucleus (:func:`touching_band`) and the background pixels of a gap
    between two nuclei, but not the outline of a nucleus that touches none. Watershed seeds are cut where
    it is high, so that touching nuclei get a seed each (:func:`~nucleiseg_lib.inference.label_instances`).

    Parameters
    ----------
    labels : ndarray, shape (H, W), int
    width : int
        0: no border.

    Returns
    -------
    ndarray, shape (H, W), bool

    Examples
    --------
    >>> touching_border(np.array([[1, 1, 0, 2, 2, 0, 0, 0, 0, 3]]), width=2).astype(int)   # 3 is 5 px from 2
    array([[0, 1, 1, 1, 0, 0, 0, 0, 0, 0]])
    """
    lab = np.asarray(labels)
    if width <= 0 or lab.size == 0 or lab.max() == 0:
        return np.zeros(lab.shape, bool)
    from scipy import ndimage
    size = 2 * int(width) + 1
    top = int(lab.max()) + 1                             # stands for the background in the minimum
    highest = ndimage.maximum_filter(lab, size=size, mode="constant", cval=0)
    lowest = ndimage.minimum_filter(np.where(lab > 0, lab, top), size=size, mode="constant", cval=top)
    return (lowest < top) & (highest > lowest)          # two different nucleus labels in the window


def touch_weights(labels, contour, weight, width=2):
    """Per-pixel weight of the training loss: heavier on the contour where two nuclei touch.

    The U-Net paper (Ronneberger et al., 2015) weighted the few pixels that separate touching cells
    heavily, so that a network that draws no border there pays for it; here those pixels are the
    contour pixels within `width` pixels of another nucleus (:func:`touching_band`).

    Parameters
    ----------
    labels : ndarray, shape (H, W), int
    contour : ndarray, shape (H, W), bool
        The contour target (:func:`instance_contours`).
    weight : float
        Extra weight of those pixels; 0: none.
    width : int

    Returns
    -------
    ndarray, shape (H, W), float32: 1, and 1 + `weight` on contour pixels where nuclei touch
    """
    w = np.ones(np.shape(labels), np.float32)
    if weight:
        w[np.asarray(contour, bool) & touching_band(labels, width)] += float(weight)
    return w


def instance_distance(labels):
    """Each nucleus pixel's distance to the nearest pixel outside its nucleus, divided by the nucleus's largest.

    1 at the centre of every nucleus, falling to its edge whatever its size: seeds taken where this
    map is high stay apart for touching nuclei, small or large (the "DIST" target of Naylor et al.,
    2018, normalised per nucleus). The image border does not count as outside: a nucleus cut by a
    crop keeps the distances of its visible part.

    Parameters
    ----------
    labels : ndarray, shape (H, W), int

    Returns
    -------
    ndarray, shape (H, W), float32 in [0, 1] (0 on the background)
    """
    from scipy import ndimage
    lab = np.asarray(labels)
    out = np.zeros(lab.shape, np.float32)
    if lab.size == 0 or lab.max() == 0:
        return out
    padded = np.pad(lab, 1, mode="edge")      # a nucleus at the border continues past it
    for i, box in enumerate(ndimage.find_objects(lab), 1):
        if box is None:
            continue
        grown = tuple(slice(b.start, b.stop + 2) for b in box)   # the box and one pixel around it, in `padded`
        own = padded[grown] == i
        dist = ndimage.distance_transform_edt(own)[1:-1, 1:-1]
        inside = lab[box] == i
        top = dist[inside].max()
        out[box][inside] = dist[inside] / top
    return out


def make_target(labels, targets=("mask",), contour_width=1, touch=0):
    """Training target channels from an instance label map.

    Parameters
    ----------
    labels : ndarray, shape (H, W), int
    targets : tuple of str, one of :data:`TARGETS`
        "mask" is the union of all nuclei; "contour" their inner boundaries, which
        separate touching nuclei (used for watershed post-processing); "distance" the
        distance to each nucleus's edge, 1 at its centre (:func:`instance_distance`); "border" the
        pixels where two nuclei touch or nearly do (:func:`touching_border`).
    contour_width : int or "area"
        Width of the contour (:func:`instance_contours`).
    touch : int
        The contour also covers the pixels within `touch` pixels of another nucleus
        (:func:`touching_band`); 0: not.

    Returns
    -------
    ndarray, shape (len(targets), H, W), float32 in [0, 1] ({0, 1} but for "distance")
    """
    chans = []
    for t in targets:
        if t == "mask":
            chans.append(labels > 0)
        elif t == "contour":
            chans.append(instance_contours(labels, contour_width) | touching_band(labels, touch))
        elif t == "distance":
            chans.append(instance_distance(labels))
        elif t == "border":
            chans.append(touching_border(labels))
        else:
            raise ValueError(f"unknown target {t!r}; use 'mask', 'contour', 'distance' or 'border'")
    return np.stack(chans).astype(np.float32)


def resize(image, labels, shape):
    """Resize an image (bilinear, per channel with Pillow) and its labels (nearest) to `shape` = (H, W).

    Parameters
    ----------
    image : ndarray, shape (h, w, 3), float
    labels : ndarray, shape (h, w), int
    shape : (H, W)

    Returns
    -------
    image : ndarray, shape (H, W, 3), float32
    labels : ndarray, shape (H, W), same dtype as `labels`
    """
    from PIL import Image
    h, w = shape
    img = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], np.float32), mode="F")
                               .resize((w, h), Image.BILINEAR)) for c in range(image.shape[2])], axis=2)
    rows = np.minimum(((np.arange(h) + 0.5) * labels.shape[0] / h).astype(np.intp), labels.shape[0] - 1)
    cols = np.minimum(((np.arange(w) + 0.5) * labels.shape[1] / w).astype(np.intp), labels.shape[1] - 1)
    return img, labels[rows[:, None], cols]


#: How :func:`random_crop` labels the part of a window that lies outside its image, which shows the image
#: mirrored: "background" (what the recipes measured best), "reflect" (the mirrored nuclei keep their labels)
#: or "copies" (each mirrored copy an instance of its own).
PAD_LABELS = ("background", "reflect", "copies")


def reflect_labels(labels, pad, copies=False):
    """A label map padded by reflection, as its image is: the mirrored nuclei are nuclei too.

    Parameters
    ----------
    labels : ndarray, shape (H, W), int
    pad : ((top, bottom), (left, right))
        As for :func:`numpy.pad`; widths may exceed the image (it is reflected again).
    copies : bool
        False: mirrored nuclei keep their labels, so a nucleus cut by the image border and its
        mirror, one symmetric blob, are one instance. True: every mirrored copy is an instance
        of its own (that blob becomes two touching nuclei).

    Returns
    -------
    ndarray, shape (H + top + bottom, W + left + right), int32
    """
    lab = np.asarray(labels)
    h, w = lab.shape
    out = np.pad(lab, pad, mode="reflect" if min(h, w) > 1 else "edge").astype(np.int64)
    if copies:
        ty = (np.arange(out.shape[0]) - pad[0][0]) // h      # which copy of the image: 0 is the image itself
        tx = (np.arange(out.shape[1]) - pad[1][0]) // w
        copy = (ty - ty.min())[:, None] * (tx.max() - tx.min() + 1) + (tx - tx.min())[None, :]
        out = np.where(out > 0, copy * (int(lab.max()) + 1) + out, 0)
        out = np.unique(np.r_[0, out.ravel()], return_inverse=True)[1][1:].reshape(out.shape)  # 0 stays 0
    return out.astype(np.int32)


def random_crop(image, labels, size, rng, scale=(1.0, 1.0), pad_labels="background", warp=0.0):
    """A random `size` x `size` window at native resolution, optionally rescaled or warped.

    A window of ``size / s`` pixels (``s`` drawn log-uniformly from `scale`) is cut
    and resized to `size`, so ``s > 1`` magnifies the nuclei. Images smaller than the
    window are padded by reflection; their labels as `pad_labels` says (:data:`PAD_LABELS`):
    with background (the default), or by reflection too (:func:`reflect_labels`).
    With chance `warp` the window is instead turned, stretched and sheared (:func:`warped_crop`);
    0 (the default) draws nothing, so the random stream is the one of a plain crop.
    """
    if pad_labels not in PAD_LABELS:
        raise ValueError(f"unknown pad_labels {pad_labels!r}; use one of {PAD_LABELS}")
    s = float(np.exp(rng.uniform(np.log(scale[0]), np.log(scale[1])))) if scale != (1.0, 1.0) else 1.0
    if warp and rng.random() < warp:
        return warped_crop(image, labels, size, rng, s, pad_labels)
    win = max(8, int(round(size / s)))
    h, w = labels.shape
    if h < win or w < win:
        ph, pw = max(0, win - h), max(0, win - w)
        pad = ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2))
        image = np.pad(image, pad + ((0, 0),), mode="reflect" if min(h, w) > 1 else "edge")
        if pad_labels == "background":
            labels = np.pad(labels, pad, mode="constant")
        else:
            labels = reflect_labels(labels, pad, copies=pad_labels == "copies")
        h, w = labels.shape
    y, x = rng.integers(0, h - win + 1), rng.integers(0, w - win + 1)
    image, labels = image[y:y + win, x:x + win], labels[y:y + win, x:x + win]
    if win != size:
        image, labels = resize(image, labels, (size, size))
    return np.asarray(image, np.float32), labels


def warp_matrix(rng, s=1.0, stretch=1.3, shear=0.2):
    """A random 2x2 map from crop offsets to image offsets (pixels): any turn, a stretch and a shear.

    ``R(angle) @ [[a, shear], [0, 1 / a]] / s`` with the angle drawn from the whole circle, ``a``
    log-uniformly from ``[1 / stretch, stretch]`` and the shear uniformly from ``[-shear, shear]``: nuclei
    come out in every orientation and in shapes (longer, leaning) that flips and quarter turns do not make.
    """
    angle = rng.uniform(-np.pi, np.pi)
    a = float(np.exp(rng.uniform(-np.log(stretch), np.log(stretch))))
    k = rng.uniform(-shear, shear)
    c, n = np.cos(angle), np.sin(angle)
    return np.array([[c, -n], [n, c]]) @ np.array([[a, k], [0.0, 1.0 / a]]) / s


def warped_crop(image, labels, size, rng, s=1.0, pad_labels="background"):
    """A `size` x `size` crop cut along a random turn, stretch and shear (:func:`warp_matrix`), scaled by `s`.

    The window's centre is drawn so that the turned window lies inside the image where the image is
    large enough (else at the image's centre); what lies outside is the image mirrored, labelled as
    `pad_labels` says (as :func:`random_crop`). The image is sampled bilinearly, after a Gaussian blur
    where the window shrinks it (against aliasing); the labels by nearest neighbour.

    Parameters
    ----------
    image : ndarray, shape (H, W, C), float
    labels : ndarray, shape (H, W), int
    size : int
    rng : numpy.random.Generator
    s : float
        Magnification (as in :func:`random_crop`).
    pad_labels : {"background", "reflect", "copies"}

    Returns
    -------
    image : ndarray, shape (size, size, C), float32
    labels : ndarray, shape (size, size), int32
    """
    from scipy import ndimage
    m = warp_matrix(rng, s)
    half = (size - 1) / 2
    reach = np.abs(m).sum(axis=1) * half + 2           # half the extent of the turned window, per axis
    h, w = labels.shape
    centre = [rng.uniform(r, n - r) if n > 2 * r else n / 2 for r, n in zip(reach, (h, w))]
    lo = [int(np.floor(c - r)) for c, r in zip(centre, reach)]
    hi = [int(np.ceil(c + r)) + 1 for c, r in zip(centre, reach)]
    inner = tuple(slice(max(a, 0), min(b, n)) for a, b, n in zip(lo, hi, (h, w)))
    pad = tuple((max(0, -a), max(0, b - n)) for a, b, n in zip(lo, hi, (h, w)))
    img, lab = np.asarray(image, np.float32)[inner], np.asarray(labels)[inner]
    if any(p for pair in pad for p in pair):
        img = np.pad(img, pad + ((0, 0),), mode="reflect" if min(img.shape[:2]) > 1 else "edge")
        lab = (np.pad(lab, pad, mode="constant") if pad_labels == "background"
               else reflect_labels(lab, pad, copies=pad_labels == "copies"))
    shrink = float(np.linalg.norm(m, 2))               # the most the window shrinks the image, along any axis
    if shrink > 1:
        img = ndimage.gaussian_filter(img, sigma=(0.5 * (shrink - 1),) * 2 + (0,))
    offset = np.array([c - a for c, a in zip(centre, lo)]) - m @ np.array([half, half])
    out = np.stack([ndimage.affine_transform(img[..., c], m, offset, (size, size), order=1, mode="nearest")
                    for c in range(img.shape[2])], axis=2)
    lab = ndimage.affine_transform(lab.astype(np.int32), m, offset, (size, size), order=0, mode="nearest")
    return out.astype(np.float32), lab.astype(np.int32)


def paste_nuclei(image, labels, rng, most=8, tries=10):
    """Copy-paste augmentation: nuclei of a crop copied onto its background.

    Up to `most` nuclei (how many is drawn from 0..`most`) that lie wholly inside the
    crop are cut out with their pixels, turned by a random multiple of 90 degrees,
    maybe mirrored, and pasted where they cover only background (a pasted nucleus may
    touch others, never overlap them), each as a new instance. The crop then holds
    more nuclei, in new neighbourhoods, in the crop's own stain and scale (the 2018
    DSB winners' copy-paste, within one image).

    Parameters
    ----------
    image : ndarray, shape (H, W, C), float32
    labels : ndarray, shape (H, W), int; 0 is background
    rng : numpy.random.Generator
    most : int
        The largest number of nuclei pasted (0: none, and no random numbers drawn).
    tries : int
        Random places tried per nucleus before giving it up.

    Returns
    -------
    image : ndarray, shape (H, W, C), float32 (a copy when anything is pasted)
    labels : ndarray, shape (H, W), int32, pasted nuclei numbered after the others
    """
    from scipy import ndimage
    labels = np.asarray(labels)
    if most <= 0 or labels.max() == 0:
        return image, labels
    h, w = labels.shape
    boxes = ndimage.find_objects(labels)
    whole = [i + 1 for i, b in enumerate(boxes) if b is not None and b[0].start > 0 and b[1].start > 0
             and b[0].stop < h and b[1].stop < w and (labels[b] == i + 1).sum() >= 8]
    k = int(rng.integers(0, most + 1))
    if not whole or k == 0:
        return image, labels
    image, labels = np.array(image, np.float32), labels.astype(np.int32)
    next_id = int(labels.max()) + 1
    for src in rng.choice(whole, size=k, replace=True):
        box = boxes[src - 1]
        shape, patch = labels[box] == src, image[box]
        turn, mirror = int(rng.integers(4)), bool(rng.random() < 0.5)
        shape, patch = np.rot90(shape, turn), np.rot90(patch, turn)
        if mirror:
            shape, patch = shape[:, ::-1], patch[:, ::-1]
        ph, pw = shape.shape
        if ph >= h or pw >= w:
            continue
        for _ in range(tries):
            y, x = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
            dest = (slice(y, y + ph), slice(x, x + pw))
            if not labels[dest][shape].any():
                image[dest][shape] = patch[shape]
                labels[dest][shape] = next_id
                next_id += 1
                break
    return image, labels


COLOUR_AUGMENTATIONS = ("mix", "stain")


def hue_rotation(angle):
    """The 3x3 matrix that turns RGB colours by `angle` radians about the grey axis (grey stays grey).

    ``rgb @ hue_rotation(a)`` shifts every hue by `a` and keeps each pixel's mean (its grey level).
    """
    c, s = np.cos(angle), np.sin(angle)
    k = np.ones((3, 3)) / 3.0
    skew = np.array([[0, -1, 1], [1, 0, -1], [-1, 1, 0]]) / np.sqrt(3.0)
    return (c * np.eye(3) + (1 - c) * k + s * skew).T.astype(np.float32)


def augment_colour(image, rng, kind="mix", reference=None, blur=0.0):
    """Random contrast, brightness, gamma, channel mixing, grayscale, blur and noise, in [0, 1].

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), float32 in [0, 1]
    rng : numpy.random.Generator
    kind : {"mix", "stain"}
        "stain" first draws stains the training set does not have: channels shuffled,
        hue turned by up to half a circle about the grey axis (:func:`hue_rotation`),
        saturation scaled from none to 1.5x (the 2018 winners' answer to new stains:
        channel shuffle and HSV jitter); then the "mix" augmentation follows.
    reference : ndarray, shape (h, w, 3), optional
        Pixels of the whole image that `image` was cut from (:func:`image_sample`). They
        get the same colour change, and their range, not the crop's, is stretched to
        [0, 1]; then the crop can be standardised by them (:func:`standardize`).
    blur : float
        Chance of a Gaussian blur of the crop (sigma 0.5-1.5 px, drawn), before the noise: a softer optic or
        a focus that other microscopes have (the 2018 winners blurred too). 0 (the default) draws nothing, so
        the random stream is the one of the augmentation without it. `reference` is not blurred: a blur keeps
        the statistics that standardise the crop.

    Returns
    -------
    ndarray, shape (H, W, 3), float32 in [0, 1]; with `reference`, the pair (image, reference)
    """
    if kind not in COLOUR_AUGMENTATIONS:
        raise ValueError(f"unknown colour augmentation {kind!r}; use one of {COLOUR_AUGMENTATIONS}")
    xs = [image] if reference is None else [image, reference]
    if kind == "stain":
        m = np.eye(3, dtype=np.float32)
        if rng.random() < 0.5:
            m = m[:, rng.permutation(3)]
        if rng.random() < 0.5:
            m = m @ hue_rotation(rng.uniform(-np.pi, np.pi))
        if rng.random() < 0.5:
            sat = np.float32(rng.uniform(0.0, 1.5))
            m = m @ (sat * np.eye(3, dtype=np.float32) + (1 - sat) / 3 * np.ones((3, 3), np.float32))
        xs = [np.clip(x @ m, 0, 1) for x in xs]
    if rng.random() < 0.5:  # mix channels: other stains, other colour balances
        m = np.eye(3, dtype=np.float32) * rng.uniform(0.6, 1.0) + rng.uniform(0, 0.4, (3, 3)).astype(np.float32)
        xs = [x @ (m / m.sum(axis=0, keepdims=True)) for x in xs]
    if rng.random() < 0.2:
        xs = [np.repeat(x.mean(axis=2, keepdims=True), 3, axis=2) for x in xs]
    lo, hi = float(xs[-1].min()), float(xs[-1].max())
    if hi > lo:
        xs = [(x - lo) / (hi - lo) for x in xs]
    gamma = np.float32(np.exp(rng.uniform(-0.5, 0.5)))
    gain, offset = rng.uniform(0.5, 1.0), rng.uniform(0, 0.1)
    xs = [np.clip(x, 0, 1) ** gamma * gain + offset for x in xs]
    if blur > 0 and rng.random() < blur:
        from scipy import ndimage
        sigma = rng.uniform(0.5, 1.5)
        xs[0] = ndimage.gaussian_filter(xs[0], (sigma, sigma, 0))
    if rng.random() < 0.3:
        sigma = np.float32(rng.uniform(0, 0.03))
        xs = [x + sigma * rng.standard_normal(x.shape, dtype=np.float32) for x in xs]
    xs = [np.clip(x, 0, 1).astype(np.float32) for x in xs]
    return xs[0] if reference is None else (xs[0], xs[1])


def augment_geometry(x, y, rng):
    """Random flips and 90-degree rotations of channels-first arrays (same for x and y)."""
    k = int(rng.integers(4))
    if k:
        x, y = np.rot90(x, k, axes=(1, 2)), np.rot90(y, k, axes=(1, 2))
    if rng.random() < 0.5:
        x, y = x[:, :, ::-1], y[:, :, ::-1]
    return np.ascontiguousarray(x), np.ascontiguousarray(y)
