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
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .data.preparers import PREPARERS
from .data.synthetic import make_synthetic
from .engine.devices import device_name, pick_device
from .engine.runs import TrainedRun, ensure_trained, run_progress
from .presets import QUICK_EPOCHS, QUICK_REAL_EPOCHS, Config, get_config

__all__ = ["Profile", "device_profile", "GPU_IMAGES_PER_S", "gpu_class", "expected_minutes", "training_images",
           "expected_time", "course_gpu_minutes", "course_gpu_run_minutes", "in_colab", "cache_dir",
           "synthetic_manifest", "coverage_root",
           "coverage_manifest", "casia1_root", "casia1_manifest", "course_data", "trained_checkpoint",
           "train_or_reuse", "TrainedRun", "run_progress", "source_hash", "cache_on_drive", "disconnect_note",
           "measured"]


@dataclass
class Profile:
    device: torch.device
    device_name: str
    quick: bool          # small scale: no GPU, or NCLKIT_QUICK=1
    preset: str          # "quick" or "course_gpu" (nclkit.presets: the paper's recipe cut to a Colab T4)

    def __str__(self) -> str:
        scale = ("quick (small models, minutes on a CPU)" if self.quick
                 else "course GPU (the paper's recipe on ResNet-50, output stride 16, 256 px crops)")
        return f"device: {self.device_name} | scale: {scale} | default preset: {self.preset}"


def in_colab() -> bool:
    """True inside a Google Colab runtime (where the course may fetch data and cache on Drive)."""
    return "google.colab" in sys.modules


def device_profile() -> Profile:
    """GPU if present; the quick scale when there is none or NCLKIT_QUICK=1 is set.

    On a GPU the course trains with the `course_gpu` preset, sized so that all of its GPU trainings
    take about an hour on a free Colab T4 (see `course_gpu_minutes`).
    """
    quick_env = os.environ.get("NCLKIT_QUICK", "") not in ("", "0", "false", "False")
    device = pick_device()
    quick = quick_env or device.type != "cuda"
    return Profile(device, device_name(device), quick, "quick" if quick else "course_gpu")


# Training images per second of the course GPU recipe (ResNet-50, OS 16, 256 px, batch 16, mixed
# precision), per GPU class. ESTIMATES, not measurements of this recipe. Derivation:
#   measured: the `paper` preset (ResNet-101, OS 8, 512 px, batch 4, bf16 + channels_last) trains at
#             ~82 img/s on an H200 with this code;
#   OS 16 instead of 8: ~1.5x (measured on the H200 for ResNet-101)      -> ~123 img/s
#   ResNet-50 instead of ResNet-101: ~1.4x (stage 4 of 6 blocks, not 23) -> ~172 img/s
#   256 px instead of 512 px: 1/4 of the pixels, counted as 3x (small crops use a GPU less well) -> ~520 img/s
#   H100 ~ H200 (same compute; the H200 has more memory bandwidth);
#   A100: about half an H100 on convnets in mixed precision (312 vs 990 dense bf16 TFLOPS, partly memory-bound);
#   T4: ~65 fp16 tensor TFLOPS, in practice 8-12x slower than an H100-class GPU on such convnets: 12x here.
GPU_IMAGES_PER_S: dict[str, float] = {"H100": 520.0, "A100": 260.0, "T4": 43.0}
# Swin-T (notebook 08) against the ResNet-50 recipe: about as many FLOPs, slower kernels (attention,
# layer norms): counted 1.5x slower.
SWIN_SLOWDOWN = 1.5
# Validation predicts whole photos without gradients: counted at 3x the training rate.
INFERENCE_SPEEDUP = 3.0


def gpu_class(name: str) -> str | None:
    """"T4", "A100" or "H100" for a GPU's name (an H200 counts as an H100), None for another GPU."""
    for key, cls in (("T4", "T4"), ("A100", "A100"), ("H100", "H100"), ("H200", "H100")):
        if key in name:
            return cls
    return None


def expected_minutes(images: int, epochs: int, gpu: str, val_images: int = 0, val_every: int = 1,
                     slowdown: float = 1.0) -> float:
    """Estimated minutes of one run: images x epochs / img/s of `gpu` (GPU_IMAGES_PER_S), plus validation.

    An estimate from the throughput table, not a measurement; `slowdown` scales the time (e.g.
    SWIN_SLOWDOWN for the Swin-T encoder).
    """
    rate = GPU_IMAGES_PER_S[gpu] / slowdown
    validations = epochs // max(val_every, 1)
    return (images * epochs + val_images * validations / INFERENCE_SPEEDUP) / rate / 60


