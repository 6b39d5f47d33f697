"""Training throughput beside a competing process: the trainer's own steps idle, then next to one
single-threaded CPU-burning process that this script starts, and the ratio of the two.

    python benchmarks/train_under_load.py [--preset real|quick|paper] [--steps N] [--warmup N]
        [--batch N] [--size PX] [--threads N] [--nice N] [--rounds R] [--out FILE.json]

The competitor is `while True: pass` in a new session (as a program started from another terminal
or by the desktop: on Linux, a session of its own is a scheduling group of its own, so `--nice`
lowers it only within that group) at nice `--nice` (19 by default). Every step is the trainer's
(`build_training` + `train_one_epoch`) on one resident batch of random images with rectangular
forgeries, so data loading is not timed. Idle and loaded windows alternate for `--rounds` rounds;
the median of each is reported, so a machine that is busy anyway hits both alike.

Each window starts as `nclkit train` starts: with the thread count `nclkit.engine.devices.cpu_threads`
chooses then (one per core, less the cores other processes keep busy), unless `--threads` or
OMP_NUM_THREADS fixes it; `OMP_NUM_THREADS=<cores>` times torch's own default, one thread per core
whatever the load. Prints a summary, then ONE JSON line (also written to --out).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from nclkit.engine.devices import cpu_threads, device_name
from nclkit.engine.trainer import build_training, train_one_epoch
from nclkit.presets import PRESETS, get_config

__all__ = ["make_batch", "start_competitor", "time_steps", "main"]

# The variables that decide how many OpenMP threads run and how they wait, reported with every figure.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


def make_batch(batch: int, size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random normalised images, each with one tampered rectangle (so NCL has every patch kind).

    Shape: -> image (B, 3, S, S), mask (B, 1, S, S) in {0, 1}, valid (B, 1, S, S) ones.
    """
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(batch, 1, size, size)
    for b in range(batch):
        y, x = (torch.randint(0, size // 2, (2,), generator=g)).tolist()
        h, w = (torch.randint(size // 8, size // 2, (2,), generator=g)).tolist()
        mask[b, 0, y:y + h, x:x + w] = 1.0
    return {"image": torch.randn(batch, 3, size, size, generator=g), "mask": mask, "valid": torch.ones_like(mask)}


def start_competitor(nice: int) -> subprocess.Popen:
    """One single-threaded Python process that burns a core until killed, in a session of its own."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True,
                            preexec_fn=(lambda: os.nice(nice)) if nice else None)


# torch's own thread count at start: cpu_threads() takes the current count as its ceiling, so every window
# starts from this one, as a fresh `nclkit train` process would (not from the previous window's choice).
STARTING_THREADS = torch.get_num_threads()


def time_steps(training, batch: dict[str, torch.Tensor], steps: int, threads: int | None = None) -> float:
    """Seconds per step over `steps` training steps of the trainer's loop, with `threads` (None: cpu_threads())."""
    torch.set_num_threads(STARTING_THREADS)
    torch.set_num_threads(threads or cpu_threads())
    t0 = time.perf_counter()
    train_one_epoch(training, training.loss, [batch] * steps)
    return (time.perf_counter() - t0) / steps


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="real", choices=sorted(PRESETS))
    p.add_argument("--steps", type=int, default=6, help="timed steps per window (default 6)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    p.add_argument("--rounds", type=int, default=2, help="idle + loaded windows, alternating (default 2)")
    p.add_argument("--batch", type=int, help="default: the preset's")
    p.add_argument("--size", type=int, help="crop side in px (default: the preset's)")
    p.add_argument("--threads", type=int, help="torch threads (default: as `nclkit train` chooses them)")
    p.add_argument("--nice", type=int, default=19, help="the competitor's niceness (default 19)")
    p.add_argument("--out", help="also write the JSON line here")
    args = p.parse_args(argv)
    for name in ("steps", "warmup", "rounds", "batch", "size", "threads"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "warmup" else 1):
            raise ValueError(f"--{name} {value}; expected a whole number >= {0 if name == 'warmup' else 1}")
    return args


def _windows(training, batch, args) -> dict[str, list[tuple[float, int]]]:
    """Alternating idle and loaded windows: (seconds per step, threads) of each."""
    out = {"idle": [], "loaded": []}
    for _ in range(args.rounds):
        out["idle"].append((time_steps(training, batch, args.steps, args.threads), torch.get_num_threads()))
        competitor = start_competitor(args.nice)
        try:
            time.sleep(0.5)  # let it reach its loop
            out["loaded"].append((time_steps(training, batch, args.steps, args.threads), torch.get_num_threads()))
        finally:
            os.killpg(competitor.pid, signal.SIGKILL)
            competitor.wait()
    return out


def main(argv: list[str] | None = None) -> dict:
    args = _parse(argv)
    cfg = get_config(args.preset, **{k: v for k, v in (("batch_size", args.batch), ("crop_size", args.size)) if v})
    device = torch.device("cpu")
    training = build_training(cfg, device, total_steps=10**6)
    batch = make_batch(cfg.batch_size, cfg.crop_size)
    if args.warmup:
        time_steps(training, batch, args.warmup, args.threads)
    windows = _windows(training, batch, args)
    median = {k: statistics.median(s for s, _ in v) for k, v in windows.items()}
    result = {
        "loaded_vs_idle": round(median["idle"] / median["loaded"], 4),
        "img_per_s": {k: round(cfg.batch_size / v, 2) for k, v in median.items()},
        "step_s": {k: [round(s, 4) for s, _ in v] for k, v in windows.items()},
        "threads": {k: [n for _, n in v] for k, v in windows.items()},
        "device_name": device_name(device), "env": {k: os.environ.get(k) for k in THREAD_VARIABLES},
        "torch": torch.__version__,
        "preset": args.preset, "batch": cfg.batch_size, "size": cfg.crop_size, "steps": args.steps,
        "rounds": args.rounds, "competitor_nice": args.nice,
    }
    print(f"{device_name(device)}; {result['env']}")
    print(f"{args.preset} preset, batch {cfg.batch_size}, {cfg.crop_size} px: idle {result['img_per_s']['idle']} img/s "
          f"(threads {result['threads']['idle']}), beside one busy process {result['img_per_s']['loaded']} img/s "
          f"(threads {result['threads']['loaded']}): x{result['loaded_vs_idle']:.2f}")
    line = json.dumps(result)
    print(line)
    if args.out:
        Path(args.out).write_text(line + "\n")
    return result


if __name__ == "__main__":
    main()
