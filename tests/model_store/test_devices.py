"""Device names, for training's --device and the service's GVAE_DEVICE alike: auto picks what the machine has,
anything else must exist here, and a wrong name is refused with what to use instead."""

from __future__ import annotations

import pytest
import torch

from model_store.devices import describe_device, resolve_device


def test_auto_is_cuda_when_available_else_the_cpu() -> None:
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize(("option", "shown"), [("--device", "--device tpu:7"), ("GVAE_DEVICE", "GVAE_DEVICE='tpu:7'")])
def test_a_name_that_is_no_device_is_refused_naming_the_option(option: str, shown: str) -> None:
    with pytest.raises(ValueError, match="is not a device: use auto, cpu, cuda") as refused:
        resolve_device("tpu:7", option=option)
    assert str(refused.value).startswith(shown)


def test_a_gpu_this_machine_lacks_is_refused() -> None:
    missing = "cuda" if not torch.cuda.is_available() else f"cuda:{torch.cuda.device_count()}"
    with pytest.raises(ValueError, match="CUDA is not available|CUDA device"):
        resolve_device(missing, option="GVAE_DEVICE")


@pytest.mark.skipif(torch.cuda.is_available(), reason="says why the CPU is used only where there is no CUDA")
def test_the_log_says_why_the_cpu_is_used() -> None:
    assert describe_device(torch.device("cpu")) == "cpu (CUDA not available)"