def training_images(manifest: str | Path, cfg: Config) -> tuple[int, int]:
    """(training images per epoch, forgeries included, and tampered validation images) of `manifest` as
    `cfg` trains on it."""
    from .data import read_manifest
    from .engine.trainer import epoch_records

    records = read_manifest(manifest)
    train_n = len(epoch_records(cfg, records)) + cfg.forged
    val_n = sum(r.split == "val" and r.label == 1 for r in records)
    return train_n, val_n


def expected_time(manifest: str | Path, cfg: Config, runs: int = 1, slowdown: float = 1.0,
                  profile: Profile | None = None) -> str:
    """One line: the estimated training time of `runs` runs of `cfg` on `manifest` on a T4, an A100 and
    an H100, and on this GPU's class when it is one of them. An estimate, not a measurement."""
    images, val_images = training_images(manifest, cfg)
    minutes = {gpu: runs * expected_minutes(images, cfg.epochs, gpu, val_images, cfg.val_every, slowdown)
               for gpu in GPU_IMAGES_PER_S}
    line = (f"estimate (from a throughput table, not a measurement) for {runs} run(s) of {cfg.epochs} epochs on "
            f"{images} images: " + ", ".join(f"{gpu} ~{m:.1f} min" for gpu, m in minutes.items()))
    here = gpu_class(profile.device_name) if profile is not None and not profile.quick else None
    if here is not None:
        line += f"; this GPU ({profile.device_name}) ~{minutes[here]:.1f} min"
    return line


# CASIA v1 on nclkit's grouped split: 643 / 92 / 184 tampered photos (train / val / test).
CASIA1_TAMPERED = {"train": 643, "val": 92, "test": 184}
# The course's GPU trainings on CASIA v1 (the same run is reused across notebooks): notebook, what, slowdown.
COURSE_GPU_RUNS = [
    ("05", "Base+Pivot+PC (also 06, 07, 08's ResNet)", 1.0),
    ("05", "Base (also 07)", 1.0),
    ("07", "Base+Pivot", 1.0),
    ("07", "Base+Pivot+PC with omega = 0 (section 6)", 1.0),
    ("07", "NCL, pivot after block 2", 1.0),
    ("07", "NCL, pivot after block 5", 1.0),
    ("08", "Swin-T + NCL", SWIN_SLOWDOWN),
]


# Notebooks that use notebook 05's model. On Colab each notebook runs in a runtime of its own: with the
# course cache on Google Drive they reuse the model, without it each trains it again.
USES_MAIN_MODEL = ("06", "07", "08", "09")
# Notebooks that also use notebook 05's Base run (and train it again without Drive).
USES_BASE_MODEL = ("07",)


def course_gpu_run_minutes(gpu: str = "T4") -> float:
    """Estimated minutes of one course GPU run on CASIA v1 (a ResNet run of COURSE_GPU_RUNS)."""
    cfg = get_config("course_gpu")
    return expected_minutes(CASIA1_TAMPERED["train"], cfg.epochs, gpu, CASIA1_TAMPERED["val"], cfg.val_every)


def course_gpu_minutes(gpu: str = "T4", drive: bool = True) -> dict[str, float]:
    """Estimated minutes of each notebook's GPU trainings on CASIA v1 with the course GPU recipe, and "total".

    drive=False: each notebook in a runtime of its own with no shared cache (Colab without Google Drive),
    so every notebook in USES_MAIN_MODEL also retrains notebook 05's model (and those in USES_BASE_MODEL its Base).
    """
    cfg = get_config("course_gpu")
    per_notebook: dict[str, float] = {}
    for notebook, _, slowdown in COURSE_GPU_RUNS:
        m = expected_minutes(CASIA1_TAMPERED["train"], cfg.epochs, gpu, CASIA1_TAMPERED["val"], cfg.val_every, slowdown)
        per_notebook[notebook] = per_notebook.get(notebook, 0.0) + m
    if not drive:
        for notebook in (*USES_MAIN_MODEL, *USES_BASE_MODEL):
            per_notebook[notebook] = per_notebook.get(notebook, 0.0) + course_gpu_run_minutes(gpu)
    per_notebook["total"] = sum(per_notebook.values())
    return per_notebook


