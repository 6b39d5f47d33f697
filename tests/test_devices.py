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


@pytest.mark.parametrize("capability, onednn_cap", [("AVX2", None), ("DEFAULT", None), ("AVX512", "AVX2"),
                                                    ("AVX512", "avx512_core")])
def test_kernels_capped_below_bf16_count_as_no_bf16(monkeypatch, capability, onednn_cap):
    # A fast CPU restricted to AVX2 kernels would emulate bf16 (several times slower than fp32): fp32 there.
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    if onednn_cap is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", onednn_cap)
    assert not devices.cpu_has_native_bf16()
    assert autocast_dtype(get_config("quick", amp="auto"), torch.device("cpu")) is None


@pytest.mark.parametrize("onednn_cap", [None, "AVX512_CORE_BF16", "AVX512_CORE_AMX", "ALL"])
def test_uncapped_bf16_cpu_keeps_bf16(monkeypatch, onednn_cap):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    if onednn_cap is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", onednn_cap)
    assert devices.cpu_has_native_bf16()
