"""Training crops seen through a random shallow network: new textures and intensity maps, same nuclei.

Global Intensity Non-linear augmentation (GIN; Ouyang et al., "Causality-inspired single-source domain
generalization for medical image segmentation", IEEE TMI 2022): a few convolutions with weights drawn afresh
for every crop, each followed by a leaky ReLU, change how intensity and local texture look while every edge
stays where it was. The result is mixed with the crop by a random share and standardised again. A model
that must find the same nuclei under any such map is meant to learn their shape more than their stain (measured
on left-out experiments in the README: not adopted).
"""

import numpy as np
from scipy import ndimage

KERNEL_SIZES = (1, 3)


def random_conv_net(x, rng, layers=4, width=2, slope=0.2):
    """`x` passed through `layers` random convolutions (leaky ReLU between them), back to its channels.

    Parameters
    ----------
    x : ndarray, shape (C, H, W), float32
    rng : numpy.random.Generator
        Draws every kernel's size (1 or 3) and every weight and bias (standard normal).
    layers : int
        Convolutions; the inner ones have `width` channels.
    width : int
    slope : float
        Of the leaky ReLU after every convolution but the last.

    Returns
    -------
    ndarray, shape (C, H, W), float32
    """
    c = x.shape[0]
    channels = [c] + [width] * (layers - 1) + [c]
    h = np.asarray(x, np.float32)
    for i in range(layers):
        k = int(rng.choice(KERNEL_SIZES))
        w = rng.standard_normal((channels[i + 1], channels[i], k, k)).astype(np.float32)
        b = rng.standard_normal(channels[i + 1]).astype(np.float32)
        w /= np.sqrt(channels[i] * k * k)       # each layer keeps about its input's scale
        out = np.empty((channels[i + 1],) + h.shape[1:], np.float32)
        for o in range(channels[i + 1]):
            out[o] = b[o] + sum(ndimage.correlate(h[j], w[o, j], mode="reflect") for j in range(channels[i]))
        h = out if i == layers - 1 else np.where(out > 0, out, slope * out)
    return h


def mix_random_convolution(x, rng):
    """GIN: a crop mixed with its random-network version by a random share, then standardised again.

    Parameters
    ----------
    x : ndarray, shape (C, H, W), float32
        A standardised crop (:func:`~nucleiseg_lib.data.transforms.normalize_image`).
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, shape (C, H, W), float32: standardised again (zero mean, unit deviation over the crop), so the
    network sees the statistics prediction gives it.
    """
    alpha = rng.random()
    mixed = alpha * random_conv_net(x, rng) + (1 - alpha) * x
    mixed -= mixed.mean()  # transforms.standardize in another float order: kept, so amx-gin5-s0 retrains bit for bit
    return (mixed / max(float(mixed.std()), 1e-3)).astype(np.float32)
