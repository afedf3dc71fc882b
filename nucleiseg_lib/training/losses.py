"""Losses: BCE with logits, optionally plus soft Dice on the nucleus mask."""

import torch
import torch.nn.functional as F

LOSSES = ("bce", "bce+dice")


def soft_dice_loss(logits, target, eps=1.0):
    """1 - soft Dice of the first (mask) channel, averaged over the batch.

    Parameters
    ----------
    logits, target : Tensor, shape (B, C, H, W)
    """
    p = torch.sigmoid(logits[:, 0].float()).flatten(1)
    t = target[:, 0].float().flatten(1)
    return (1 - (2 * (p * t).sum(1) + eps) / (p.sum(1) + t.sum(1) + eps)).mean()


def segmentation_loss(logits, target, kind="bce"):
    """The training loss.

    Parameters
    ----------
    logits : Tensor, shape (B, C, H, W)
    target : Tensor, shape (B, C, H, W), values in {0, 1}
        Must match `logits` exactly (a ``[B, 1, 1, H, W]`` target is refused).
    kind : {"bce", "bce+dice"}

    Returns
    -------
    Tensor, scalar
    """
    if logits.shape != target.shape:
        raise ValueError(f"target shape {tuple(target.shape)} does not match output shape {tuple(logits.shape)}")
    loss = F.binary_cross_entropy_with_logits(logits.float(), target.float())
    if kind == "bce+dice":
        loss = loss + soft_dice_loss(logits, target)
    elif kind != "bce":
        raise ValueError(f"unknown loss {kind!r}; use one of {LOSSES}")
    return loss
