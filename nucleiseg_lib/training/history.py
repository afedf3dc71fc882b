"""Reading a training history: best epoch, and the signs of over- and under-fitting."""

import numpy as np


def read_history(history, window=3):
    """What the loss and validation curves of a run say, in numbers.

    Parameters
    ----------
    history : list of dict
        One per epoch, with ``epoch``, ``train_loss``, ``val_loss`` and ``val_iou``
        (as :meth:`Trainer.fit` returns and ``history.json`` stores).
    window : int
        Epochs at the end compared with the ones before them to say whether a curve
        still falls.

    Returns
    -------
    dict
        ``best_epoch`` and ``best_val_iou`` (the epoch ``best.pt`` holds),
        ``min_val_loss_epoch``, ``epochs``, ``train_falling`` and ``val_rising``
        (bool: the training loss of the last `window` epochs is below the one of
        the `window` before; the validation loss of the last `window` epochs is
        more than 5 % above its minimum over the epochs before them) and ``verdict``: "overfitting" (the
        training loss falls while the validation loss rises), "underfitting" (both
        still fall: train longer), "converged" (neither moves), or "too short" (fewer
        than ``2 * window`` epochs, or no validation images).
    """
    hist = [h for h in history if h.get("val_loss") is not None]
    out = dict(epochs=len(history), best_epoch=None, best_val_iou=None, min_val_loss_epoch=None,
               train_falling=None, val_rising=None, verdict="too short")
    if not hist:
        return out
    best = max(hist, key=lambda h: h["val_iou"])
    low = min(hist, key=lambda h: h["val_loss"])
    out.update(best_epoch=best["epoch"], best_val_iou=best["val_iou"], min_val_loss_epoch=low["epoch"])
    if len(hist) < 2 * window:
        return out
    train = np.array([h["train_loss"] for h in hist])
    val = np.array([h["val_loss"] for h in hist])
    train_falling = bool(train[-window:].mean() < 0.98 * train[-2 * window:-window].mean())
    val_rising = bool(val[-window:].mean() > 1.05 * val[:-window].min())
    val_falling = bool(val[-window:].mean() < 0.98 * val[-2 * window:-window].mean())
    if train_falling and val_rising:
        verdict = "overfitting"
    elif train_falling and val_falling:
        verdict = "underfitting"
    else:
        verdict = "converged"
    out.update(train_falling=train_falling, val_rising=val_rising, verdict=verdict)
    return out
