"""Seeded synthetic nuclei images in the Kaggle DSB2018 folder layout.

Lets the course (and the tests) run offline and fast. Layout written::

    <out>/<id>/images/<id>.png        RGBA 8-bit, alpha 255
    <out>/<id>/masks/<mask_id>.png    one 'L' 0/255 mask per nucleus, no overlaps
    <out>/SYNTHETIC.txt               marker: this is NOT real microscopy
"""

import hashlib
import os

import numpy as np
from PIL import Image
from scipy import ndimage

from ..fileio import atomic_path

STYLES = ("fluorescence", "stained", "brightfield")
MIXED_P = (0.60, 0.25, 0.15)
MIN_PIXELS = 15
MARKER = "SYNTHETIC.txt"


def _hw(size):
    h, w = (size, size) if np.isscalar(size) else size
    if int(h) < 16 or int(w) < 16:
        raise ValueError(f"size must be at least 16x16, got {size!r}")
    return int(h), int(w)


def _smooth_noise(rng, shape, sigma):
    """Zero-mean, unit-std smooth random field (coarse grid + zoom when `sigma` is large)."""
    if sigma > 8:
        step = sigma / 2
        small = rng.standard_normal([int(np.ceil(d / step)) + 2 for d in shape], np.float32)
        f = ndimage.zoom(ndimage.gaussian_filter(small, 1.0), step, order=1)
        f = f[: shape[0], : shape[1]]
    else:
        f = ndimage.gaussian_filter(rng.standard_normal(shape, np.float32), sigma)
    return (f - f.mean()) / (f.std() + 1e-8)


def _draw_labels(rng, h, w):
    """Irregular ellipses in a label map; some touch, none overlap."""
    labels = np.zeros((h, w), np.int32)
    scale = min(h, w) / 256.0
    r_lo, r_hi = max(3.0, 5.0 * scale), max(5.0, 18.0 * scale)
    centres = []  # (y, x, mean radius)
    target = int(rng.integers(5, 41))
    areas = []  # pixel count of each placed nucleus
    for _ in range(3 * target):
        if len(centres) == target:
            break
        k = len(centres) + 1
        a = rng.uniform(r_lo, r_hi)
        b = a * rng.uniform(0.6, 1.0)
        if centres and rng.random() < 0.4:  # touch an existing nucleus
            cy, cx, cr = centres[rng.integers(len(centres))]
            ang = rng.uniform(0, 2 * np.pi)
            d = 0.85 * (cr + (a + b) / 2)
            y0, x0 = cy + d * np.sin(ang), cx + d * np.cos(ang)
        else:
            y0, x0 = rng.uniform(0, h), rng.uniform(0, w)
        theta = rng.uniform(0, np.pi)
        harm = rng.normal(0, 0.05, 3)
        phase = rng.uniform(0, 2 * np.pi, 3)
        R = int(np.ceil(max(a, b) * 1.2)) + 1
        ys, xs = int(round(y0)), int(round(x0))
        y1, y2, x1, x2 = max(ys - R, 0), min(ys + R + 1, h), max(xs - R, 0), min(xs + R + 1, w)
        if y1 >= y2 or x1 >= x2:
            continue
        yy, xx = np.mgrid[y1:y2, x1:x2]
        dy, dx = yy - y0, xx - x0
        u = dx * np.cos(theta) + dy * np.sin(theta)
        v = -dx * np.sin(theta) + dy * np.cos(theta)
        phi = np.arctan2(v, u)
        wobble = 1 + sum(harm[j] * np.cos((j + 2) * phi + phase[j]) for j in range(3))
        inside = (u / a) ** 2 + (v / b) ** 2 <= wobble ** 2
        win = labels[y1:y2, x1:x2]
        hit = np.bincount(win[inside], minlength=k)[1:]
        if hit.sum() > 0.12 * inside.sum() or (hit > 0.12 * np.array(areas, float)).any():
            continue  # would swallow a neighbour or be swallowed: keep overlaps small
        win[inside & (win == 0)] = k
        areas.append(max(int((win == k).sum()), 1))
        centres.append((y0, x0, (a + b) / 2))
    # keep the largest piece of each nucleus, drop tiny ones, relabel 1..N
    out = np.zeros_like(labels)
    n = 0
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        comp, nc = ndimage.label(labels[sl] == k)
        if nc == 0:
            continue
        sizes = np.bincount(comp.ravel())[1:]
        if sizes.max() < MIN_PIXELS:
            continue
        n += 1
        out[sl][comp == 1 + int(sizes.argmax())] = n
    return out


