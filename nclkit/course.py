"""Helpers the course notebooks share: the device profile, the data, and "load if trained, else train".

Every notebook runs on its own. What it needs from an earlier one (a trained checkpoint, the
synthetic set) it takes from a cache if an earlier notebook left it there, and otherwise makes it
now at a small scale, saying which it did. The cache key includes a hash of nclkit's own source,
so a checkpoint is never reused across code changes.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .data.preparers import PREPARERS
from .data.synthetic import make_synthetic
from .engine.devices import device_name, pick_device
from .engine.trainer import train
from .presets import Config, get_config

__all__ = ["Profile", "device_profile", "cache_dir", "synthetic_manifest", "coverage_root",
           "coverage_manifest", "casia1_root", "casia1_manifest", "course_data", "trained_checkpoint", "source_hash"]


@dataclass
class Profile:
    device: torch.device
    device_name: str
    quick: bool          # small scale: no GPU, or NCLKIT_QUICK=1
    preset: str          # "quick" or "paper"

    def __str__(self) -> str:
        scale = "quick (small model, synthetic data, minutes on a CPU)" if self.quick else "paper (ResNet-101, 512 px)"
        return f"device: {self.device_name} | scale: {scale} | preset: {self.preset}"


def device_profile() -> Profile:
    """GPU if present; the quick scale when there is none or NCLKIT_QUICK=1 is set."""
    quick_env = os.environ.get("NCLKIT_QUICK", "") not in ("", "0", "false", "False")
    device = pick_device("cuda" if torch.cuda.is_available() else "cpu")
    quick = quick_env or device.type != "cuda"
    return Profile(device, device_name(device), quick, "quick" if quick else "paper")


def source_hash() -> str:
    """Short hash of nclkit's Python source: changes whenever the library changes."""
    h = hashlib.sha1()
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()[:10]


def cache_dir() -> Path:
    """Where notebooks share data and checkpoints (NCLKIT_CACHE, else ~/.cache/nclkit/course)."""
    root = Path(os.environ.get("NCLKIT_CACHE", Path.home() / ".cache" / "nclkit" / "course"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def synthetic_manifest(num: int | None = None, size: int = 128, seed: int = 0) -> Path:
    """The built-in synthetic forgery set (made once, then reused). Quick scale: 400 images."""
    num = num or (400 if device_profile().quick else 2000)
    folder = cache_dir() / f"synthetic_n{num}_s{size}_seed{seed}_{source_hash()}"
    manifest = folder / "manifest.jsonl"
    if manifest.is_file():
        print(f"using the synthetic set already made: {manifest}")
        return manifest
    print(f"making the synthetic set ({num} images of {size} px) in {folder} ...")
    return make_synthetic(folder, num=num, seed=seed, size=size)


def _dataset_root(env: str, name: str, required: tuple[str, ...]) -> Path | None:
    """A dataset folder from the environment variable `env`, or shared/data/<name> beside the repository."""
    candidates = [os.environ.get(env)]
    here = Path.cwd().resolve()
    candidates += [str(p / "shared" / "data" / name) for p in [here, *here.parents]]
    for c in candidates:
        if c and all((Path(c) / sub).is_dir() for sub in required):
            return Path(c)
    return None


def coverage_root() -> Path | None:
    """COVERAGE's folder if present: NCLKIT_COVERAGE, or ../shared/data/COVERAGE next to the repository."""
    return _dataset_root("NCLKIT_COVERAGE", "COVERAGE", ("image", "mask"))


def casia1_root() -> Path | None:
    """CASIA v1.0's folder (published layout) if present: NCLKIT_CASIA1, or ../shared/data/CASIA1."""
    return _dataset_root("NCLKIT_CASIA1", "CASIA1", ("Sp", "CASIA 1.0 groundtruth"))


def _prepared(name: str, root: Path | None, **kwargs: Any) -> Path | None:
    if root is None:
        return None
    tag = "_".join([name, *map(str, kwargs.values())])
    out = cache_dir() / tag / "manifest.jsonl"
    if not out.is_file():
        PREPARERS[name](root, out, **kwargs)
    return out


def coverage_manifest() -> Path | None:
    """A COVERAGE manifest (paper split 75/25) when the dataset is on this machine, else None."""
    return _prepared("coverage", coverage_root())


def casia1_manifest(protocol: str = "grouped") -> Path | None:
    """A CASIA v1 manifest (default: nclkit's own split grouped by source photo) when present, else None."""
    return _prepared("casia1", casia1_root(), protocol=protocol)


def course_data(profile: Profile | None = None) -> tuple[Path, str, str]:
    """The data the course trains its main model on (notebooks 05 and 06), its preset, and which it is.

    Real forgeries first: CASIA v1.0 on nclkit's own grouped split where it is on this machine
    (the `real` preset on a CPU, `paper` on a GPU); else, on a GPU, COVERAGE with the paper's
    75/25 split; else the built-in synthetic set with the profile's preset.
    """
    profile = profile or device_profile()
    casia = casia1_manifest()
    if casia is not None:
        return (casia, "real" if profile.quick else "paper",
                "CASIA v1.0: real splices and copy-moves, nclkit's own split grouped by source photo")
    coverage = None if profile.quick else coverage_manifest()
    if coverage is not None:
        return coverage, "paper", "COVERAGE: real copy-moves, the paper's 75/25 split"
    return (synthetic_manifest(), profile.preset,
            "the built-in synthetic forgeries (no real benchmark found: set NCLKIT_CASIA1 to a CASIA v1.0 folder)")


def trained_checkpoint(manifest: str | Path | None = None, variant: str = "full", preset: str | None = None,
                       epochs: int | None = None, **overrides: Any) -> Path:
    """Path to a checkpoint trained with these settings: from the cache if there, else trained now."""
    profile = device_profile()
    cfg: Config = get_config(preset or profile.preset, variant=variant, **overrides)
    if epochs is not None:
        cfg = cfg.replace(epochs=epochs)
    elif profile.quick:
        cfg = cfg.replace(epochs=10)  # about a minute on 2 cores; 3 epochs left the maps untrained
    manifest = Path(manifest) if manifest is not None else synthetic_manifest()
    key = hashlib.sha1(json.dumps([cfg.to_dict(), str(manifest), source_hash()], sort_keys=True).encode()).hexdigest()[:12]
    run = cache_dir() / "runs" / f"{cfg.name}_{variant}_{key}"
    best = run / "best.pt"
    if best.is_file():
        print(f"loaded the checkpoint trained earlier: {best}")
        return best
    print(f"no checkpoint for these settings yet: training {cfg.name}/{variant} for {cfg.epochs} epochs on {profile.device_name} ...")
    # Progress bars on a GPU run; at the quick scale (CI, laptops) the per-epoch prints are enough.
    summary = train(cfg, manifest, run, device=profile.device, progress=not profile.quick)
    if summary["stopped_by_time_budget"]:
        print(f"note: training stopped at its {cfg.max_train_seconds:.0f} s budget after {summary['epochs_done']} "
              f"of {cfg.epochs} epochs (a busy machine?); delete {run} to train again")
    return best
