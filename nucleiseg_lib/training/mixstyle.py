"""MixStyle: the feature statistics of a batch's crops mixed during training (Zhou et al., ICLR 2021).

The per-channel mean and deviation of a convolutional layer's output over an image carry much of its "style"
(stain, brightness, texture of the microscope), its normalised values much of its content. MixStyle replaces,
at random, each crop's statistics in the first blocks of the encoder by a mixture of its own and another crop's:
the network sees the same nuclei in styles between the ones it has, which is reported to help on domains never
seen in training. It is a training-time change only: the hooks act only while the model is in training mode,
add no weights, and a checkpoint (and prediction) is the same as without them.
"""

import torch


def mix_styles(x, alpha=0.1, eps=1e-6):
    """Each item's per-channel mean and deviation mixed with those of another item of the batch.

    Parameters
    ----------
    x : Tensor, shape (B, C, H, W)
    alpha : float
        Mixing weights ``l`` are drawn from Beta(alpha, alpha): small alpha keeps most items close to
        their own statistics (``l`` near 0 or 1).
    eps : float

    Returns
    -------
    Tensor, shape (B, C, H, W), the dtype of `x`: ``(x - mu) / sigma * sigma_mix + mu_mix``, with
    ``mu_mix = l mu + (1 - l) mu[perm]`` (and so for sigma); the statistics carry no gradient.
    """
    b = x.shape[0]
    if b < 2:
        return x
    xf = x.float()
    mu = xf.mean(dim=(2, 3), keepdim=True).detach()
    sigma = (xf.var(dim=(2, 3), keepdim=True) + eps).sqrt().detach()
    lam = torch.distributions.Beta(alpha, alpha).sample((b, 1, 1, 1)).to(x.device)
    perm = torch.randperm(b, device=x.device)
    mu_mix = lam * mu + (1 - lam) * mu[perm]
    sigma_mix = lam * sigma + (1 - lam) * sigma[perm]
    return ((xf - mu) / sigma * sigma_mix + mu_mix).to(x.dtype)


def add_mixstyle(model, chance, alpha=0.1, blocks=2):
    """Apply :func:`mix_styles` to the output of the first `blocks` encoder blocks of a U-Net, in training only.

    Each block draws on its own whether to mix a batch (with probability `chance`), from the global torch
    random stream (saved in ``last.pt``, so a resumed run draws the same).

    Parameters
    ----------
    model : UNet
    chance : float
        In [0, 1]; 0 registers nothing.
    alpha : float
    blocks : int

    Returns
    -------
    list of torch.utils.hooks.RemovableHandle
        Call ``remove()`` on each to take the mixing away.
    """
    if not chance:
        return []

    def hook(module, inputs, output):
        if module.training and torch.rand(()).item() < chance:
            return mix_styles(output, alpha)
        return None

    return [block.register_forward_hook(hook) for block in list(model.down)[:blocks]]
