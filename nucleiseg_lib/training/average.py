"""A running average of a model's weights during training (Polyak / exponential moving average).

Weights averaged over the last few hundred steps lie in a wider, flatter part of the loss surface than the
last step's weights; on data from new domains that tends to transfer better (Izmailov et al. 2018, SWA;
Cha et al. 2021, SWAD). The trainer validates, keeps and ships the average; the optimizer steps on the raw
weights as before.
"""

import copy

import torch


class WeightAverage:
    """Exponential moving average of every floating-point entry of a model's ``state_dict``.

    After update ``n`` the average is ``a <- d a + (1 - d) w`` with ``d = min(decay, (1 + n) / (warmup + n))``:
    the warm-up keeps the random initial weights from lingering in the first epoch. Batch-normalisation
    statistics are averaged like the weights; integer buffers (``num_batches_tracked``) are copied.

    Parameters
    ----------
    model : torch.nn.Module
        The model being trained; the average starts as a copy of it (same device and memory format).
    decay : float
        In (0, 1). The warm-up caps it at ``(1 + n) / (warmup + n)``, which (warmup 10) reaches 0.995 only
        after 1,790 updates: in a shorter run every decay above the cap gives the same average
        (:func:`step_shares` says which steps it holds).
    warmup : float
        Greater than 1; the default 10 is the usual one (the cpu recipe's). Smaller lets `decay` act sooner
        (warmup 2: 0.998 after 498 updates), so the average reaches further back.

    Examples
    --------
    >>> average = WeightAverage(model, 0.995)                               # doctest: +SKIP
    >>> loss = trainer.train_step(model, opt, x, y); average.update(model)  # doctest: +SKIP
    >>> validate_model(average.model, val_ds, device, config)               # doctest: +SKIP
    """

    def __init__(self, model, decay, warmup=10.0):
        if not 0.0 < float(decay) < 1.0:
            raise ValueError(f"decay={decay!r} is not between 0 and 1")
        if not float(warmup) > 1.0:
            raise ValueError(f"warmup={warmup!r} is not greater than 1")
        self.decay, self.warmup, self.updates = float(decay), float(warmup), 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model):
        """Move the average towards `model`'s current weights (call after each optimizer step)."""
        self.updates += 1
        d = float(capped_decay(self.decay, self.updates, self.warmup))
        mine, theirs = self.model.state_dict(), model.state_dict()
        if mine.keys() != theirs.keys():
            raise ValueError("the model has other weights than the one the average started from")
        floats = [k for k, v in mine.items() if v.is_floating_point()]
        torch._foreach_lerp_([mine[k] for k in floats], [theirs[k].detach() for k in floats], 1.0 - d)
        for k, v in mine.items():
            if not v.is_floating_point():
                v.copy_(theirs[k])

    def state_dict(self):
        """``{"model": averaged state_dict, "updates": n, "decay": d, "warmup": w}`` (tensors and numbers only)."""
        return dict(model=self.model.state_dict(), updates=self.updates, decay=self.decay, warmup=self.warmup)

    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` returned (a resumed run goes on averaging exactly)."""
        self.model.load_state_dict(state["model"])
        self.updates, self.decay = int(state["updates"]), float(state["decay"])
        self.warmup = float(state.get("warmup", 10.0))   # checkpoints from before the setting: the old warm-up


def capped_decay(decay, n, warmup=10.0):
    """The decay of update `n` (1 for the first): ``min(decay, (1 + n) / (warmup + n))``; `n` may be an array."""
    import numpy as np
    return np.minimum(float(decay), (1 + np.asarray(n, np.float64)) / (float(warmup) + np.asarray(n, np.float64)))


def step_shares(decay, steps, warmup=10.0):
    """The share of each step's weights in a :class:`WeightAverage` after `steps` updates.

    Parameters
    ----------
    decay : float
    steps : int
    warmup : float
        As :class:`WeightAverage`'s.

    Returns
    -------
    ndarray, shape (steps,), float64
        Element ``k``: the weight of the network after update ``k`` in the final average; with the
        initial weights' share (``prod(d)``, negligible after the first epoch) they sum to 1.
    """
    import numpy as np
    d = capped_decay(decay, np.arange(1, steps + 1), warmup)   # the decays WeightAverage.update uses
    after = np.append(np.cumprod(d[::-1])[::-1][1:], 1.0)   # product of the decays of the later updates
    return (1 - d) * after
