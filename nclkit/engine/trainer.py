"""Training: the paper's recipe (§4, following DeepLabV3+) for the three Table 5 variants.

SGD (lr 0.007, momentum 0.9, weight decay 5e-4), "poly" schedule (power 0.9), batch 4, crop 512 in
the paper preset; every number comes from the Config. Autocast precision as nclkit.engine.devices
chooses it (bf16 on GPUs and on CPUs with native bf16, fp32 otherwise). channels_last (NHWC) memory wherever
`cfg.channels_last` says so: cuDNN's and oneDNN's fast convolution layout. One process is the
single-device run; under `torchrun` the same code runs DistributedDataParallel (NCCL on GPUs, gloo on
CPUs). Checkpoints are written atomically every epoch; `resume=True` continues exactly from
`last.pt`. The best epoch is chosen on the "val" split, never on "test".

Three parts, each usable alone: `build_training` makes the model, the loss, the optimiser, the
schedule, the gradient scaler and the precision of a Config; `train_one_epoch` steps through one
epoch; `train` wires them to the data, the checkpoints and the log.

Nothing goes silently wrong: the manifest is validated and every file's header read before the
model is built; a non-finite loss stops training at once (TrainingDiverged) and no checkpoint with
non-finite weights is ever written; a run folder is never replaced without `overwrite=True`, and is
written by one process at a time (a second is refused); the log is written after the checkpoint it
describes; a train split without a tampered image is refused for the NCL variants.

Nothing is lost when the machine fails: every file is written whole or not at all (nclkit.atomic),
so a run killed at any moment (`kill -9`, a power cut, a Colab disconnect) resumes with `resume=True`
from its last finished epoch to the same weights bit for bit; a `last.pt` found damaged or belonging
to another run is set aside (kept, renamed) and the run continues from `best.pt`, saying so.
"""
from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..data import ManifestDataset, read_manifest, scan_records
from ..data.forge import forge_from_manifest
from ..models import build_model
from ..ncl import NCLCriterion
from ..presets import Config
from ..version import __version__
from ..atomic import write_atomic, write_text_atomic
from . import distributed as dist_utils
from .checkpoint import (
    FREE_KEYS, DamagedCheckpoint, _norm, check_compatible, check_finite_weights, check_resumable, checkpoint_config,
    nonfinite_tensors, read_checkpoint, rng_state, save_checkpoint, set_rng_state,
)
from .devices import autocast_dtype, device_name
from .evaluator import evaluate
from .outputs import claim_run_dir, last_checkpoint_note, prepare_run_dir

__all__ = ["train", "TrainingDiverged", "LossModel", "Training", "build_training", "build_optimizer", "poly_lambda",
           "train_one_epoch", "EpochResult", "epoch_records"]


class TrainingDiverged(FloatingPointError):
    """The loss or the weights became NaN or infinite; the message says where and what to try."""


class LossModel(nn.Module):
    """Model + criterion in one forward, so DDP sees the pivot and auxiliary heads like any layer."""

    def __init__(self, model: nn.Module, criterion: NCLCriterion) -> None:
        super().__init__()
        self.model = model
        self.criterion = criterion

    def forward(self, image, mask, valid):
        out = self.model(image)
        res = self.criterion(out, mask, valid, pivot=self.model.pivot)
        return res.total, res.terms


def poly_lambda(total_steps: int, power: float):
    """DeepLab's "poly" policy: lr = base_lr * (1 - step / total_steps) ** power."""
    return lambda step: max(0.0, 1.0 - step / max(total_steps, 1)) ** power


def build_optimizer(model: nn.Module, cfg: Config, device: torch.device, fast: bool = True) -> torch.optim.SGD:
    """SGD of §4 (cfg.lr, momentum, weight decay): fused on CUDA and foreach on CPUs when `fast`,
    else PyTorch's plain per-parameter loop (the same numbers, slower: a reference for benchmarks)."""
    if fast:
        flags = {"fused": True} if device.type == "cuda" else {"foreach": True}
    else:
        flags = {"fused": False, "foreach": False}
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, **flags)


