"""Predict your own image files: a probability PNG and an overlay PNG for each (`nclkit predict`).

The PNGs it writes carry a mark (OUTPUT_MARK), and are skipped when a later run meets them among its
inputs (a run whose --out is the folder it predicts, run twice): a map is never predicted as a photo.
Each PNG is written whole or not at all (nclkit.atomic): a run killed midway leaves complete files
and at most a `.tmp`, which the next run removes; running it again gives the same files.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from torch import nn

from ..atomic import TMP_SUFFIX, write_atomic
from ..data import DataError, load_image
from ..data.io import IMAGE_SUFFIXES
from ..engine.predict import predict_probability
from .overlays import overlay

__all__ = ["predict_files", "PredictionSummary", "collect_image_paths", "is_prediction_output", "OUTPUT_MARK"]

# The PNG text entry every file predict_files writes carries.
OUTPUT_MARK = ("Software", "nclkit predict")
# The names it gives them: inside its output folder, files so named count as its outputs even unmarked.
_OUTPUT_ENDINGS = ("_prob.png", "_overlay.png")


def collect_image_paths(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand folders (not recursively) into their image files, sorted; files are kept as given."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES))
        else:
            out.append(p)  # a missing or unreadable file fails later with its own DataError
    return out


def is_prediction_output(path: Path, out_dir: str | os.PathLike | None = None) -> bool:
    """True for a PNG that predict_files wrote: it carries OUTPUT_MARK, or lies in `out_dir` named as its outputs."""
    if path.suffix.lower() != ".png" or not path.is_file():
        return False
    if out_dir is not None and path.name.endswith(_OUTPUT_ENDINGS) and path.parent.resolve() == Path(out_dir).resolve():
        return True
    try:
        with Image.open(path) as im:
            return im.info.get(OUTPUT_MARK[0]) == OUTPUT_MARK[1]
    except Exception:  # noqa: BLE001 - not a readable PNG: predicting it will say why
        return False


@dataclass
class PredictionSummary:
    """What `predict_files` wrote and which inputs failed (path, reason)."""

    written: list[tuple[Path, Path, Path]] = field(default_factory=list)  # (input, prob png, overlay png)
    failures: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # earlier outputs of predict_files among the inputs

    @property
    def ok(self) -> bool:
        return not self.failures

    def __str__(self) -> str:
        return self.report()

    def report(self) -> str:
        lines = [f"{len(self.written)} image(s) predicted, {len(self.failures)} failed"
                 + (f", {len(self.skipped)} earlier output(s) of nclkit predict skipped" if self.skipped else "")]
        lines += [f"  FAILED {path}: {reason}" for path, reason in self.failures]
        return "\n".join(lines)


def _unique_stem(path: Path, used: set[str]) -> str:
    stem, n = path.stem, 2
    while stem in used:  # same name in two folders: keep both outputs
        stem, n = f"{path.stem}_{n}", n + 1
    used.add(stem)
    return stem


def _save_png(image: Image.Image, path: Path, mark: PngInfo) -> None:
    write_atomic(path, lambda fh: image.save(fh, format="PNG", pnginfo=mark))


def predict_files(
    model: nn.Module,
    paths: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    threshold: float = 0.5,
    device: str | torch.device | None = None,
    max_side: int | None = None,
) -> PredictionSummary:
    """Predict every image of ``paths`` (files or folders, any format `load_image` reads).

    Writes ``<stem>_prob.png`` (probability as grey 0-255) and ``<stem>_overlay.png`` (pixels with
    ``prob > threshold`` tinted red) into ``out_dir``, each marked as its output (OUTPUT_MARK). A file
    that cannot be read is recorded with its DataError message and skipped; the others are still
    predicted. Earlier outputs among the inputs (`is_prediction_output`) are skipped and counted.

    Returns:
        PredictionSummary; ``.report()`` lists the failures at the end, ``.ok`` is False if any.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold {threshold:g}; expected a probability in [0, 1]")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for ending in _OUTPUT_ENDINGS:  # left by a run killed mid-write: never a finished map
        for stale in out.glob(f"*{ending}{TMP_SUFFIX}"):
            stale.unlink(missing_ok=True)
    summary = PredictionSummary()
    used: set[str] = set()
    mark = PngInfo()
    mark.add_text(*OUTPUT_MARK)
    for path in collect_image_paths(paths):
        if is_prediction_output(path, out):
            summary.skipped.append(path)
            continue
        try:
            image = load_image(path)
        except DataError as err:
            summary.failures.append((path, str(err)))
            continue
        prob = predict_probability(model, image, device=device, max_side=max_side)
        stem = _unique_stem(path, used)
        prob_path, overlay_path = out / f"{stem}_prob.png", out / f"{stem}_overlay.png"
        _save_png(Image.fromarray(np.rint(prob * 255).astype(np.uint8)), prob_path, mark)
        _save_png(Image.fromarray(overlay(image, prob > threshold)), overlay_path, mark)
        summary.written.append((path, prob_path, overlay_path))
    return summary
