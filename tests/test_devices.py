"""Devices (nclkit.engine.devices): autocast follows the CPU's bf16 support; a missing GPU is one clear error."""
import pytest
import torch

from nclkit.engine import devices
from nclkit.engine.devices import autocast_dtype, pick_device
from nclkit.presets import get_config


def test_cuda_without_a_gpu_is_one_line():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        pick_device("cuda")


@pytest.mark.parametrize("native", [True, False])
def test_cpu_autocast_follows_native_bf16(monkeypatch, native):
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: native)
    cpu = torch.device("cpu")
    assert autocast_dtype(get_config("quick", amp="auto"), cpu) == (torch.bfloat16 if native else None)
    assert autocast_dtype(get_config("quick", amp="bf16"), cpu) == torch.bfloat16  # asked for: always
    assert autocast_dtype(get_config("quick", amp="fp16"), cpu) is None  # CPU fp16 autocast: never
    assert autocast_dtype(get_config("quick", amp="fp32"), cpu) is None
