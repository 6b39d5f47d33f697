"""Training: the paper's recipe (§4, following DeepLabV3+) for the three Table 5 variants.

SGD (lr 0.007, momentum 0.9, weight decay 5e-4), "poly" schedule (power 0.9), batch 4, crop 512 in
the paper preset; every number comes from the Config. bf16 autocast on GPUs (fp16 with a gradient
scaler where bf16 is missing); on a CPU bf16 autocast where it has native bf16 instructions
(elsewhere bf16 is emulated and slower), fp32 otherwise. channels_last (NHWC) memory wherever
`cfg.channels_last` says so: cuDNN's and oneDNN's fast convolution layout. One process is the
single-device run; under `torchrun` the same code runs DistributedDataParallel (NCCL on GPUs, gloo on
CPUs). Checkpoints are written atomically every epoch; `resume=True` continues exactly from
`last.pt`. The best epoch is chosen on the "val" split, never on "test".

Nothing goes silently wrong: the manifest is validated and every file's header read before the
model is built; a non-finite loss stops training at once (TrainingDiverged) and no checkpoint with
non-finite weights is ever written; a run folder is never replaced without `overwrite=True`; the
log is written after the checkpoint it describes.
"""
from __future__ import annotations

import json
import math
import random
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from ..data import ManifestDataset, read_manifest, scan_records
from ..models import build_model
from ..ncl import NCLCriterion
from ..presets import Config
from . import distributed as dist_utils
from .checkpoint import (
    check_compatible, check_finite_weights, check_resumable, nonfinite_tensors, read_checkpoint, rng_state,
    save_checkpoint, set_rng_state,
)
from .outputs import last_checkpoint_note, prepare_run_dir

__all__ = ["train", "TrainingDiverged", "LossModel", "poly_lambda", "autocast_dtype", "precision_name",
           "cpu_has_native_bf16", "build_optimization", "training_step", "train_one_epoch"]


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
        res = self.criterion(self.model, out, mask, valid)
        return res.total, res.terms


def poly_lambda(total_steps: int, power: float):
    """DeepLab's "poly" policy: lr = base_lr * (1 - step / total_steps) ** power."""
    return lambda step: max(0.0, 1.0 - step / max(total_steps, 1)) ** power


