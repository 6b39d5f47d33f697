"""Devices (nclkit.engine.devices): autocast follows the CPU's bf16 support; a missing GPU is one clear error;
CPU runs leave out the cores other processes keep busy."""
import os

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


@pytest.mark.parametrize("capability, onednn_cap, native", [
    ("AVX2", None, False), ("DEFAULT", None, False), ("AVX512", "AVX2", False), ("AVX512", "avx512_core", False),
    ("AVX512", None, True), ("AVX512", "AVX512_CORE_BF16", True), ("AVX512", "AVX512_CORE_AMX", True),
    ("AVX512", "ALL", True),
])
def test_bf16_needs_kernels_that_use_it(monkeypatch, capability, onednn_cap, native):
    # On a CPU with AVX512-BF16, kernels capped below it (a fast CPU standing in for an AVX2 one) would
    # emulate bf16, several times slower than fp32: such a machine trains in fp32. Uncapped, it keeps bf16.
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    if onednn_cap is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", onednn_cap)
    assert devices.cpu_has_native_bf16() is native
    assert autocast_dtype(get_config("quick", amp="auto"), torch.device("cpu")) == (torch.bfloat16 if native else None)


@pytest.mark.parametrize("capability, expected", [((7, 5), torch.float16), ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)])
def test_gpu_precision_follows_the_compute_capability(capability, expected, monkeypatch):
    from nclkit.engine.devices import cuda_has_native_bf16, inference_dtype

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # what a T4 says (emulation)
    gpu = torch.device("cuda")
    assert cuda_has_native_bf16(gpu) == (expected == torch.bfloat16)
    assert autocast_dtype(get_config("paper", amp="auto"), gpu) == expected  # training
    assert inference_dtype(gpu) == expected  # prediction
    assert autocast_dtype(get_config("paper", amp="bf16"), gpu) == torch.bfloat16  # asked for: always
    assert autocast_dtype(get_config("paper", amp="fp32"), gpu) is None
    assert inference_dtype("cpu") is None


@pytest.mark.parametrize("busy, expected", [(0.2, 2), (0.6, 1), (1.0, 1), (2.0, 1), (None, 2)])
def test_cpu_threads_leave_out_the_cores_others_keep_busy(busy, expected, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(devices.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(devices.torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(devices, "busy_cores", lambda: busy)
    assert devices.cpu_threads() == expected
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the user's choice is kept, however busy the machine
    assert devices.cpu_threads() == 2


def test_busy_cores_is_a_share_of_the_machine():
    from nclkit.engine.devices import busy_cores

    busy = busy_cores(0.05)
    assert busy is None or 0.0 <= busy <= (os.cpu_count() or 1) + 1e-6
