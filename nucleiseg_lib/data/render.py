"""Fluorescence crops rendered as stained tissue: the stains stage1_train barely has, drawn with true labels.

stage1_train holds one stained experiment in its training groups; the unseen images hold others (blue-violet
nuclei on pale yellow, pink-violet sections whose cytoplasm a model traces). Its fluorescence crops are many and
their labels are exact, so :func:`render_stained` turns one into a brightfield image by the Beer-Lambert law:
each stain adds an optical density along its own colour vector, and light that passes is ``exp(-density)``.
The nuclei carry haematoxylin in proportion to their fluorescence, broken by a granular chromatin texture;
the cells around them and a fibrous stroma carry eosin and some haematoxylin, which the model must learn not to
outline.

Off in every recipe (``TrainConfig.render = 0``): measured on left-out experiments and not adopted
(README, "Fluorescence crops drawn as stained tissue").
"""

import numpy as np
from scipy import ndimage

# Optical density per unit stain (Ruifrok & Johnston 2001, the vectors of skimage.color.rgb2hed).
HAEMATOXYLIN = np.array([0.65, 0.70, 0.29], np.float32)
EOSIN = np.array([0.07, 0.99, 0.11], np.float32)


def stain_vector(base, rng, jitter=0.15):
    """A unit optical-density vector near `base`, each component moved by up to +-`jitter` (kept >= 0.02)."""
    v = np.clip(np.asarray(base, np.float32) + rng.uniform(-jitter, jitter, 3).astype(np.float32), 0.02, None)
    return (v / np.linalg.norm(v)).astype(np.float32)


def smooth_field(shape, rng, sigma):
    """Gaussian-smoothed white noise rescaled to [0, 1], shape `shape`: a texture `sigma` px across."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    lo, hi = float(f.min()), float(f.max())
    return (f - lo) / (hi - lo) if hi > lo else np.zeros(shape, np.float32)


def render_stained(image, labels, rng):
    """A dark-background crop rendered as stained tissue in transmitted light; its labels stay true.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), float32 in [0, 1]
        A fluorescence crop (nuclei brighter than the background).
    labels : ndarray, shape (H, W), int
        Its instance labels (0 = background); they place the cytoplasm around each nucleus.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, shape (H, W, 3), float32 in [0, 1]: dark nuclei on a bright, partly eosin-stained background.
    """
    grey = np.asarray(image, np.float32).mean(axis=2)
    lo, hi = np.percentile(grey, (1.0, 99.8))
    nuclei = np.clip((grey - lo) / max(hi - lo, 1e-3), 0, 1)
    shape = grey.shape
    # haematoxylin: the nuclei with their chromatin (granules 1-2 px across, pale spaces between them), and a
    # counterstain everywhere that can be as dark as a pale nucleus (cytoplasm and stroma in a blue-violet stain)
    grain = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), rng.uniform(0.7, 2.0))
    chromatin = np.exp(rng.uniform(0.0, 0.6) * grain / max(float(grain.std()), 1e-6))
    h = (nuclei * chromatin * rng.uniform(0.4, 1.6)
         + smooth_field(shape, rng, rng.uniform(2, 8)) * rng.uniform(0.0, 0.35))
    # eosin: the cells around the nuclei and a fibrous stroma between them
    reach = rng.uniform(2, 10) * (0.4 + smooth_field(shape, rng, 6))  # an irregular rim of cytoplasm, px
    cells = ndimage.gaussian_filter(np.clip(1 - ndimage.distance_transform_edt(labels == 0) / reach, 0, 1), 1.0)
    stroma = smooth_field(shape, rng, rng.uniform(1.5, 6)) ** rng.uniform(1, 3)
    e = cells * rng.uniform(0.0, 0.7) + stroma * rng.uniform(0.0, 0.6)
    tint = rng.uniform(0, 0.12, 3).astype(np.float32)  # a coloured background (yellowish, greyish) of the slide
    density = (h[..., None] * stain_vector(HAEMATOXYLIN, rng) + e[..., None] * stain_vector(EOSIN, rng) + tint)
    light = rng.uniform(0.85, 1.0)
    return np.clip(light * np.exp(-density), 0, 1).astype(np.float32)
