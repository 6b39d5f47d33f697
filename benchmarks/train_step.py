"""Training-step throughput and peak memory: an fp32 reference vs nclkit's base, pivot and full NCL.

    python benchmarks/train_step.py [--preset quick|paper] [--batch N] [--size PX] [--steps N]
        [--rounds R] [--warmup N] [--seconds S] [--device D] [--compile] [--out FILE.json]

One full step = forward, loss, backward, optimiser step, on random images whose masks hold a few
tampered ellipses (so contour patches exist, paper §3.2). Configurations:

- reference_fp32: the same nclkit network with plain BCE, no AMP, no channels_last, plain SGD
  (neither fused nor foreach): the baseline every speed-up is measured against.
- base, pivot, full: Table 5's variants exactly as nclkit.engine.trainer trains them: the same
  `build_training` and `train_one_epoch` (autocast bf16, fp16 + GradScaler without bf16, fused SGD on
  CUDA; foreach SGD on the CPU with bf16 autocast where the CPU has native bf16, fp32 elsewhere;
  channels_last where the preset says so, as both presets do), over one resident batch.

Timing windows are interleaved round-robin (the order rotates every round) and the median per-step
time over rounds is reported, so machine noise hits every configuration alike; CUDA is
synchronised only at window edges. Peak memory is measured afterwards, one step per configuration:
its own persistent state (weights, grads, optimiser state, inputs) plus the transient peak of the
step (CUDA max_memory_allocated; on the CPU the growth of the resident set, approximate).
Prints a table, then ONE JSON line (also written to --out).
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from nclkit.engine.devices import device_name, pick_device, precision_name
from nclkit.engine.trainer import build_training, train_one_epoch
from nclkit.presets import Config, get_config

__all__ = ["CONFIGS", "Setup", "make_batch", "build_setups", "time_interleaved", "peak_memory", "profile_steps", "main"]

CONFIGS = ("reference_fp32", "base", "pivot", "full")
GIB = 1024 ** 3
GPU_TARGETS = {"ratio_full_vs_reference_min": 1.5, "overhead_full_vs_base_max": 1.10, "peak_gib_full_max": 8.0}
CPU_TARGETS = {"overhead_full_vs_base_max": 1.15}


@dataclass
class Setup:
    """One configuration ready to step: `step()` runs a full training step on resident inputs."""

    name: str
    step: Callable[[], None]
    tensors: Callable[[], list[torch.Tensor]]  # its persistent state, for the memory accounting


def make_batch(batch: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Normalised-looking random images and masks of 1-3 tampered ellipses each.

    Shape: -> image (B, 3, S, S) float32, mask (B, 1, S, S) float32 in {0, 1}, valid (B, 1, S, S) ones.
    """
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(batch, 3, size, size, generator=g)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")  # (S, S) each
    mask = torch.zeros(batch, 1, size, size)
    for b in range(batch):
        for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
            cy, cx = (0.15 + 0.7 * torch.rand(2, generator=g)) * size
            ry, rx = (0.08 + 0.17 * torch.rand(2, generator=g)) * size
            mask[b, 0][((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0] = 1.0
    return image, mask, torch.ones_like(mask)


def _reference(cfg: Config, device: torch.device, data) -> Setup:
    torch.manual_seed(cfg.seed)
    plain = cfg.replace(variant="base", channels_last=False, amp="fp32")
    t = build_training(plain, device, total_steps=10**6, fast=False)
    model, opt, sched = t.model.train(), t.optimizer, t.scheduler
    image, mask, _ = (x.to(device) for x in data)

    def step() -> None:
        loss = F.binary_cross_entropy_with_logits(model(image).logits, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()

    return Setup("reference_fp32", step, lambda: _state_tensors(model, opt, (image, mask)))


def _nclkit(cfg: Config, variant: str, device: torch.device, data, compile_model: bool) -> Setup:
    """The trainer's own build_training and train_one_epoch (single process), one batch per call."""
    cfg = cfg.replace(variant=variant)
    torch.manual_seed(cfg.seed)
    t = build_training(cfg, device, total_steps=10**6)
    forward = torch.compile(t.loss) if compile_model else t.loss
    forward.train()
    image, mask, valid = (x.to(device) for x in data)
    if cfg.channels_last:  # resident in the layout the step wants, so it costs no copy per step
        image = image.contiguous(memory_format=torch.channels_last)
    batch = [{"image": image, "mask": mask, "valid": valid}]  # a one-batch "loader"

    def step() -> None:
        train_one_epoch(t, forward, batch)

    return Setup(variant, step, lambda: _state_tensors(t.model, t.optimizer, tuple(batch[0].values())))


def _state_tensors(model: nn.Module, opt: torch.optim.Optimizer, inputs) -> list[torch.Tensor]:
    out = list(model.parameters()) + list(model.buffers()) + list(inputs)
    out += [p.grad for p in model.parameters() if p.grad is not None]
    out += [v for s in opt.state.values() for v in s.values() if torch.is_tensor(v)]
    return out


def build_setups(
    cfg: Config,
    device: torch.device,
    batch: int,
    compile_model: bool = False,
    variants: tuple[str, ...] = CONFIGS[1:],
) -> list[Setup]:
    """reference_fp32 and the nclkit `variants`, each with its own model (same seed) and the same batch."""
    data = make_batch(batch, cfg.crop_size, cfg.seed)
    return [_reference(cfg, device, data)] + [_nclkit(cfg, v, device, data, compile_model) for v in variants]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _window(setup: Setup, steps: int, device: torch.device) -> float:
    """Seconds per step over `steps` consecutive steps; the only place that synchronises."""
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        setup.step()
    _sync(device)
    return (time.perf_counter() - t0) / steps


def time_interleaved(setups: list[Setup], steps: int, rounds: int, device: torch.device) -> dict[str, list[float]]:
    """Per-step seconds of each setup in each round; `steps` timed steps per setup, split over the rounds."""
    sizes = [steps // rounds + (r < steps % rounds) for r in range(rounds)]  # near-equal windows
    times: dict[str, list[float]] = {s.name: [] for s in setups}
    for r, n in enumerate(sizes):
        order = setups[r % len(setups):] + setups[: r % len(setups)]  # rotate: no fixed position
        for s in order:
            times[s.name].append(_window(s, n, device))
    return times


def _libc_trim() -> None:
    try:  # glibc only: hand freed heap pages back so the resident set shows this step's growth
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise ValueError(f"/proc/self/status has no {key} line")


def peak_memory(setup: Setup, device: torch.device) -> float | None:
    """GiB: the setup's persistent state plus the transient peak of one step; None if unmeasurable."""
    own = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in setup.tensors()}
    own_bytes = sum(own.values())
    gc.collect()
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        setup.step()
        _sync(device)
        return (torch.cuda.max_memory_allocated(device) - start + own_bytes) / GIB
    if platform.system() != "Linux":
        return None
    _libc_trim()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current VmRSS
    except OSError:
        return None
    start = _status_kib("VmRSS")
    setup.step()
    return ((_status_kib("VmHWM") - start) * 1024 + own_bytes) / GIB


def profile_steps(setups: list[Setup], names: tuple[str, ...], steps: int, device: torch.device, path: Path) -> None:
    """torch.profiler tables (ops by self time) of `steps` steps of each named setup, into one text file."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    sections = []
    for s in (s for s in setups if s.name in names):
        if cuda:  # every hidden host-device synchronisation in the step warns, with its source line
            torch.cuda.set_sync_debug_mode("warn")
        with profile(activities=activities) as prof:
            for _ in range(steps):
                s.step()
            _sync(device)
        if cuda:
            torch.cuda.set_sync_debug_mode("default")
        for key in (["self_device_time_total"] if cuda else []) + ["self_cpu_time_total"]:
            table = prof.key_averages().table(sort_by=key, row_limit=35)
            sections.append(f"=== {s.name}: {steps} steps, sorted by {key} ===\n{table}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(sections) + "\n")


def _auto_steps(setups: list[Setup], warmup: int, seconds: float, device: torch.device) -> int:
    """Warm every setup up (at least one step); return how many timed steps per setup fit in `seconds`."""
    per_step = 0.0
    for s in setups:
        for _ in range(max(warmup - 1, 0)):
            s.step()
        per_step += _window(s, 1, device)  # the last warm-up step is the estimate
    return max(3, int(seconds / max(per_step, 1e-6)))


def _targets(device: torch.device, res: dict[str, Any]) -> tuple[dict[str, float], dict[str, bool | None]]:
    if device.type == "cuda":
        peak = res["peak_gib"]["full"]
        return GPU_TARGETS, {
            "ratio_full_vs_reference": res["ratio_full_vs_reference"] >= GPU_TARGETS["ratio_full_vs_reference_min"],
            "overhead_full_vs_base": res["overhead_full_vs_base"] <= GPU_TARGETS["overhead_full_vs_base_max"],
            "peak_gib_full": None if peak is None else peak <= GPU_TARGETS["peak_gib_full_max"],
        }
    return CPU_TARGETS, {"overhead_full_vs_base": res["overhead_full_vs_base"] <= CPU_TARGETS["overhead_full_vs_base_max"]}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=("quick", "paper"), default=None, help="default: paper on CUDA, quick on CPU")
    p.add_argument("--batch", type=int, default=None, help="default: the preset's batch size")
    p.add_argument("--size", type=int, default=None, help="crop side in px; default: the preset's crop")
    p.add_argument("--steps", type=int, default=None, help="timed steps per config; default: fill --seconds")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds; default: min(steps, 10)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per config first")
    p.add_argument("--seconds", type=float, default=75.0, help="time budget of the timed part when --steps is absent")
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--compile", action="store_true", help="torch.compile the LossModel, as the trainer does with cfg.compile (reference stays eager)")
    p.add_argument("--skip-pivot", action="store_true", help="leave the pivot variant out (saves a compile)")
    p.add_argument("--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark = True")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads on the CPU")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON result there")
    p.add_argument("--profile", type=Path, default=None, help="after timing, write profiler tables of base and full there")
    return p


def _check_args(args: argparse.Namespace) -> None:
    for name in ("batch", "size", "steps", "rounds", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name}={value}; expected >= 1")
    if args.warmup < 0 or args.seconds <= 0:
        raise ValueError(f"--warmup={args.warmup}, --seconds={args.seconds}; expected >= 0 and > 0")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; prints the table and the JSON line and returns the JSON dict."""
    args = _parser().parse_args(argv)
    _check_args(args)
    t_start = time.perf_counter()
    device = pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    preset = args.preset or ("paper" if device.type == "cuda" else "quick")
    cfg = get_config(preset, **({"crop_size": args.size} if args.size else {}))
    batch = args.batch or cfg.batch_size

    variants = ("base", "full") if args.skip_pivot else CONFIGS[1:]
    setups = build_setups(cfg, device, batch, args.compile, variants)
    steps = args.steps or _auto_steps(setups, args.warmup, args.seconds, device)
    if args.steps:
        for s in setups:
            for _ in range(args.warmup):
                s.step()
    rounds = min(args.rounds or 10, steps)
    times = time_interleaved(setups, steps, rounds, device)
    peaks = {s.name: peak_memory(s, device) for s in setups}
    if args.profile:
        profile_steps(setups, ("base", "full"), 3, device, args.profile)

    step_s = {k: statistics.median(v) for k, v in times.items()}
    res: dict[str, Any] = {
        "benchmark": "train_step", "preset": preset, "batch": batch, "size": cfg.crop_size,
        "device": str(device), "device_name": device_name(device),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "compile": args.compile,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "tf32_conv": torch.backends.cudnn.allow_tf32, "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "amp": precision_name(cfg, device),
        "warmup": args.warmup, "steps_per_config": steps, "rounds": rounds,
        "img_per_s": {k: round(batch / v, 3) for k, v in step_s.items()},
        "step_ms": {k: round(1e3 * v, 3) for k, v in step_s.items()},
        "step_ms_spread": {k: round(1e3 * (max(v) - min(v)), 3) for k, v in times.items()},  # max - min over rounds
        "peak_gib": {k: None if v is None else round(v, 4) for k, v in peaks.items()},
        "peak_source": "cuda_max_memory_allocated" if device.type == "cuda" else "rss_growth_approx",
        "ratio_full_vs_reference": round(step_s["reference_fp32"] / step_s["full"], 4),
        "overhead_full_vs_base": round(step_s["full"] / step_s["base"], 4),
        "overhead_pivot_vs_base": round(step_s["pivot"] / step_s["base"], 4) if "pivot" in step_s else None,
    }
    res["targets"], res["pass"] = _targets(device, res)
    res["total_s"] = round(time.perf_counter() - t_start, 1)
    _print_table(res)
    line = json.dumps(res)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(line + "\n")
    print(line)
    return res


def _print_table(res: dict[str, Any]) -> None:
    print(f"train step | preset {res['preset']} | batch {res['batch']} x {res['size']} px | {res['device_name']} "
          f"| torch {res['torch']} | {res['steps_per_config']} steps/config in {res['rounds']} rounds")
    print(f"{'config':<16}{'img/s':>10}{'step ms':>11}{'spread ms':>11}{'peak GiB':>10}")
    for k in res["step_ms"]:
        peak = res["peak_gib"][k]
        print(f"{k:<16}{res['img_per_s'][k]:>10.2f}{res['step_ms'][k]:>11.2f}{res['step_ms_spread'][k]:>11.2f}"
              f"{'n/a' if peak is None else f'{peak:.3f}':>10}")
    print(f"full vs reference: x{res['ratio_full_vs_reference']:.3f} img/s | full / base step time: "
          f"{res['overhead_full_vs_base']:.3f} | targets {res['targets']} | pass {res['pass']}")


if __name__ == "__main__":
    main()
