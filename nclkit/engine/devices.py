"""Where a run computes and how: the device, its name for reports, the autocast precision, and how
many CPU threads a run should use.

bf16 autocast on GPUs (fp16 with a gradient scaler where bf16 is missing); on a CPU bf16 autocast
where it has native bf16 instructions (elsewhere bf16 is emulated and slower), fp32 otherwise.

CPU threads: PyTorch splits every operation into one share per thread and waits for the last share.
When another process keeps a core busy, the share on that core waits for its turn at every one of
the thousands of operations of a step, and the whole step with it: training slows many times over,
far below what one thread alone runs at. `cpu_threads` leaves the busy cores out.
"""
from __future__ import annotations

import math
import os
import platform
import time
from pathlib import Path

import torch

from ..presets import Config

__all__ = ["pick_device", "device_name", "cpu_has_native_bf16", "cuda_has_native_bf16", "autocast_dtype",
           "inference_dtype", "precision_name", "cpu_threads", "busy_cores"]


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The requested device, else CUDA when present, else the CPU.

    Raises ValueError for a name that is not a device or a device this machine does not have.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {device!r} is not a device name; expected cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ValueError(f"device {device!r}: this machine has no CUDA GPU that PyTorch can use; use cpu")
        if dev.index is not None and dev.index >= n:
            raise ValueError(f"device {device!r}: this machine has {n} CUDA GPU(s), cuda:0 to cuda:{n - 1}")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r}: MPS is not available on this machine; use cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {device!r}: nclkit runs on cpu, cuda or mps")
    return dev


def device_name(device: str | torch.device) -> str:
    """The GPU's name, or the CPU's model with the ISA that decides its speed, for every recorded figure."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type != "cpu":
        return str(device)
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("", platform.machine()):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:  # no /proc (macOS, Windows): the platform's word is all there is
        pass
    isa = [name for name, flag in (("AVX2", "avx2"), ("AVX-512", "avx512f"), ("AVX512-BF16", "avx512_bf16"),
                                   ("AMX", "amx_tile")) if flag in flags]
    # ONEDNN_MAX_CPU_ISA caps the convolutions' instruction set (with ATEN_CPU_CAPABILITY, how a faster
    # CPU stands in for an AVX2-only one): a figure measured so must say it.
    capped = os.environ.get("ONEDNN_MAX_CPU_ISA")
    return (f"CPU {model}, {torch.get_num_threads()} threads, ISA {'/'.join(isa) or 'unknown'}, "
            f"torch kernels {torch.backends.cpu.get_cpu_capability()}"
            + (f", oneDNN capped at {capped}" if capped else ""))


# oneDNN instruction-set caps (ONEDNN_MAX_CPU_ISA) below which its kernels have no bf16 arithmetic.
_ONEDNN_WITHOUT_BF16 = {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI"}


def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bf16 in hardware (AVX512-BF16 or AMX) and the kernels may use it;
    there bf16 autocast trains the quick preset about 1.4x faster than fp32 (benchmarks/train_step.py),
    elsewhere it is slower.

    Kernels capped below AVX-512 (ATEN_CPU_CAPABILITY=avx2, ONEDNN_MAX_CPU_ISA=AVX2: a fast CPU standing
    in for an AVX2-only one) emulate bf16: an epoch of the course's quick run took 66 s instead of 9 s
    in fp32. Such a machine counts as one without bf16, as the CPU it stands in for is.
    """
    if torch.backends.cpu.get_cpu_capability() in ("DEFAULT", "AVX2"):
        return False
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() in _ONEDNN_WITHOUT_BF16:
        return False
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private but stable since torch 2.3
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def cuda_has_native_bf16(device: str | torch.device | None = None) -> bool:
    """True on GPUs of compute capability 8.0 or newer (Ampere on), which compute bf16 in hardware.

    `torch.cuda.is_bf16_supported()` also answers True on older GPUs (a Colab T4 is sm_75), where bf16
    is emulated and slower than fp16 with a gradient scaler; the capability decides here.
    """
    return tuple(torch.cuda.get_device_capability(device)) >= (8, 0)


def inference_dtype(device: str | torch.device) -> torch.dtype | None:
    """The autocast dtype of a forward pass without gradients: bf16 on a GPU that has it, fp16 on an
    older GPU, None (fp32) on a CPU or another device."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return torch.bfloat16 if cuda_has_native_bf16(device) else torch.float16


def autocast_dtype(cfg: Config, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a training step; None means fp32.

    CUDA: bf16 where the GPU has it in hardware (compute capability >= 8.0), fp16 (with a scaler)
    otherwise. CPU: bf16 for `amp="bf16"`, or for `amp="auto"` where the CPU has native bf16; never fp16
    (few CPUs compute it natively).
    """
    if cfg.amp == "fp32":
        return None
    if device.type == "cpu":
        native = cfg.amp == "auto" and cpu_has_native_bf16()
        return torch.bfloat16 if cfg.amp == "bf16" or native else None
    if device.type != "cuda":
        return None
    if cfg.amp == "bf16" or (cfg.amp == "auto" and cuda_has_native_bf16(device)):
        return torch.bfloat16
    return torch.float16


def precision_name(cfg: Config, device: torch.device) -> str:
    """How a training step of `cfg` computes on `device`, for reports: "bfloat16", "float16" or "fp32"."""
    return str(autocast_dtype(cfg, device) or "fp32").replace("torch.", "")


def busy_cores(seconds: float = 0.5) -> float | None:
    """How many cores other processes keep busy, measured over `seconds` while this one sleeps
    (/proc/stat); on a system without it, the 1-minute load average; None where neither exists."""
    def busy_and_total() -> tuple[int, int]:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]  # user .. steal
        return sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # idle and iowait are not busy

    try:
        busy0, total0 = busy_and_total()
        time.sleep(seconds)
        busy1, total1 = busy_and_total()
    except (OSError, ValueError, IndexError):
        try:
            return os.getloadavg()[0]
        except (OSError, AttributeError):  # Windows
            return None
    return (busy1 - busy0) / max(total1 - total0, 1) * (os.cpu_count() or 1)


def cpu_threads() -> int:
    """The thread count a CPU run should use: torch's own (one per core, or OMP_NUM_THREADS where it is
    set), less one per core that other processes keep busy (see the module docstring), at least 1.

    A core counts as busy when other processes use at least half of it. The count changes a run's
    arithmetic in its last bits, so a resumed run keeps the count it started with (nclkit.cli).
    """
    own = torch.get_num_threads()
    if os.environ.get("OMP_NUM_THREADS"):
        return own  # chosen by the user
    others = busy_cores()
    return own if others is None else max(1, min(own, (os.cpu_count() or own) - math.floor(others + 0.5)))
