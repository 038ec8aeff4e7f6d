"""Which torch device a name means on this machine, shared by training (`--device`) and the service
(`GVAE_DEVICE`): `auto` is CUDA when available, else the CPU; any other name must be a device this machine has,
or a ValueError says what to use instead (naming the option the user set).

    resolve_device("auto")                       # cuda on a GPU box, cpu elsewhere
    resolve_device("cuda:1", option="GVAE_DEVICE")
"""

from __future__ import annotations

import torch


def resolve_device(name: str, *, option: str = "--device") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    given = f"{option}={name!r}" if option.isupper() else f"{option} {name}"
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"{given} is not a device: use auto, cpu, cuda, cuda:<index> or mps") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{given} but CUDA is not available here: use auto or cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"{given} but only {torch.cuda.device_count()} CUDA device(s) exist")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{given} but MPS is not available here: use auto or cpu")
    return device


def describe_device(device: torch.device) -> str:
    """For logs: the GPU's name on CUDA, and says so when the CPU is used because there is no CUDA."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu" and not torch.cuda.is_available():
        return "cpu (CUDA not available)"
    return str(device)
