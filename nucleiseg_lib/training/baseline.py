"""The smallest "segmentation model" there is, for teaching: one brightness weight and one bias."""

import numpy as np


def fit_pixel_classifier(image, target, steps=300, lr=0.1, seed=0):
    """Fit the smallest possible "segmentation model" to one image: ``sigmoid(a * brightness + b)``.

    Trained with the same loss as the U-Net (binary cross-entropy), in a second.
    Notebook 02 uses it to show what a target spoilt by a double ``/255`` teaches.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), float in [0, 1]
    target : ndarray, shape (H, W) or (1, H, W), float
    steps : int
    lr : float

    Returns
    -------
    ndarray, shape (H, W), float32
        The fitted nucleus probability of every pixel.
    """
    import torch
    import torch.nn.functional as F

    from ..data import normalize_image
    torch.manual_seed(seed)
    x = torch.from_numpy(normalize_image(image)).mean(0)
    t = torch.as_tensor(np.asarray(target, np.float32).reshape(x.shape))
    step = max(1, int(np.sqrt(x.numel() / 2 ** 14)))  # two parameters: 16k pixels are plenty to fit them
    xs, ts = x[::step, ::step], t[::step, ::step]
    params = torch.zeros(2, requires_grad=True)
    opt = torch.optim.Adam([params], lr=lr)
    for _ in range(steps):
        loss = F.binary_cross_entropy_with_logits(params[0] * xs + params[1], ts)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return torch.sigmoid(params[0] * x + params[1]).numpy()