@dataclass
class Training:
    """What one optimisation step needs; `build_training` makes it from a Config."""

    model: nn.Module                 # the IMLModel: its state_dict is what checkpoints hold
    loss: LossModel                  # loss(image, mask, valid) -> (total, detached terms): eq. 9 or a variant
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler     # active only for fp16
    precision: torch.dtype | None    # the autocast dtype; None = fp32
    device: torch.device
    channels_last: bool


def build_training(cfg: Config, device: torch.device, total_steps: int, fast: bool = True) -> Training:
    """The recipe of §4 for `cfg` on `device`: model, loss, SGD, poly schedule over total_steps, scaler, precision."""
    model = build_model(cfg).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, cfg, device, fast)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, poly_lambda(total_steps, cfg.poly_power))
    precision = autocast_dtype(cfg, device)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == torch.float16)
    return Training(model, LossModel(model, NCLCriterion.from_config(cfg)), optimizer, scheduler, scaler, precision, device,
                    cfg.channels_last)


class EpochResult(NamedTuple):
    terms: dict[str, float]  # mean loss terms over the epoch's steps
    images: int              # images seen by this process
    step: int                # the global step count after the epoch
    out_of_time: bool        # the time budget ended the epoch early


def train_one_epoch(t: Training, forward: nn.Module, loader, step: int = 0, deadline: float = math.inf,
                    progress: bool = False, desc: str = "epoch") -> EpochResult:
    """One pass over `loader` with `forward` (t.loss, or its DDP / compiled wrapper).

    Raises TrainingDiverged when a loss is not finite, before any gradient is applied. Stops after
    the step that passes `deadline` (a time.perf_counter() value).
    """
    sums: dict[str, torch.Tensor] = {}
    n_batches, n_images, out_of_time = 0, 0, False
    bar = tqdm(loader, desc=desc, leave=False, disable=not progress)
    for batch in bar:
        image, mask, valid = (batch[k].to(t.device, non_blocking=True) for k in ("image", "mask", "valid"))
        if t.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        with torch.autocast(t.device.type, dtype=t.precision or torch.float32, enabled=t.precision is not None):
            total, terms = forward(image, mask, valid)
        _check_finite_loss(total, terms, step)
        t.optimizer.zero_grad(set_to_none=True)
        t.scaler.scale(total).backward()
        t.scaler.step(t.optimizer)
        t.scaler.update()
        t.scheduler.step()
        step += 1

        for k, v in {"loss": total.detach(), **terms}.items():
            sums[k] = sums.get(k, 0) + v
        n_batches += 1
        n_images += image.shape[0]
        if progress and n_batches % 10 == 0:  # .item() only every few steps: it waits for the GPU
            bar.set_postfix({k: f"{float(v) / n_batches:.3f}" for k, v in sums.items()})
        if time.perf_counter() >= deadline:
            out_of_time = True
            break
    return EpochResult({k: float(v) / max(n_batches, 1) for k, v in sums.items()}, n_images, step, out_of_time)


def _check_finite_loss(total: torch.Tensor, terms: dict[str, torch.Tensor], step: int) -> None:
    """Raise TrainingDiverged unless the loss is finite here and, under DDP, in every process (all stop together)."""
    ok = torch.isfinite(total.detach()).all()
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        flag = ok.to(torch.float32).reshape(1)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        ok = flag[0] > 0
    if not bool(ok):  # one host sync per step: the price of stopping before the weights are touched
        values = {"loss": total.detach(), **terms}
        raise TrainingDiverged(f"at step {step + 1}: non-finite loss ("
                               + ", ".join(f"{k}={float(v):.4g}" for k, v in values.items()) + ")")


@dataclass
class RunState:
    """Where a run stands between epochs: what `last.pt` records besides the weights and the optimiser."""

    epoch: int = 0
    step: int = 0
    best: float = -math.inf
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0


