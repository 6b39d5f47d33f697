"""Self-describing checkpoints: only tensors and plain data, so `torch.load(weights_only=True)` reads them.

A checkpoint holds {model, optimizer, scheduler, scaler, epoch, step, config, rng, best, history,
nclkit_version}: enough to rebuild the model without the original command line and to resume exactly.
It is written whole or not at all (nclkit.atomic); a file cut short anyway (a copy, a sync to a cloud
drive) is reported as damaged (`DamagedCheckpoint`), never read as a good one.
"""
from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import write_atomic
from ..models import build_model
from ..models.deeplab import MODEL_KEYS  # the keys a checkpoint's weights fit: not loaded across them
from ..presets import Config

__all__ = ["save_checkpoint", "read_checkpoint", "DamagedCheckpoint", "load_model", "rng_state", "set_rng_state",
           "MODEL_KEYS", "FREE_KEYS", "RESUME_KEYS", "checkpoint_config", "nonfinite_tensors", "check_finite_weights",
           "check_compatible", "check_resumable"]


# Config keys a resumed run may change without altering what it computes (speed, budgets, logging).
FREE_KEYS = ("num_workers", "cache_images", "eval_max_side", "compile", "channels_last", "amp",
             "max_train_seconds", "val_every")

# What a checkpoint must hold to continue a run exactly.
RESUME_KEYS = ("model", "optimizer", "scheduler", "scaler", "epoch", "step", "config", "rng", "best", "history",
               "train_seconds")


def nonfinite_tensors(tensors: dict[str, Any]) -> list[str]:
    """Names of the floating-point tensors holding a NaN or an infinity."""
    return [k for k, v in tensors.items()
            if torch.is_tensor(v) and v.is_floating_point() and not bool(torch.isfinite(v).all())]


def check_finite_weights(weights: dict[str, Any], path: str | Path) -> None:
    """Refuse weights with NaN or infinite values: they come from a run that diverged."""
    bad = nonfinite_tensors(weights)
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise ValueError(f"checkpoint {path} holds non-finite weights ({shown}): the run that wrote it diverged; "
                         "train again with a lower learning rate")


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write atomically and synced to the disk: a crash, a kill or a full disk mid-write leaves the
    previous file intact and no .tmp behind (nclkit.atomic.write_atomic).

    Raises ValueError, writing nothing, when the model's weights are not all finite; WriteError (an
    OSError naming the file) when the disk is full or the folder read-only.
    """
    path = Path(path)
    if "model" in state:
        check_finite_weights(state["model"], path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, lambda fh: torch.save(state, fh))


class DamagedCheckpoint(ValueError):
    """A checkpoint file that is empty or cut short: `problem` says which, the message what to do."""

    def __init__(self, path: Path, problem: str, todo: str = "use another checkpoint, or copy this one again") -> None:
        super().__init__(f"checkpoint {path} {problem}" + (f"; {todo}" if todo else ""))
        self.path, self.problem = path, problem


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (weights_only=True); a clear one-line error for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    size = path.stat().st_size
    if size == 0:
        raise DamagedCheckpoint(path, "is empty (0 bytes): its writing was cut short")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises several types for a bad file
        if _zip_file(path) and not _unsafe(err):  # a PyTorch file that torch cannot read: cut short or corrupted
            raise DamagedCheckpoint(path, f"is damaged ({size} bytes, unreadable: its writing or copying was cut "
                                          "short, or it was corrupted)") from None
        # PyTorch's own message advises a retry with weights_only=False, which would run the file's code.
        if _unsafe(err):
            raise ValueError(f"checkpoint {path} holds Python objects beyond tensors and plain data, so it was not "
                             "loaded (loading it could run code); nclkit checkpoints never do: only use files you "
                             "trust") from None
        if isinstance(err, pickle.UnpicklingError):
            raise ValueError(f"checkpoint {path} could not be read: not a PyTorch file, or a damaged one") from None
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ValueError(f"checkpoint {path} could not be read ({type(err).__name__}: {first})") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise ValueError(f"{path} is not an nclkit checkpoint (no 'model' and 'config' entries)")
    if not isinstance(state["config"], dict):
        raise ValueError(f"checkpoint {path}: its config is a {type(state['config']).__name__}, not an nclkit "
                         "config (key: value pairs)")
    return state


def _unsafe(err: Exception) -> bool:
    """torch.load(weights_only=True) refused an object beyond tensors and plain data."""
    return isinstance(err, pickle.UnpicklingError) and "global" in str(err).lower()


def _zip_file(path: Path) -> bool:
    """PyTorch's file format is a zip archive: a file that starts like one was meant to be a checkpoint."""
    with open(path, "rb") as fh:
        return fh.read(4) == b"PK\x03\x04"


