"""Seeded, deterministic train/validation split by image id."""

import numpy as np


def split_ids(ids, val_fraction=0.1, seed=0):
    """Split sample ids into training and validation ids.

    The split depends only on the set of ids, `val_fraction` and `seed` (ids are
    sorted first), so every notebook and command that uses the same arguments
    sees the same validation images.

    Parameters
    ----------
    ids : sequence of str
    val_fraction : float in [0, 1)
    seed : int

    Returns
    -------
    train_ids, val_ids : list of str, each sorted
    """
    ids = sorted(ids)
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_val = int(round(len(ids) * val_fraction))
    if val_fraction > 0 and len(ids) > 1:
        n_val = min(max(n_val, 1), len(ids) - 1)
    order = np.random.default_rng(seed).permutation(len(ids))
    val = sorted(ids[i] for i in order[:n_val])
    val_set = set(val)
    return [i for i in ids if i not in val_set], val
