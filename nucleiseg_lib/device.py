"""The one place where a device name (or "auto") becomes a ``torch.device``."""

import torch


def pick_device(device=None):
    """The device asked for, else CUDA when present, else the CPU.

    Parameters
    ----------
    device : str or torch.device or None
        None, "" or "auto": CUDA when available, else "cpu"; anything else is passed
        to ``torch.device`` ("cpu", "cuda", "cuda:1", "mps", ...).

    Returns
    -------
    torch.device
    """
    if device and str(device) != "auto":
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast_for(device, amp):
    """The ``torch.autocast`` context of a mixed-precision setting.

    Parameters
    ----------
    device : torch.device
    amp : {"off", "auto", "bf16", "fp16"}
        "auto": float16 on CUDA, off elsewhere.

    Returns
    -------
    torch.autocast
    """
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return torch.autocast(device.type, enabled=False)
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)