def source_hash() -> str:
    """Short hash of nclkit's Python source: changes whenever the library changes."""
    h = hashlib.sha1()
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()[:10]


# Where Colab mounts Google Drive when the learner asks it to (nclkit never mounts it).
COLAB_DRIVE = Path("/content/drive/MyDrive")


def cache_dir() -> Path:
    """Where notebooks share data and checkpoints.

    NCLKIT_CACHE if set; else, on Colab with Google Drive mounted, MyDrive/nclkit_cache (it survives
    runtime resets); else ~/.cache/nclkit/course.
    """
    if os.environ.get("NCLKIT_CACHE"):
        root = Path(os.environ["NCLKIT_CACHE"])
    elif in_colab() and COLAB_DRIVE.is_dir():
        root = COLAB_DRIVE / "nclkit_cache"
    else:
        root = Path.home() / ".cache" / "nclkit" / "course"
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
    """A dataset folder: the environment variable `env`, shared/data/<name> beside the repository, or the cache's."""
    candidates = [os.environ.get(env)]
    here = Path.cwd().resolve()
    candidates += [str(p / "shared" / "data" / name) for p in [here, *here.parents]]
    candidates.append(str(cache_dir() / name))  # where the course fetches a benchmark (`nclkit fetch`)
    for c in candidates:
        if c and all((Path(c) / sub).is_dir() for sub in required):
            return Path(c)
    return None


def coverage_root() -> Path | None:
    """COVERAGE's folder if present: NCLKIT_COVERAGE, or ../shared/data/COVERAGE next to the repository."""
    return _dataset_root("NCLKIT_COVERAGE", "COVERAGE", ("image", "mask"))


def casia1_root(fetch_on_colab: bool = False) -> Path | None:
    """CASIA v1.0's folder (published layout) if present: NCLKIT_CASIA1, ../shared/data/CASIA1, or the cache's.

    With fetch_on_colab, on Colab only, a missing CASIA v1 is downloaded into the course cache and checked
    file by file (`nclkit fetch casia1`, about 80 MB); nothing is ever downloaded anywhere else.
    """
    root = _dataset_root("NCLKIT_CASIA1", "CASIA1", ("Sp", "CASIA 1.0 groundtruth"))
    if root is None and fetch_on_colab and in_colab():
        from .data.errors import DataError
        from .data.fetch import fetch

        print("CASIA v1.0 is not in this runtime: fetching it from its public copies into the course cache ...")
        try:
            root = fetch("casia1", cache_dir() / "CASIA1")
        except DataError as err:  # offline, a moved copy, a changed file: the course goes on without it
            print(f"could not fetch CASIA v1.0 ({err}); the course uses the built-in synthetic set instead")
    return root


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


def casia1_manifest(protocol: str = "grouped", fetch_on_colab: bool = False) -> Path | None:
    """A CASIA v1 manifest (default: nclkit's own split grouped by source photo) when present, else None."""
    return _prepared("casia1", casia1_root(fetch_on_colab), protocol=protocol)


def course_data(profile: Profile | None = None) -> tuple[Path, str, str]:
    """The data the course trains its main model on (notebooks 05 and 06), its preset, and which it is.

    Real forgeries first: CASIA v1.0 on nclkit's own grouped split where it is on this machine, or on
    Colab, where it is fetched when missing (the `real` preset on a CPU, the course GPU recipe on a
    GPU); else, on a GPU, COVERAGE with the paper's 75/25 split; else the built-in synthetic set with
    the profile's preset (on a GPU cropped at its 128 px: a 256 px crop would be 3/4 padding).
    The preset is a name, or on a GPU's synthetic fallback a Config: both go to `train_or_reuse`.
    """
    profile = profile or device_profile()
    casia = casia1_manifest(fetch_on_colab=True)
    if casia is not None:
        return (casia, "real" if profile.quick else profile.preset,
                "CASIA v1.0: real splices and copy-moves, nclkit's own split grouped by source photo")
    coverage = None if profile.quick else coverage_manifest()
    if coverage is not None:
        return coverage, profile.preset, "COVERAGE: real copy-moves, the paper's 75/25 split"
    preset: str | Config = profile.preset if profile.quick else get_config("course_gpu", crop_size=128)
    wanted = ("set NCLKIT_CASIA1 to a CASIA v1.0 folder" if profile.quick
              else "set NCLKIT_CASIA1 to a CASIA v1.0 folder, or NCLKIT_COVERAGE to a COVERAGE folder")
    return synthetic_manifest(), preset, f"the built-in synthetic forgeries (no real benchmark found: {wanted})"


