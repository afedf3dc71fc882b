"""Checkpoints written atomically, and read back safely, with clear errors.

Two kinds of checkpoint live in a run folder:

* ``last.pt`` (``kind="resume"``): everything needed to continue training bit-exactly
  (weights, optimizer, gradient scaler, RNG states, history, config, split);
* ``best.pt`` (``kind="model"``): what notebooks 05 and 06, ``nucleiseg predict`` and
  ``evaluate`` read: the weights, the config, the split, the chosen post-processing
  (plus the epoch and the small history) and no optimizer state (:func:`model_state`). One may also carry
  ``members``, the weights of more runs of the same architecture and split, whose probability maps the
  predictor averages with its own (:func:`ensemble_state`, ``benchmarks/recipes.py ensemble``).

Every checkpoint is read with ``torch.load(..., weights_only=True)``: tensors and plain
Python data only. A ``.pt`` file that carries code (a pickle with a ``__reduce__``) is
refused with :class:`CheckpointError` before anything in it runs. RNG states are
therefore stored as tensors, lists and numbers (:func:`rng_state`).
"""

import json
import pickle
import random
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError
from ..fileio import atomic_write
from ..model import UNet

#: Entries of a model checkpoint (``best.pt``, the pretrained model); ``last.pt`` has these and more.
MODEL_KEYS = ("kind", "model", "model_config", "config", "split", "data", "postprocess", "epoch", "history",
              "members")


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


def model_state(state, half=False):
    """The model checkpoint of a training state: weights, configs, split, post-processing; no optimizer.

    Parameters
    ----------
    state : dict
        A ``last.pt``-style state.
    half : bool
        Store floating-point weights as float16 (half the size; the pretrained model).
    """
    out = {k: state[k] for k in MODEL_KEYS if k in state}
    out["kind"] = "model"
    if half:
        out["model"] = _half(state["model"])
        if "members" in out:
            out["members"] = [_half(m) for m in out["members"]]
    return out


def _half(weights):
    return {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}


def ensemble_state(states, paths=None):
    """One model checkpoint holding several trained models of one architecture and one split: an ensemble.

    The first state gives everything but the extra weights (config, split, post-processing, epoch); the others'
    weights go into ``members``. :class:`~nucleiseg_lib.inference.Predictor` averages the probability maps of all
    of them. Calibrate the result again: its maps are not the first model's.

    Parameters
    ----------
    states : list of dict
        Model checkpoints (:func:`load_checkpoint`), two or more.
    paths : list of str, optional
        Their files, named in errors.

    Returns
    -------
    dict, a model checkpoint with ``members`` (a list of state dicts)
    """
    paths = [str(p) for p in paths] if paths else [f"<member {i}>" for i in range(len(states))]
    if len(states) < 2:
        raise ValueError(f"an ensemble needs two or more checkpoints, got {len(states)}")
    first = states[0]
    for state, path in zip(states, paths):
        if state.get("members"):
            raise CheckpointError(path, "is an ensemble already: give its members one by one")
    for state, path in zip(states[1:], paths[1:]):
        for key, what in (("model_config", "another architecture"), ("split", "another split")):
            if state.get(key) != first.get(key):
                raise CheckpointError(path, f"{what} than {paths[0]}: an ensemble's members share both")
    out = model_state(first)
    out["members"] = [s["model"] for s in states[1:]]
    return out


def rng_state():
    """The torch, numpy and Python RNG states as tensors, lists and numbers (loadable with ``weights_only``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return dict(torch=torch.get_rng_state(),
                numpy=dict(kind=kind, keys=torch.from_numpy(keys.astype(np.int64)), pos=int(pos),
                           has_gauss=int(has_gauss), cached_gaussian=float(cached)),
                python=dict(version=version, internal=list(internal), gauss=gauss))


def set_rng_state(rng):
    """Restore what :func:`rng_state` stored (nothing when `rng` is empty)."""
    if not rng:
        return
    torch.set_rng_state(rng["torch"])
    n = rng["numpy"]
    if isinstance(n, dict):
        np.random.set_state((n["kind"], np.asarray(n["keys"], dtype=np.int64).astype(np.uint32), n["pos"],
                             n["has_gauss"], n["cached_gaussian"]))
    else:  # checkpoints written before RNG states became plain data
        np.random.set_state(n)
    p = rng["python"]
    if isinstance(p, dict):
        random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    else:
        random.setstate(p)


def _numpy_array_globals():
    """numpy's array-rebuilding functions: allowed so that checkpoints of earlier versions (numpy RNG state) load.

    They rebuild plain arrays and call nothing else; arbitrary callables stay refused.
    """
    names = []
    for mod in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            m = __import__(mod, fromlist=["_reconstruct"])
            names.append(m._reconstruct)
        except (ImportError, AttributeError):
            pass
    names += [np.ndarray, np.dtype]
    names += [type(np.dtype(t)) for t in ("uint32", "int64", "float64")]
    return names


def load_checkpoint(path, map_location="cpu"):
    """Read a checkpoint written by :func:`save_checkpoint`, with ``torch.load(..., weights_only=True)``.

    Raises
    ------
    CheckpointError
        When the file is missing, unreadable, carries Python objects other than tensors
        and plain data (a pickle that could run code: refused, nothing in it runs), or is
        not a nucleiseg checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "checkpoint file not found (train a model first: nucleiseg train ...)")
    try:
        with torch.serialization.safe_globals(_numpy_array_globals()):
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "GLOBAL" in text or "Unsupported global" in text:
            what = next((line.split("GLOBAL", 1)[1].split()[0] for line in text.splitlines() if "GLOBAL" in line),
                        "a Python object")
            raise CheckpointError(path, f"refused: it holds Python code or objects ({what}), not only tensors and "
                                        f"plain data, and loading it could run that code. nucleiseg checkpoints "
                                        f"never do; use a checkpoint from a source you trust, or retrain") from None
        raise CheckpointError(path, f"cannot be read as a checkpoint ({type(exc).__name__}: {exc})") from None
    except Exception as exc:  # torch raises many types for a corrupt file
        raise CheckpointError(path, f"cannot be read as a checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or "model" not in state or "model_config" not in state:
        raise CheckpointError(path, "is not a nucleiseg checkpoint (no 'model' and 'model_config' entries)")
    return state


def all_weights(state, path="<checkpoint>"):
    """The weights of a model checkpoint: its own, then its ensemble members' (:func:`ensemble_state`).

    Returns
    -------
    list of dict (state dicts); one for a single model
    """
    members = state.get("members") or []
    if not isinstance(members, list) or not all(isinstance(m, dict) for m in members):
        raise CheckpointError(path, "its 'members' entry is not a list of weight dicts")
    return [state["model"], *members]


def build_model(state, path="<checkpoint>", expect=None):
    """The U-Net a checkpoint describes, with its weights loaded (float32, also from float16 weights).

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
        model.load_state_dict(state["model"])  # copies into the float32 parameters (fp16 weights widen)
    except (TypeError, RuntimeError) as exc:
        raise CheckpointError(path, f"weights do not fit the U-Net {cfg}: {str(exc).splitlines()[0]}") from None
    return model.eval()