def checkpoint_config(state: dict[str, Any], path: str | Path) -> Config:
    """The Config a checkpoint holds, every value checked as `Config.validate` checks it (errors name the file)."""
    return Config.from_dict(state["config"], source=f"checkpoint {path}")


def check_compatible(saved: dict[str, Any], cfg: Config, path: str | Path) -> None:
    """Refuse to load weights into a model of another shape, naming the differing keys."""
    wanted = cfg.to_dict()
    diff = [f"{k}: checkpoint {saved.get(k)!r} vs requested {wanted[k]!r}"
            for k in MODEL_KEYS if _norm(saved.get(k)) != _norm(wanted[k])]
    if diff:
        raise ValueError(f"checkpoint {path} was trained with another model (preset {saved.get('name')!r}, "
                         f"requested {cfg.name!r}): " + "; ".join(diff))


def _norm(v):
    return list(v) if isinstance(v, (tuple, list)) else v


def check_resumable(state: dict[str, Any], cfg: Config, path: str | Path, allow_changes: bool = False) -> None:
    """Refuse to continue a run with another recipe (variant, epochs, preset, lr ...) unless allowed.

    Keys in FREE_KEYS may always change; a checkpoint lacking what resuming needs is refused too.
    """
    missing = [k for k in RESUME_KEYS if k not in state]
    if missing:
        raise ValueError(f"checkpoint {path} lacks {missing} (written by another nclkit version?); "
                         "it cannot be resumed")
    saved, wanted = state["config"], cfg.to_dict()
    diff = [f"{k} {_norm(saved.get(k))!r} -> {_norm(wanted[k])!r}" for k in wanted
            if k not in FREE_KEYS and _norm(saved.get(k)) != _norm(wanted[k])]
    if diff and not allow_changes:
        raise ValueError(f"resuming {path} with a changed config ({'; '.join(diff)}); resume with the run's own "
                         "settings, or pass --allow-changes to continue with the new ones")


def load_model(path: str | Path, device: str | torch.device = "cpu", cfg: Config | None = None):
    """Rebuild the model a checkpoint describes and load its weights; returns (model, state).

    Raises ValueError for a config that is not complete and valid, weights that are not finite (a
    diverged run) or that do not fit the model the checkpoint's config describes.
    """
    state = read_checkpoint(path)
    saved = checkpoint_config(state, path)
    if cfg is not None:
        check_compatible(state["config"], cfg, path)
    check_finite_weights(state["model"], path)
    model = build_model(saved)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        detail = " ".join(line.strip() for line in first[1:3])  # torch lists missing/unexpected keys after line 1
        raise ValueError(f"checkpoint {path}: its weights do not fit the model its config describes "
                         f"(written by another nclkit version?): {detail[:300]}") from None
    return model.to(device).eval(), state


def rng_state() -> dict[str, Any]:
    """Every RNG the training loop draws from, as tensors and plain data."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "python": [list(py_internal), py_version, py_gauss],
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    internal, version, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    npst = state["numpy"]
    np.random.set_state(("MT19937", npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"], npst["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