def train_or_reuse(manifest: str | Path | None = None, variant: str = "full", preset: str | Config | None = None,
                   epochs: int | None = None, progress: bool | None = None, **overrides: Any) -> TrainedRun:
    """A run trained with these settings: reused if complete, else resumed from its last epoch, else trained now.

    The run folder's name hashes the config, the manifest and nclkit's source, so only a run with
    exactly these settings is ever reused or resumed (nclkit.engine.runs.ensure_trained).
    progress: a progress bar per epoch; None = on a GPU only (at the quick scale the per-epoch prints suffice).
    """
    profile = device_profile()
    cfg = get_config(preset or profile.preset, variant=variant, **overrides)
    if epochs is not None:
        cfg = cfg.replace(epochs=epochs)
    elif profile.quick:
        cfg = cfg.replace(epochs=QUICK_REAL_EPOCHS if cfg.name == "real" else QUICK_EPOCHS)
    manifest = Path(manifest) if manifest is not None else synthetic_manifest()
    key = hashlib.sha1(json.dumps([cfg.to_dict(), str(manifest), source_hash()], sort_keys=True).encode()).hexdigest()[:12]
    run = cache_dir() / "runs" / f"{cfg.name}_{variant}_{key}"
    note = disconnect_note(run, cfg.epochs)
    if note:
        print(note)
    # Progress bars on a GPU run; at the quick scale (CI, laptops) the per-epoch prints unless asked.
    progress = not profile.quick if progress is None else progress
    return ensure_trained(cfg, manifest, run, device=profile.device, progress=progress)


def cache_on_drive(root: Path | None = None) -> bool:
    """True where the course cache lives on the mounted Google Drive (it outlives the Colab runtime)."""
    root = (root or cache_dir()).resolve()
    return COLAB_DRIVE.resolve() in (root, *root.parents)


def disconnect_note(run: Path, epochs: int) -> str | None:
    """On Colab, where the cache is not on Google Drive: one line on what a disconnect loses, None elsewhere.

    A Colab runtime that disconnects (idle time, usage limits) takes its disk with it. With the cache on
    Drive (USE_DRIVE), running the training cell again resumes from the last finished epoch; without it,
    every epoch trained in the lost runtime is gone, and the run starts again from epoch 1.
    """
    if not in_colab() or os.environ.get("NCLKIT_CACHE") or cache_on_drive():
        return None
    state, done = run_progress(run, epochs)
    if state == "complete":
        return None
    keep = ("tick USE_DRIVE in the first cell (and run the notebook again) to keep the checkpoints on Google Drive, "
            "where running this cell again resumes from the last finished epoch")
    if state == "interrupted":
        return (f"the course cache is in this Colab runtime, not on Google Drive: the {done} of {epochs} epochs "
                f"done so far are kept only while this runtime lives; {keep}")
    return ("the course cache is in this Colab runtime, not on Google Drive: if an earlier runtime trained this model "
            f"and disconnected, its epochs were lost with it, and training starts again from epoch 1 of {epochs}; "
            f"a disconnect now would lose this run too; {keep}")


def trained_checkpoint(manifest: str | Path | None = None, variant: str = "full", preset: str | Config | None = None,
                       epochs: int | None = None, progress: bool | None = None, **overrides: Any) -> Path:
    """Path to best.pt of a run with these settings: reused if complete, else resumed, else trained now.

    It prints which of the three happened (see `train_or_reuse`).
    """
    return train_or_reuse(manifest, variant, preset, epochs, progress, **overrides).checkpoint


def measured(name: str = "ncl_diagnosis_casia1_real") -> dict[str, Any]:
    """A measured table that the course quotes, as its script wrote it (nclkit/reference/NAME.json).

    The course trains one seed of each model in minutes; what three seeds of the longer runs gave, with
    the command, the device and every run, travels with nclkit, so that a notebook prints those
    numbers from the file instead of repeating them in its text (on Colab too, where no repository is).
    """
    path = Path(__file__).resolve().parent / "reference" / f"{name}.json"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.json"))
        raise FileNotFoundError(f"no measured table {name!r} in {path.parent}; known: {known}")
    return json.loads(path.read_text())
