"""A finished run of a Config in a folder: reused when complete, resumed when cut short, else trained.

"Is this run done?" has one answer: only the trainer's summary for every epoch of the run, without
an early stop. A run cut short (a kill, a Colab disconnect) resumes from its last sound checkpoint:
last.pt, or best.pt where last.pt is damaged.
"""
from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..presets import Config
from .devices import device_name, pick_device
from .trainer import train

__all__ = ["TrainedRun", "run_progress", "ensure_trained"]


@dataclass
class TrainedRun:
    """What `ensure_trained` found and did."""
    checkpoint: Path         # best.pt of the run
    run: Path                # the run folder
    outcome: str             # "reused", "resumed" or "trained"
    resumed_from: int        # epochs already done when this call started (0 unless resumed)
    epochs: int              # epochs the run is meant to have
    message: str             # one line saying which happened
    summary: dict[str, Any]  # the trainer's summary (summary.json)


def run_progress(run: Path, epochs: int) -> tuple[str, int]:
    """("complete" | "interrupted" | "new", epochs done) of a run folder meant to train `epochs` epochs.

    Complete only when the trainer wrote its summary for all `epochs` without stopping early: best.pt
    is written during a run, so its presence alone says nothing about whether the run finished.
    """
    summary = _summary(run)
    if summary is not None and (run / "best.pt").is_file():
        if summary.get("epochs_done") == epochs and not summary.get("stopped_by_time_budget"):
            return "complete", epochs
    state = _sound_checkpoint(run)
    if state is not None:
        return "interrupted", int(state["epoch"])
    return "new", 0


def _summary(run: Path) -> dict[str, Any] | None:
    try:
        summary = json.loads((run / "summary.json").read_text())
    except (OSError, ValueError):  # none yet, or one an older version left half-written
        return None
    return summary if isinstance(summary, dict) else None


def _sound_checkpoint(run: Path) -> dict[str, Any] | None:
    """The checkpoint the trainer resumes from: last.pt, else best.pt where last.pt is missing or damaged.

    Read with mmap: the epoch counter without the weights and the optimiser in memory.
    """
    for name in ("last.pt", "best.pt"):
        path = run / name
        if not path.is_file() or path.stat().st_size == 0:
            continue
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError):
            continue  # cut short: the trainer sets it aside and resumes from the other
        if isinstance(state, dict) and "epoch" in state:
            return state
    return None


def _with_fresh_budget(cfg: Config, run: Path) -> Config:
    """A run its time budget stopped gets a fresh budget: resuming with the spent one would stop at once."""
    if cfg.max_train_seconds <= 0:
        return cfg
    spent = float(_sound_checkpoint(run)["train_seconds"])
    return cfg.replace(max_train_seconds=spent + cfg.max_train_seconds)


def ensure_trained(cfg: Config, manifest: str | Path, run: str | Path, device: str | torch.device | None = None,
                   progress: bool = False, reuse: bool = True) -> TrainedRun:
    """The run of `cfg` in folder `run`: reused if complete, else resumed from its last epoch, else trained now.

    Prints which of the three happened. `reuse=False` trains afresh, replacing any run in the folder.
    Resuming refuses a run whose checkpoint holds another config (nclkit.engine.checkpoint.check_resumable).
    """
    run, dev = Path(run), pick_device(device)
    best = run / "best.pt"
    state, done = run_progress(run, cfg.epochs) if reuse else ("new", 0)
    if state == "complete":
        message = f"reused a complete run ({cfg.epochs} epochs): {best}"
        print(message)
        summary = json.loads((run / "summary.json").read_text())
        return TrainedRun(best, run, "reused", cfg.epochs, cfg.epochs, message, summary)

    if state == "interrupted":
        print(f"resuming an interrupted run of {cfg.name}/{cfg.variant} from epoch {done} of {cfg.epochs} "
              f"on {device_name(dev)} ...")
        summary = train(_with_fresh_budget(cfg, run), manifest, run, resume=True, device=dev, progress=progress)
        outcome, message = "resumed", f"resumed an interrupted run from epoch {done} of {cfg.epochs}"
    else:
        unusable = [p.name for p in (run / "last.pt", run / "best.pt") if p.is_file()] if reuse else []
        why = "no run with these settings yet: " if reuse else ""
        if unusable:  # every checkpoint damaged: nothing to resume from
            why = f"the run's checkpoints ({', '.join(unusable)}) are damaged: "
        print(f"{why}training {cfg.name}/{cfg.variant} from scratch for {cfg.epochs} epochs on {device_name(dev)} ...")
        # overwrite: without reuse, or where no last.pt says an epoch ever finished
        summary = train(cfg, manifest, run, device=dev, progress=progress, overwrite=True)
        outcome, message = "trained", f"trained from scratch ({cfg.epochs} epochs)"
    if summary["stopped_by_time_budget"]:
        message += (f"; stopped by its {cfg.max_train_seconds:.0f} s time budget after {summary['epochs_done']} "
                    f"of {cfg.epochs} epochs (a busy machine?): the next call resumes it")
    print(f"{message}: {best}")
    return TrainedRun(best, run, outcome, done, cfg.epochs, message, summary)