def train(
    cfg: Config,
    manifest: str | Path,
    out_dir: str | Path,
    resume: bool = False,
    device: str | torch.device | None = None,
    progress: bool = True,
    tensorboard: bool = False,
    overwrite: bool = False,
    allow_changes: bool = False,
    epoch_end: Callable[[int, nn.Module], None] | None = None,
) -> dict[str, Any]:
    """Train NCL (or a Table 5 variant) on the manifest's "train" split; writes best.pt, last.pt, log.jsonl.

    Args:
        cfg: the resolved Config (a preset plus overrides).
        manifest: JSON Lines manifest with a "train" split (and ideally "val" for model selection).
        out_dir: run folder; `config.json`, `log.jsonl`, `last.pt`, `best.pt`, `summary.json` go there.
        resume: continue from out_dir/last.pt (model, optimiser, schedule, scaler, RNG, step).
        overwrite: replace a run already in out_dir (without it, or resume, such a folder is refused).
        allow_changes: let a resumed run continue with a config that differs from its checkpoint's.
        epoch_end: called as epoch_end(epoch, model) after each finished epoch (1-based; main process
            only), e.g. to measure the model as it trains (nclkit.engine.diagnostics).

    Returns:
        a summary dict (epochs, steps, train seconds, best validation metrics, paths).
    Raises:
        DataError: a bad manifest record or file (all files' headers are read before training starts).
        TrainingDiverged: the loss or the weights became non-finite (nothing non-finite is saved).
        ValueError: out_dir holds a run and neither resume nor overwrite was given, a changed config on resume,
            or another process is training in out_dir (a run folder is held by one process: outputs.claim_run_dir).
        ImportError: `tensorboard=True` without TensorBoard installed (the message says how to install it).
    """
    if cfg.epochs < 1:
        raise ValueError(f"epochs={cfg.epochs}; expected >= 1")
    writer_class = _summary_writer() if tensorboard else None  # an optional package: checked before any work
    world = dist_utils.setup(device)
    with claim_run_dir(out_dir, main_process=world.is_main) as folder:  # a second process is refused, not interleaved
        folder = prepare_run_dir(folder, resume=resume, overwrite=overwrite, main_process=world.is_main)
        return _run(cfg, manifest, folder, world, resume, allow_changes, progress,
                    writer_class if world.is_main else None, epoch_end)


def _run(cfg: Config, manifest, out_dir: Path, world: dist_utils.World, resume: bool, allow_changes: bool,
         progress: bool, writer_class, epoch_end=None) -> dict[str, Any]:
    """`train` in a folder it holds: data, model, epochs, checkpoints, log."""
    _seed_everything(cfg.seed + world.rank)
    saved_config = _read_run_config(out_dir) if resume else None  # the config last.pt was saved with
    if world.is_main and not resume:  # first: a run killed before its first checkpoint is still a run
        _write_config(out_dir, cfg)
    dataset, val_records = _training_data(cfg, manifest, world, out_dir)
    t = build_training(cfg, world.device, total_steps=_steps_per_epoch(cfg, len(dataset), world) * cfg.epochs)
    forward = dist_utils.wrap(t.loss, world, find_unused=t.loss.criterion.find_unused_parameters)
    if cfg.compile:
        forward = torch.compile(forward)  # same parameters; checkpoints keep saving `model`'s own keys
    run = _resume(t, cfg, out_dir, world, allow_changes, saved_config) if resume else RunState()
    writer = writer_class(log_dir=str(out_dir / "tensorboard")) if writer_class is not None else None
    out_of_time, first = False, run.epoch
    for epoch in range(run.epoch, cfg.epochs):
        t0 = time.perf_counter()
        deadline = t0 + cfg.max_train_seconds - run.train_seconds if cfg.max_train_seconds > 0 else math.inf
        forward.train()
        try:
            res = train_one_epoch(t, forward, _loader(dataset, cfg, epoch, world), run.step, deadline,
                                  progress and world.is_main, desc=f"epoch {epoch + 1}")
        except TrainingDiverged as err:
            raise _diverged(err, epoch, out_dir, cfg) from None
        out_of_time = res.out_of_time
        _end_epoch(t, cfg, run, epoch, res, time.perf_counter() - t0, val_records, out_dir, world, writer)
        if epoch == first and world.is_main and not out_of_time:
            print(_estimate(cfg, epoch, time.perf_counter() - t0, t.device), flush=True)
        if epoch_end is not None and world.is_main:
            epoch_end(epoch + 1, t.model)
        if out_of_time:
            break
    return _finish(t, run, out_dir, world, writer, out_of_time)


