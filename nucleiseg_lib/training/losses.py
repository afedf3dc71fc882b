"""Losses: BCE with logits, optionally plus soft Dice on the nucleus mask, on the mask and the touching border, or
on every output channel; or plus the Lovasz hinge of the mask (a surrogate of its IoU)."""

import torch
import torch.nn.functional as F

LOSSES = ("bce", "bce+dice", "bce+dice-border", "bce+dice-all", "bce+lovasz")


def soft_dice_loss(logits, target, eps=1.0, channel=0):
    """1 - soft Dice of one channel (the mask, by default), averaged over the batch.

    Parameters
    ----------
    logits, target : Tensor, shape (B, C, H, W)
    eps : float
        Added to both sides of the ratio: a crop with nothing in `channel` and nothing predicted scores 0.
    channel : int
    """
    p = torch.sigmoid(logits[:, channel].float()).flatten(1)
    t = target[:, channel].float().flatten(1)
    return (1 - (2 * (p * t).sum(1) + eps) / (p.sum(1) + t.sum(1) + eps)).mean()


def lovasz_hinge_loss(logits, target, channel=0):
    """The Lovasz hinge of one channel (the mask, by default), per image, averaged over the batch.

    The convex surrogate of 1 - IoU of Berman et al. (2018): each pixel's hinge error ``1 - logit * sign``
    (sign +1 in the target, -1 outside), sorted from the worst, weighted by how much the IoU drops as the
    pixels are taken in that order. Unlike BCE, a pixel on a small nucleus's outline weighs as much of its
    image's IoU as it costs.

    Parameters
    ----------
    logits, target : Tensor, shape (B, C, H, W)
    channel : int

    Returns
    -------
    Tensor, scalar
    """
    losses = []
    for z, t in zip(logits[:, channel].float().flatten(1), target[:, channel].float().flatten(1)):
        errors = 1 - z * (2 * t - 1)
        errors, order = torch.sort(errors, descending=True)
        t = t[order]
        inside = t.sum()
        jaccard = 1 - (inside - t.cumsum(0)) / (inside + (1 - t).cumsum(0))
        jaccard = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
        losses.append(torch.dot(F.relu(errors), jaccard))
    return torch.stack(losses).mean()


def segmentation_loss(logits, target, kind="bce", channels=None):
    """The training loss.

    Parameters
    ----------
    logits : Tensor, shape (B, C, H, W)
    target : Tensor, shape (B, C, H, W), values in {0, 1}; or (B, C + 1, H, W)
        Must match `logits` exactly (a ``[B, 1, 1, H, W]`` target is refused), or have one more channel: the
        weight of each pixel's BCE in every channel (:class:`~nucleiseg_lib.data.NucleiDataset` with
        ``touch_weight``); the Dice terms are not weighted.
    kind : {"bce", "bce+dice", "bce+dice-border", "bce+dice-all", "bce+lovasz"}
        ``"bce+dice"`` adds the soft Dice of the mask channel; ``"bce+lovasz"`` its Lovasz hinge instead; ``"bce+dice-all"`` adds the soft Dice of every
        channel, so that a thin, sparse channel (the contours) has a term of its own as large as the mask's,
        instead of being a small share of the mean BCE; ``"bce+dice-border"`` adds the soft Dice of the mask
        and of the touching border only (the sparsest channel, which BCE alone leaves unlearnt), not of the contour.
    channels : sequence of str, optional
        The name of each output channel (the config's ``targets``); ``"bce+dice-border"`` needs one named
        ``"border"``.

    Returns
    -------
    Tensor, scalar
    """
    weight = None
    if target.ndim == 4 and logits.ndim == 4 and target.shape[1] == logits.shape[1] + 1:
        target, weight = target[:, :-1], target[:, -1:].float()
    if logits.shape != target.shape:
        raise ValueError(f"target shape {tuple(target.shape)} does not match output shape {tuple(logits.shape)}")
    loss = F.binary_cross_entropy_with_logits(logits.float(), target.float(),
                                              weight=None if weight is None else weight.expand_as(logits))
    if kind == "bce+dice":
        loss = loss + soft_dice_loss(logits, target)
    elif kind == "bce+dice-border":
        names = list(channels or [])
        if "border" not in names or len(names) != logits.shape[1]:
            raise ValueError(f"loss 'bce+dice-border' needs a 'border' channel among {logits.shape[1]} named channels, "
                             f"got {names}")
        loss = loss + soft_dice_loss(logits, target) + soft_dice_loss(logits, target, channel=names.index("border"))
    elif kind == "bce+dice-all":
        loss = loss + sum(soft_dice_loss(logits, target, channel=c) for c in range(logits.shape[1]))
    elif kind == "bce+lovasz":
        loss = loss + lovasz_hinge_loss(logits, target)
    elif kind != "bce":
        raise ValueError(f"unknown loss {kind!r}; use one of {LOSSES}")
    return loss
