"""Self-describing checkpoints: only tensors and plain data, so `torch.load(weights_only=True)` reads them.

A checkpoint holds {model, optimizer, scheduler, scaler, epoch, step, config, rng, best, history,
nclkit_version}: enough to rebuild the model without the original command line and to resume exactly.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..presets import Config, upgrade_dict

__all__ = ["save_checkpoint", "read_checkpoint", "load_model", "rng_state", "set_rng_state", "MODEL_KEYS"]

# Config keys that change the network's parameters or what its blocks return: a checkpoint cannot be
# loaded (or a run resumed) across these.
MODEL_KEYS = ("encoder", "output_stride", "block1", "aspp_rates", "aspp_channels", "low_level_channels",
              "decoder_channels", "aux_before_upsampling", "pivot_block")


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write atomically: a crash mid-write leaves the previous file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (weights_only=True); a clear error for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises several types for a bad file
        raise ValueError(f"checkpoint {path} could not be read ({type(err).__name__}: {err})") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise ValueError(f"{path} is not an nclkit checkpoint (no 'model' and 'config' entries)")
    return state


def check_compatible(saved: dict[str, Any], cfg: Config, path: str | Path) -> None:
    """Refuse to load weights into a model of another shape, naming the differing keys."""
    wanted = cfg.to_dict()
    saved = upgrade_dict(saved)  # a config saved before a key existed: that key's older reading
    diff = [f"{k}: checkpoint {saved.get(k)!r} vs requested {wanted[k]!r}"
            for k in MODEL_KEYS if _norm(saved.get(k)) != _norm(wanted[k])]
    if diff:
        raise ValueError(f"checkpoint {path} was trained with another model (preset {saved.get('name')!r}, "
                         f"requested {cfg.name!r}): " + "; ".join(diff))


def _norm(v):
    return list(v) if isinstance(v, (tuple, list)) else v


def load_model(path: str | Path, device: str | torch.device = "cpu", cfg: Config | None = None):
    """Rebuild the model a checkpoint describes and load its weights; returns (model, state)."""
    from ..models import build_model

    state = read_checkpoint(path)
    saved = Config.from_dict(state["config"])
    if cfg is not None:
        check_compatible(state["config"], cfg, path)
    model = build_model(saved)
    model.load_state_dict(state["model"])
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