def _estimate(cfg: Config, epoch: int, seconds: float, device: torch.device) -> str:
    """One line after a run's first epoch: how long the rest will take here. The schedule is fixed in
    epochs, so a slower machine trains the same model and takes longer; this says how much longer."""
    left = cfg.epochs - epoch - 1
    line = (f"epoch {epoch + 1} of {cfg.epochs} took {seconds:.1f} s (validation included) on {device_name(device)}: "
            f"about {seconds * left / 60:.1f} min for the {left} epochs left")
    if cfg.max_train_seconds > 0 and seconds * (epoch + 1 + left) > cfg.max_train_seconds:
        line += f"; the {cfg.max_train_seconds:.0f} s time budget will stop it first (max_train_seconds=0 lifts it)"
    return line


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _training_data(cfg: Config, manifest, world: dist_utils.World, out_dir: Path) -> tuple[ManifestDataset, list]:
    """The training dataset and the validation records, every file checked before the model is built."""
    forged = _forged_records(cfg, manifest, world, out_dir) if cfg.forged else []
    train_records = epoch_records(cfg, read_manifest(manifest, split="train"))
    if not cfg.train_authentic and not train_records:
        raise ValueError(f"{manifest}: train_authentic=False leaves no tampered image in 'train'")
    # Model selection reads pixel F1/AUC only, which authentic images do not enter: skip predicting them.
    val_records = [r for r in read_manifest(manifest) if r.split == "val" and r.label == 1]
    train_records += forged
    _check_tampered(cfg, manifest, train_records, world)
    scan_records(train_records + val_records)  # a bad file fails now, not when its batch comes; one mask warning
    scan_records(val_records, decode=True, check_masks=False)  # validation would first decode them after an epoch
    if not val_records and world.is_main:
        warnings.warn(f"{manifest} has no tampered image in split 'val': best.pt will be the last epoch (never selected on 'test')")
    dataset = ManifestDataset(train_records, cfg, train=True, cache=cfg.cache_images)
    if cfg.cache_images and cfg.num_workers > 0:
        dataset.preload()  # before the workers start: each epoch's fresh workers inherit the decoded set
    if len(dataset) < world.size:
        raise ValueError(f"{manifest}: {len(dataset)} training images cannot feed {world.size} processes")
    return dataset, val_records


def epoch_records(cfg: Config, records: list) -> list:
    """The records of a manifest that an epoch of `cfg` trains on: split "train", its authentic images
    only with `cfg.train_authentic`. A run adds `cfg.forged` forgeries of them (`_forged_records`)."""
    return [r for r in records if r.split == "train" and (cfg.train_authentic or r.label == 1)]


def _check_tampered(cfg: Config, manifest, records: list, world: dist_utils.World) -> None:
    """The NCL variants learn from tampered regions (eq. 7): a train split without any is refused; BCE
    alone (variant 'base') would only learn that nothing is ever tampered, which is said."""
    if any(r.label == 1 for r in records):
        return
    text = f"{manifest}: split 'train' has no tampered image ({len(records)} authentic)"
    if cfg.variant != "base":
        raise ValueError(f"{text}; the {cfg.variant!r} variant learns from tampered regions: add tampered images "
                         "with masks")
    if world.is_main:
        warnings.warn(f"{text}: the model can only learn that nothing is tampered", stacklevel=4)


def _forged_records(cfg: Config, manifest, world: dist_utils.World, out_dir: Path) -> list:
    """cfg.forged forgeries of the train split's own authentic photos, shaped by its own masks, made once
    per run (seeded by cfg.seed) in out_dir/forged and reused on resume. Beyond the paper."""
    if world.is_main:
        t0 = time.perf_counter()
        path = forge_from_manifest(manifest, out_dir / "forged", cfg.forged, seed=cfg.seed)
        print(f"{cfg.forged} forgeries of the train split's own photos in {path.parent} "
              f"({time.perf_counter() - t0:.1f} s)", flush=True)
    dist_utils.barrier(world)
    return read_manifest(out_dir / "forged" / "manifest.jsonl")


