"""Checkpoints written atomically, and read back with clear errors."""

import json
from pathlib import Path

import torch

from ..errors import CheckpointError
from ..fileio import atomic_write
from ..model import UNet


def _atomic_write(path, write):
    with atomic_write(path, "wb", fsync=True) as f:
        write(f)


def save_checkpoint(state, path):
    """Save a checkpoint dict: temporary file in the same folder, fsync, rename.

    A crash at any moment leaves either the old file or the new one, never half a file.
    """
    _atomic_write(path, lambda f: torch.save(state, f))


def save_json(obj, path):
    """Write JSON atomically (same guarantee as :func:`save_checkpoint`)."""
    _atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2).encode()))


def load_checkpoint(path, map_location="cpu"):
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises
    ------
    CheckpointError
        When the file is missing, unreadable, or not a nucleiseg checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "checkpoint file not found (train a model first: nucleiseg train ...)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # torch raises many types for a corrupt file
        raise CheckpointError(path, f"cannot be read as a checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or "model" not in state or "model_config" not in state:
        raise CheckpointError(path, "is not a nucleiseg checkpoint (no 'model' and 'model_config' entries)")
    return state


def build_model(state, path="<checkpoint>", expect=None):
    """The U-Net a checkpoint describes, with its weights loaded.

    Parameters
    ----------
    state : dict
        From :func:`load_checkpoint`.
    path : str
        Named in errors.
    expect : dict, optional
        Model settings (``base``, ``batch_norm``, ...) the caller requires; a
        mismatch raises :class:`CheckpointError`.

    Returns
    -------
    UNet, in eval mode
    """
    cfg = state["model_config"]
    if expect:
        diff = {k: (cfg.get(k), v) for k, v in expect.items() if cfg.get(k) != v}
        if diff:
            what = ", ".join(f"{k}={a} in the checkpoint but {b} requested" for k, (a, b) in diff.items())
            raise CheckpointError(path, f"another architecture: {what}")
    try:
        model = UNet(**cfg)
        model.load_state_dict(state["model"])
    except (TypeError, RuntimeError) as exc:
        raise CheckpointError(path, f"weights do not fit the U-Net {cfg}: {str(exc).splitlines()[0]}") from None
    return model.eval()