def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bf16 in hardware (AVX512-BF16 or AMX); there bf16 autocast trains
    the quick preset about 1.4x faster than fp32 (benchmarks/train_step.py), elsewhere it is slower."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private but stable since torch 2.3
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def autocast_dtype(cfg: Config, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a training step; None means fp32.

    CUDA: bf16 where the GPU has it, fp16 (with a scaler) otherwise. CPU: bf16 for `amp="bf16"`, or
    for `amp="auto"` where the CPU has native bf16; never fp16 (few CPUs compute it natively).
    """
    if cfg.amp == "fp32":
        return None
    if device.type == "cpu":
        native = cfg.amp == "auto" and cpu_has_native_bf16()
        return torch.bfloat16 if cfg.amp == "bf16" or native else None
    if device.type != "cuda":
        return None
    if cfg.amp == "bf16" or (cfg.amp == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def precision_name(cfg: Config, device: torch.device) -> str:
    """How a training step of `cfg` computes on `device`, for reports: "bfloat16", "float16" or "fp32"."""
    return str(autocast_dtype(cfg, device) or "fp32").replace("torch.", "")


def build_optimization(model: nn.Module, cfg: Config, device: torch.device, total_steps: int):
    """The recipe of §4: SGD (fused on CUDA, foreach on CPU), poly schedule, AMP dtype and grad scaler."""
    kind = {"fused": True} if device.type == "cuda" else {"foreach": True}
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay, **kind)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, poly_lambda(total_steps, cfg.poly_power))
    amp_dtype = autocast_dtype(cfg, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    return optimizer, scheduler, scaler, amp_dtype


def _finite_on_every_rank(total: torch.Tensor) -> bool:
    """True when the loss is finite here and, under DDP, in every process (so all stop together)."""
    ok = torch.isfinite(total.detach()).all()
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        flag = ok.to(torch.float32).reshape(1)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        ok = flag[0] > 0
    return bool(ok)  # one host sync per step: the price of stopping before the weights are touched


def training_step(forward, optimizer, scheduler, scaler, amp_dtype, image, mask, valid):
    """One optimisation step of eq. 9 (or a Table 5 variant); returns the loss and its detached terms.

    Raises TrainingDiverged, before any gradient is applied, when the loss is not finite.
    """
    with torch.autocast(image.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        total, terms = forward(image, mask, valid)
    if not _finite_on_every_rank(total):
        values = {"loss": total.detach(), **terms}
        raise TrainingDiverged("non-finite loss (" + ", ".join(f"{k}={float(v):.4g}" for k, v in values.items()) + ")")
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(total).backward()
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    return total, terms


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _per_process_batch(cfg: Config, n_images: int, world: dist_utils.World) -> int:
    """cfg.batch_size, shrunk when a tiny training split cannot fill one batch per process."""
    return max(min(cfg.batch_size, n_images // world.size), 1)


def _loader(dataset, cfg: Config, epoch: int, device: torch.device, world: dist_utils.World) -> DataLoader:
    # A fresh, epoch-seeded generator: the order and the augmentations of epoch e are the same
    # whether or not the run was interrupted before it.
    g = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)
    sampler = None
    if world.size > 1:
        sampler = torch.utils.data.DistributedSampler(dataset, world.size, world.rank, shuffle=True, seed=cfg.seed, drop_last=True)
        sampler.set_epoch(epoch)
    return DataLoader(
        dataset, batch_size=_per_process_batch(cfg, len(dataset), world), shuffle=sampler is None, sampler=sampler, generator=g,
        num_workers=cfg.num_workers, pin_memory=device.type == "cuda", drop_last=True,
        persistent_workers=False,
    )


def train_one_epoch(step_fn, loader, epoch: int, progress: bool, time_left) -> tuple[dict[str, float], int, bool]:
    """Runs one epoch; returns mean loss terms, images seen, and whether the time budget ran out."""
    from tqdm.auto import tqdm

    sums: dict[str, torch.Tensor] = {}
    n_batches, n_images, out_of_time = 0, 0, False
    bar = tqdm(loader, desc=f"epoch {epoch + 1}", leave=False, disable=not progress)
    for batch in bar:
        terms = step_fn(batch)
        for k, v in terms.items():
            sums[k] = sums.get(k, 0) + v
        n_batches += 1
        n_images += batch["image"].shape[0]
        if progress and n_batches % 10 == 0:  # .item() only every few steps: it waits for the GPU
            bar.set_postfix({k: f"{float(v) / n_batches:.3f}" for k, v in sums.items()})
        if time_left() <= 0:
            out_of_time = True
            break
    return {k: float(v) / max(n_batches, 1) for k, v in sums.items()}, n_images, out_of_time


def _validate(model, records, device, progress) -> dict[str, float]:
    from .evaluator import evaluate

    res = evaluate(model, records, device=device, progress=progress)
    return {"val_pixel_f1": res["pixel_f1"], "val_pixel_auc": res["pixel_auc"]}


def _score(metrics: dict[str, float]) -> float:
    f1, auc = metrics.get("val_pixel_f1", float("nan")), metrics.get("val_pixel_auc", float("nan"))
    return (0.0 if math.isnan(f1) else f1) + 1e-3 * (0.0 if math.isnan(auc) else auc)


def train(
    cfg: Config,
    manifest: str | Path,
    out_dir: str | Path,
    resume: bool = False,
    device: str | torch.device | None = None,
    progress: bool = True,
    tensorboard: bool = False,
    stop_after_epochs: int | None = None,
    overwrite: bool = False,
    allow_changes: bool = False,
) -> dict[str, Any]:
    """Train NCL (or a Table 5 variant) on the manifest's "train" split; writes best.pt, last.pt, log.jsonl.

    Args:
        cfg: the resolved Config (a preset plus overrides).
        manifest: JSON Lines manifest with a "train" split (and ideally "val" for model selection).
        out_dir: run folder; `config.json`, `log.jsonl`, `last.pt`, `best.pt` go there.
        resume: continue from out_dir/last.pt (model, optimiser, schedule, scaler, RNG, step).
        stop_after_epochs: end this call after that many epochs (an interruption, for tests and budgets).
        overwrite: replace a run already in out_dir (without it, or resume, such a folder is refused).
        allow_changes: let a resumed run continue with a config that differs from its checkpoint's.

    Returns:
        a summary dict (epochs, steps, train seconds, best validation metrics, paths).
    Raises:
        DataError: a bad manifest record or file (all files' headers are read before training starts).
        TrainingDiverged: the loss or the weights became non-finite (nothing non-finite is saved).
        ValueError: out_dir holds a run and neither resume nor overwrite was given, or a changed config on resume.
    """
    if cfg.epochs < 1:
        raise ValueError(f"epochs={cfg.epochs}; expected >= 1")
    world = dist_utils.setup(device)
    device = world.device
    out_dir = Path(out_dir)
    prepare_run_dir(out_dir, resume=resume, overwrite=overwrite, main_process=world.is_main)
    _seed_everything(cfg.seed + world.rank)

    train_records = read_manifest(manifest, split="train")
    if not cfg.train_authentic:
        train_records = [r for r in train_records if r.label == 1]
        if not train_records:
            raise ValueError(f"{manifest}: train_authentic=False leaves no tampered image in 'train'")
    # Model selection reads pixel F1/AUC only, which authentic images do not enter: skip predicting them.
    val_records = [r for r in read_manifest(manifest) if r.split == "val" and r.label == 1]
    scan_records(train_records)  # a bad file fails now, not when its batch comes
    scan_records(val_records, decode=True)  # validation would first decode them after a whole epoch
    if not val_records and world.is_main:
        warnings.warn(f"{manifest} has no tampered image in split 'val': best.pt will be the last epoch (never selected on 'test')")
    dataset = ManifestDataset(train_records, cfg, train=True, cache=cfg.cache_images)
    if len(dataset) < world.size:
        raise ValueError(f"{manifest}: {len(dataset)} training images cannot feed {world.size} processes")

    model = build_model(cfg).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    loss_model = LossModel(model, NCLCriterion(cfg))
    wrapped = dist_utils.wrap(loss_model, world, find_unused=cfg.variant != "full")
    if cfg.compile:
        wrapped = torch.compile(wrapped)  # same parameters; checkpoints keep saving `model`'s own keys

    steps_per_epoch = max((len(dataset) // world.size) // _per_process_batch(cfg, len(dataset), world), 1)
    total_steps = steps_per_epoch * cfg.epochs
    optimizer, scheduler, scaler, amp_dtype = build_optimization(model, cfg, device, total_steps)

    start_epoch, step, best, history, trained_s = 0, 0, -math.inf, [], 0.0
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    if resume:
        if not last_path.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {last_path}; start without --resume")
        state = read_checkpoint(last_path)
        check_compatible(state["config"], cfg, last_path)
        check_resumable(state, cfg, last_path, allow_changes=allow_changes)
        check_finite_weights(state["model"], last_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start_epoch, step, best = state["epoch"], state["step"], state["best"]
        history, trained_s = list(state["history"]), float(state["train_seconds"])
        set_rng_state(state["rng"])
        if world.is_main:  # the log says exactly what the checkpoint holds (a failed save may have left more)
            _rewrite_log(out_dir, history)
    if world.is_main:
        (out_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")

    def step_fn(batch) -> dict[str, torch.Tensor]:
        nonlocal step
        image = batch["image"].to(device, non_blocking=True)
        if cfg.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        mask = batch["mask"].to(device, non_blocking=True)
        valid = batch["valid"].to(device, non_blocking=True)
        try:
            total, terms = training_step(wrapped, optimizer, scheduler, scaler, amp_dtype, image, mask, valid)
        except TrainingDiverged as err:
            raise TrainingDiverged(f"at step {step + 1}: {err}") from None
        step += 1
        return {"loss": total.detach(), **terms}

    writer = _tensorboard(out_dir) if tensorboard and world.is_main else None
    budget = cfg.max_train_seconds
    epoch, stopped_early = start_epoch, False
    for epoch in range(start_epoch, cfg.epochs):
        if stop_after_epochs is not None and epoch - start_epoch >= stop_after_epochs:
            break
        wrapped.train()
        t0 = time.perf_counter()
        loader = _loader(dataset, cfg, epoch, device, world)
        time_left = (lambda: budget - trained_s - (time.perf_counter() - t0)) if budget > 0 else (lambda: 1.0)
        try:
            terms, n_images, stopped_early = train_one_epoch(step_fn, loader, epoch, progress and world.is_main,
                                                             time_left)
            bad = nonfinite_tensors(model.state_dict())
            if bad:
                raise TrainingDiverged(f"by step {step}: the weights became non-finite "
                                       f"({', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''})")
        except TrainingDiverged as err:
            raise _diverged(err, epoch, out_dir, cfg) from None
        epoch_s = time.perf_counter() - t0
        trained_s += epoch_s
        row = {"epoch": epoch + 1, "step": step, "lr": scheduler.get_last_lr()[0], "seconds": round(epoch_s, 3),
               "images_per_s": round(n_images * world.size / max(epoch_s, 1e-9), 2), **terms}
        is_last = epoch + 1 == cfg.epochs or stopped_early
        if val_records and world.is_main and ((epoch + 1) % cfg.val_every == 0 or is_last):
            try:
                row.update(_validate(model, val_records, device, progress=False))
            except FloatingPointError as err:  # finite weights can still be too large to compute with
                raise _diverged(f"by step {step}: validation failed: {err}", epoch, out_dir, cfg) from None
        history.append(row)
        # Model selection on "val" only; without a val split, best.pt is simply the latest epoch.
        improved = world.is_main and ("val_pixel_f1" in row and _score(row) > best if val_records else True)
        if world.is_main:
            state = {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                "epoch": epoch + 1, "step": step, "config": cfg.to_dict(), "rng": rng_state(),
                "best": _score(row) if improved and val_records else best, "history": history,
                "train_seconds": trained_s, "nclkit_version": _version(),
            }
            if improved:
                best = state["best"]
                save_checkpoint(state, best_path)
            save_checkpoint(state, last_path)
            _log(out_dir, row, writer)  # after the checkpoint: the log never runs ahead of last.pt
        dist_utils.barrier(world)
        if stopped_early:
            break

    summary = {
        "epochs_done": history[-1]["epoch"] if history else start_epoch,
        "steps": step, "train_seconds": round(trained_s, 2), "stopped_by_time_budget": stopped_early,
        "best_val": max((h for h in history if "val_pixel_f1" in h), key=_score, default=None),
        "last": str(last_path) if last_path.is_file() else None,
        "best_checkpoint": str(best_path) if best_path.is_file() else None, "world_size": world.size,
        "ranks_agree": dist_utils.ranks_agree(model, world),
    }
    if world.is_main:
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if writer is not None:
        writer.close()
    dist_utils.cleanup(world)
    return summary


def _log(out_dir: Path, row: dict[str, Any], writer) -> None:
    with open(out_dir / "log.jsonl", "a") as fh:
        fh.write(json.dumps(row) + "\n")
    if writer is not None:
        for k, v in row.items():
            if isinstance(v, (int, float)) and k not in ("epoch", "step"):
                writer.add_scalar(k, v, row["step"])


def _diverged(err, epoch: int, out_dir: Path, cfg: Config) -> TrainingDiverged:
    return TrainingDiverged(f"training diverged in epoch {epoch + 1} {err}; {last_checkpoint_note(out_dir)}; "
                            f"try a lower learning rate (lr={cfg.lr:g})")


def _rewrite_log(out_dir: Path, history: list[dict[str, Any]]) -> None:
    tmp = out_dir / "log.jsonl.tmp"
    tmp.write_text("".join(json.dumps(row) + "\n" for row in history))
    tmp.replace(out_dir / "log.jsonl")


def _tensorboard(out_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise ImportError("TensorBoard logging needs `pip install nclkit[tensorboard]`") from err
    return SummaryWriter(log_dir=str(out_dir / "tensorboard"))


def _version() -> str:
    from .. import __version__
    return __version__
