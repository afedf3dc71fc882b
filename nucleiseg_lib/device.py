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


def cpu_has_fast_bf16():
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX); without it bf16 is emulated and slow."""
    cpu = getattr(torch, "cpu", None)
    return any(getattr(cpu, name, lambda: False)() for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def resolve_amp(device, amp):
    """The autocast dtype of a mixed-precision setting: None (full precision), float16 or bfloat16.

    Parameters
    ----------
    device : torch.device
    amp : {"off", "auto", "bf16", "fp16"}
        "auto": float16 on CUDA; bfloat16 on a CPU only where it is native (elsewhere
        it is emulated and slower than fp32: ``python benchmarks/speed.py`` times both),
        else full precision.

    Returns
    -------
    torch.dtype or None
    """
    if amp == "off":
        return None
    if amp == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if device.type == "cpu" and cpu_has_fast_bf16() else None
    return torch.bfloat16 if amp == "bf16" else torch.float16


def precision_name(device, amp):
    """The precision a mixed-precision setting computes in on `device`, as a word: "bfloat16", "float16" or "float32".

    What benchmark records say (:func:`resolve_amp` gives the dtype).
    """
    dtype = resolve_amp(device, amp)
    return str(dtype).replace("torch.", "") if dtype else "float32"


def autocast_for(device, amp):
    """The ``torch.autocast`` context of a mixed-precision setting (see :func:`resolve_amp`).

    Returns
    -------
    torch.autocast
    """
    dtype = resolve_amp(device, amp)
    if dtype is None:
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=dtype)
