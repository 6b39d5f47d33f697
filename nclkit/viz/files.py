"""Predict your own image files: a probability PNG and an overlay PNG for each (`nclkit predict`)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..data import DataError, load_image
from ..data.io import IMAGE_SUFFIXES
from ..engine.predict import predict_probability
from .overlays import overlay

__all__ = ["predict_files", "PredictionSummary", "collect_image_paths"]


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


@dataclass
class PredictionSummary:
    """What `predict_files` wrote and which inputs failed (path, reason)."""

    written: list[tuple[Path, Path, Path]] = field(default_factory=list)  # (input, prob png, overlay png)
    failures: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def __str__(self) -> str:
        return self.report()

    def report(self) -> str:
        lines = [f"{len(self.written)} image(s) predicted, {len(self.failures)} failed"]
        lines += [f"  FAILED {path}: {reason}" for path, reason in self.failures]
        return "\n".join(lines)


def _unique_stem(path: Path, used: set[str]) -> str:
    stem, n = path.stem, 2
    while stem in used:  # same name in two folders: keep both outputs
        stem, n = f"{path.stem}_{n}", n + 1
    used.add(stem)
    return stem


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
    ``prob > threshold`` tinted red) into ``out_dir``. A file that cannot be read is recorded with
    its DataError message and skipped; the others are still predicted.

    Returns:
        PredictionSummary; ``.report()`` lists the failures at the end, ``.ok`` is False if any.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold {threshold:g}; expected a probability in [0, 1]")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = PredictionSummary()
    used: set[str] = set()
    for path in collect_image_paths(paths):
        try:
            image = load_image(path)
        except DataError as err:
            summary.failures.append((path, str(err)))
            continue
        prob = predict_probability(model, image, device=device, max_side=max_side)
        stem = _unique_stem(path, used)
        prob_path, overlay_path = out / f"{stem}_prob.png", out / f"{stem}_overlay.png"
        Image.fromarray(np.rint(prob * 255).astype(np.uint8)).save(prob_path)
        Image.fromarray(overlay(image, prob > threshold)).save(overlay_path)
        summary.written.append((path, prob_path, overlay_path))
    return summary