def _render(rng, labels, style):
    """Turn a label map into a uint8 RGB image of the given style."""
    h, w = labels.shape
    n = int(labels.max())
    s = min(h, w) / 256.0
    bright = np.concatenate([[0.0], rng.uniform(0.45, 1.0, n)])
    texture = 1 + 0.18 * _smooth_noise(rng, (h, w), 1.2 * s + 0.5)
    nuc = ndimage.gaussian_filter(bright[labels] * texture, 0.8 + 0.4 * s)
    gy, gx = np.mgrid[0:1:h * 1j, 0:1:w * 1j]
    ang = rng.uniform(0, 2 * np.pi)
    grad = (np.cos(ang) * gx + np.sin(ang) * gy) * rng.uniform(0.3, 1.0)
    grad = grad - grad.mean() + 0.3 * _smooth_noise(rng, (h, w), 40 * s)
    if style == "fluorescence":
        img = rng.uniform(0.03, 0.08) * (1 + 0.4 * grad) + rng.uniform(0.5, 0.9) * nuc
        img = img + np.sqrt(np.clip(img, 0, None) / 200) * rng.standard_normal((h, w))
        rgb = np.repeat(img[..., None], 3, axis=2)
    elif style == "brightfield":
        img = rng.uniform(0.7, 0.85) * (1 + 0.06 * grad) - rng.uniform(0.15, 0.3) * nuc
        img = img + 0.015 * rng.standard_normal((h, w))
        rgb = np.repeat(img[..., None], 3, axis=2) * np.array([1.0, 0.99, 0.97])
    else:  # "stained": H&E-like, eosin-pink background, haematoxylin-purple nuclei
        pink = np.array([0.93, 0.74, 0.84]) + rng.normal(0, 0.02, 3)
        purple = np.array([0.30, 0.20, 0.55]) + rng.normal(0, 0.03, 3)
        fine, coarse = _smooth_noise(rng, (h, w), 1.0), _smooth_noise(rng, (h, w), 6 * s + 1)
        eosin = 0.025 * fine + 0.035 * coarse + 0.05 * grad
        alpha = np.clip(nuc * rng.uniform(0.9, 1.2), 0, 1)[..., None]
        rgb = (pink * (1 - eosin[..., None])) * (1 - alpha) + purple * alpha
        rgb = rgb + 0.02 * rng.standard_normal((h, w, 3))
    return np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)


def make_synthetic_sample(rng, size=(256, 256), style="fluorescence"):
    """Make one synthetic nuclei image and its label map.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness; the result depends only on its state.
    size : int or tuple of int
        Image size, square if an int, else ``(height, width)``.
    style : {"fluorescence", "stained", "brightfield", "mixed"}
        Imaging look; "mixed" draws one from `rng` (60/25/15 %).

    Returns
    -------
    image : numpy.ndarray
        uint8 array ``[H, W, 3]``.
    labels : numpy.ndarray
        int32 array ``[H, W]``; 0 is background, 1..N the nuclei.
    """
    h, w = _hw(size)
    if style == "mixed":
        style = STYLES[int(rng.choice(3, p=MIXED_P))]
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; use one of {STYLES} or 'mixed'")
    labels = _draw_labels(rng, h, w)
    return _render(rng, labels, style), labels


def _sha(text):
    return hashlib.sha1(text.encode()).hexdigest()


def make_synthetic_dataset(out, n=24, size=256, seed=0, style="mixed", overwrite=False):
    """Write `n` synthetic samples in the Kaggle DSB2018 layout under `out`.

    Parameters
    ----------
    out : str or os.PathLike
        Root folder; created if missing.
    n : int
        Number of samples.
    size : int or tuple of int
        Image size, square if an int, else ``(height, width)``.
    seed : int
        Seed; the same seed gives byte-identical files, and sample ``i``
        does not depend on `n`.
    style : {"mixed", "fluorescence", "stained", "brightfield"}
        Imaging look of every sample, or a per-sample draw for "mixed".
    overwrite : bool
        Replace existing samples; if False they are kept (resume).

    Returns
    -------
    list of str
        The sorted sample ids.
    """
    if style != "mixed" and style not in STYLES:
        raise ValueError(f"unknown style {style!r}; use one of {STYLES} or 'mixed'")
    h, w = _hw(size)
    out = os.fspath(out)
    os.makedirs(out, exist_ok=True)
    ids = []
    for i, child in enumerate(np.random.SeedSequence(seed).spawn(n)):
        sid = _sha(f"synthetic-{seed}-{i}")
        ids.append(sid)
        final = os.path.join(out, sid)
        if os.path.exists(final) and not overwrite:
            continue
        image, labels = make_synthetic_sample(np.random.default_rng(child), (h, w), style)
        with atomic_path(final, folder=True) as tmp:
            os.makedirs(os.path.join(tmp, "images"))
            os.makedirs(os.path.join(tmp, "masks"))
            rgba = np.dstack([image, np.full((h, w), 255, np.uint8)])
            ipath = os.path.join(tmp, "images", f"{sid}.png")
            Image.fromarray(rgba, "RGBA").save(ipath, compress_level=1)  # fast, still lossless
            m = np.zeros((h, w), np.uint8)
            for k, sl in enumerate(ndimage.find_objects(labels), start=1):
                m[sl] = np.where(labels[sl] == k, 255, 0)
                mpath = os.path.join(tmp, "masks", f"{_sha(f'{sid}-mask-{k}')}.png")
                Image.fromarray(m, "L").save(mpath, compress_level=1)
                m[sl] = 0
    text = (
        f"!!! SYNTHETIC DATA !!! Every image in this folder was generated by nucleiseg_lib "
        f"(nucleiseg_lib.data.synth.make_synthetic_dataset, seed={seed}, n={n}, size={h}x{w}, "
        f"style={style}). The nuclei are random ellipses drawn by a program, not cells seen "
        f"through a microscope. Use it to test code and to run the course offline; scores, "
        f"plots and models obtained on it say NOTHING about performance on real microscopy.\n"
    )
    marker = os.path.join(out, MARKER)
    old = None
    if os.path.exists(marker):
        with open(marker, encoding="utf-8") as f:
            old = f.read()
    if old != text:  # leave an identical marker untouched (resume keeps mtimes)
        with open(marker, "w", encoding="utf-8") as f:
            f.write(text)
    return sorted(ids)


def is_synthetic(root):
    """Return True if `root` holds the synthetic-data marker file ``SYNTHETIC.txt``."""
    return os.path.isfile(os.path.join(os.fspath(root), MARKER))