def _per_process_batch(cfg: Config, n_images: int, world: dist_utils.World) -> int:
    """cfg.batch_size, shrunk when a tiny training split cannot fill one batch per process."""
    return max(min(cfg.batch_size, n_images // world.size), 1)


def _steps_per_epoch(cfg: Config, n_images: int, world: dist_utils.World) -> int:
    return max((n_images // world.size) // _per_process_batch(cfg, n_images, world), 1)


def _loader(dataset, cfg: Config, epoch: int, world: dist_utils.World) -> DataLoader:
    # A fresh, epoch-seeded generator: the order and the augmentations of epoch e are the same
    # whether or not the run was interrupted before it.
    g = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)
    sampler = None
    if world.size > 1:
        sampler = torch.utils.data.DistributedSampler(dataset, world.size, world.rank, shuffle=True, seed=cfg.seed, drop_last=True)
        sampler.set_epoch(epoch)
    return DataLoader(
        dataset, batch_size=_per_process_batch(cfg, len(dataset), world), shuffle=sampler is None, sampler=sampler, generator=g,
        num_workers=cfg.num_workers, pin_memory=world.device.type == "cuda", drop_last=True,
        persistent_workers=False,
    )


def _resume(t: Training, cfg: Config, out_dir: Path, world: dist_utils.World, allow_changes: bool,
            saved_config: dict[str, Any] | None) -> RunState:
    """Load the run's last sound checkpoint into `t` (weights, optimiser, schedule, scaler, RNG) and return
    where the run stood; a fresh RunState for a run stopped before its first checkpoint."""
    found = _resume_checkpoint(cfg, out_dir, world, allow_changes, saved_config)
    if found is None:
        return RunState()
    state, path = found
    t.model.load_state_dict(state["model"])
    t.optimizer.load_state_dict(state["optimizer"])
    t.scheduler.load_state_dict(state["scheduler"])
    t.scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    run = RunState(state["epoch"], state["step"], state["best"], list(state["history"]), float(state["train_seconds"]))
    if world.is_main:
        if path.name == "last.pt":
            run.best = _check_best(out_dir, run.best)
        _rewrite_log(out_dir, run.history)  # the log says exactly what the checkpoint holds
    return run


class _ForeignCheckpoint(ValueError):
    """A checkpoint whose config is not the one its run folder's config.json records."""


def _resume_checkpoint(cfg: Config, out_dir: Path, world: dist_utils.World, allow_changes: bool,
                       saved_config: dict[str, Any] | None) -> tuple[dict[str, Any], Path] | None:
    """(state, path) of the checkpoint to continue from: last.pt, or best.pt (which holds the same entries)
    where last.pt is missing, damaged or another run's. None where the run never wrote one.

    Raises FileNotFoundError where out_dir holds no run at all, ValueError where no checkpoint is sound.
    """
    last, best = out_dir / "last.pt", out_dir / "best.pt"
    if not last.exists() and not best.exists():
        if saved_config is None:
            raise FileNotFoundError(f"--resume: no checkpoint at {last}; start without --resume")
        _say(world, f"{out_dir} holds no checkpoint yet (its run stopped before its first epoch ended): "
                    "starting it again from epoch 1")
        return None
    problems: list[str] = []
    for path in (last, best):
        if not path.exists():
            problems.append(f"{path} is missing")
            continue
        try:
            state = _resumable(path, cfg, allow_changes, saved_config)
        except (DamagedCheckpoint, _ForeignCheckpoint) as err:
            problems.append(str(err))
            continue
        if path == best:
            kept = [_set_aside(last, world)] if last.exists() else []
            if world.is_main:  # the run folder whole again: last.pt is where the run now stands
                write_atomic(last, partial(_copy_into, best))
            _say(world, f"{problems[0]}; continuing from {best} (epoch {state['epoch']}), the last sound state"
                        + (f"; the unusable file is kept as {kept[0].name}" if kept else ""))
        return state, path
    raise ValueError(f"--resume: no sound checkpoint in {out_dir} ({'; '.join(problems)}); start over with "
                     "--overwrite (deletes the run)")


def _resumable(path: Path, cfg: Config, allow_changes: bool, saved_config: dict[str, Any] | None) -> dict[str, Any]:
    """The checkpoint at `path`, checked for resuming `cfg`: readable, this run's, compatible, finite."""
    try:
        state = read_checkpoint(path)
    except DamagedCheckpoint as err:
        raise DamagedCheckpoint(path, err.problem, "") from None
    checkpoint_config(state, path)  # its values checked as a config.json's are
    if saved_config is not None and not allow_changes:
        theirs, ours = state["config"], saved_config
        differ = [k for k in cfg.to_dict() if k not in FREE_KEYS and _norm(theirs.get(k)) != _norm(ours.get(k))]
        if differ:
            raise _ForeignCheckpoint(f"{path} holds another run ({', '.join(differ[:4])} not as in "
                                     f"{path.parent / 'config.json'})")
    check_compatible(state["config"], cfg, path)
    check_resumable(state, cfg, path, allow_changes=allow_changes)
    check_finite_weights(state["model"], path)
    return state


def _check_best(out_dir: Path, best_score: float) -> float:
    """The best score to go on with: a damaged best.pt is set aside, and the next validated epoch writes a new one."""
    best = out_dir / "best.pt"
    if not best.exists():
        return best_score
    try:
        read_checkpoint(best)
    except DamagedCheckpoint as err:
        kept = _set_aside(best, None)
        print(f"{err.path} {err.problem}: kept as {kept.name}; the next validated epoch writes a new best.pt",
              flush=True)
        return -math.inf
    return best_score


def _set_aside(path: Path, world: dist_utils.World | None) -> Path:
    """Rename an unusable checkpoint NAME.pt to NAME.unusable.pt (or .unusable-2.pt ...): kept, never overwritten."""
    n, target = 1, path.with_name(f"{path.stem}.unusable.pt")
    while target.exists():
        n += 1
        target = path.with_name(f"{path.stem}.unusable-{n}.pt")
    if world is None or world.is_main:
        os.replace(path, target)
    return target


def _copy_into(src: Path, fh) -> None:
    with open(src, "rb") as source:
        shutil.copyfileobj(source, fh)


def _say(world: dist_utils.World, line: str) -> None:
    if world.is_main:
        print(line, flush=True)


def _read_run_config(out_dir: Path) -> dict[str, Any] | None:
    """The run folder's config.json as written (None where there is none or it is unreadable)."""
    try:
        data = json.loads((out_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_config(out_dir: Path, cfg: Config) -> None:
    write_text_atomic(out_dir / "config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")


def _end_epoch(t: Training, cfg: Config, run: RunState, epoch: int, res: EpochResult, seconds: float,
               val_records, out_dir: Path, world: dist_utils.World, writer) -> None:
    """Check, validate, select, checkpoint and log one finished epoch (the log never runs ahead of last.pt)."""
    bad = nonfinite_tensors(t.model.state_dict())
    if bad:
        raise _diverged(f"by step {res.step}: the weights became non-finite "
                        f"({', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''})", epoch, out_dir, cfg)
    run.step = res.step
    run.train_seconds += seconds
    row = {"epoch": epoch + 1, "step": run.step, "lr": t.scheduler.get_last_lr()[0], "seconds": round(seconds, 3),
           "images_per_s": round(res.images * world.size / max(seconds, 1e-9), 2), **res.terms,
           **({"threads": torch.get_num_threads()} if t.device.type == "cpu" else {})}  # its speed depends on them
    is_last = epoch + 1 == cfg.epochs or res.out_of_time
    if val_records and world.is_main and ((epoch + 1) % cfg.val_every == 0 or is_last):
        try:
            row.update(_validate(t.model, val_records, t.device))
        except FloatingPointError as err:  # finite weights can still be too large to compute with
            raise _diverged(f"by step {run.step}: validation failed: {err}", epoch, out_dir, cfg) from None
    run.history.append(row)
    run.epoch = epoch + 1
    if world.is_main:
        # Model selection on "val" only; without a val split, best.pt is simply the latest epoch.
        improved = "val_pixel_f1" in row and _score(row) > run.best if val_records else True
        if improved and val_records:
            run.best = _score(row)
        state = _checkpoint_state(t, cfg, run)
        if improved:
            save_checkpoint(state, out_dir / "best.pt")
        save_checkpoint(state, out_dir / "last.pt")
        _write_config(out_dir, cfg)  # after last.pt: a resumed run's changes (--allow-changes) are recorded with it
        _log(out_dir, run.history, writer)
    dist_utils.barrier(world)


def _checkpoint_state(t: Training, cfg: Config, run: RunState) -> dict[str, Any]:
    """Everything `last.pt` holds: enough to rebuild the model and to resume exactly (nclkit.engine.checkpoint)."""
    return {
        "model": t.model.state_dict(), "optimizer": t.optimizer.state_dict(),
        "scheduler": t.scheduler.state_dict(), "scaler": t.scaler.state_dict(),
        "epoch": run.epoch, "step": run.step, "config": cfg.to_dict(), "rng": rng_state(),
        "best": run.best, "history": run.history, "train_seconds": run.train_seconds, "nclkit_version": __version__,
    }


def _finish(t: Training, run: RunState, out_dir: Path, world: dist_utils.World, writer, out_of_time: bool) -> dict[str, Any]:
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    summary = {
        "epochs_done": run.epoch,
        "steps": run.step, "train_seconds": round(run.train_seconds, 2), "stopped_by_time_budget": out_of_time,
        "best_val": max((h for h in run.history if "val_pixel_f1" in h), key=_score, default=None),
        "last": str(last_path) if last_path.is_file() else None,
        "best_checkpoint": str(best_path) if best_path.is_file() else None, "world_size": world.size,
        "ranks_agree": dist_utils.ranks_agree(t.model, world),
    }
    if world.is_main:
        write_text_atomic(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    if writer is not None:
        writer.close()
    dist_utils.cleanup(world)
    return summary


def _validate(model, records, device) -> dict[str, float]:
    res = evaluate(model, records, device=device, progress=False)
    return {"val_pixel_f1": res["pixel_f1"], "val_pixel_auc": res["pixel_auc"]}


def _score(metrics: dict[str, float]) -> float:
    f1, auc = metrics.get("val_pixel_f1", float("nan")), metrics.get("val_pixel_auc", float("nan"))
    return (0.0 if math.isnan(f1) else f1) + 1e-3 * (0.0 if math.isnan(auc) else auc)


def _log(out_dir: Path, history: list[dict[str, Any]], writer) -> None:
    """log.jsonl rewritten whole (a few hundred bytes an epoch): a full disk never leaves half a line in it."""
    _rewrite_log(out_dir, history)
    row = history[-1]
    if writer is not None:
        for k, v in row.items():
            if isinstance(v, (int, float)) and k not in ("epoch", "step"):
                writer.add_scalar(k, v, row["step"])


def _diverged(err, epoch: int, out_dir: Path, cfg: Config) -> TrainingDiverged:
    return TrainingDiverged(f"training diverged in epoch {epoch + 1} {err}; {last_checkpoint_note(out_dir)}; "
                            f"try a lower learning rate (lr={cfg.lr:g})")


def _rewrite_log(out_dir: Path, history: list[dict[str, Any]]) -> None:
    write_text_atomic(out_dir / "log.jsonl", "".join(json.dumps(row) + "\n" for row in history))


def _summary_writer():
    """TensorBoard's SummaryWriter class; ImportError with the command that installs it."""
    try:  # imported here: TensorBoard is optional, and slow to import
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise ImportError("--tensorboard needs TensorBoard, which is not installed: "
                          "pip install 'nclkit[tensorboard]' (or pip install tensorboard)") from err
    return SummaryWriter
