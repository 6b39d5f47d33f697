"""Figures of a model's predictions, saved to files (reports, `nclkit eval --figure`)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..data import load_sample
from ..engine.predict import predict_probability
from .overlays import show_samples

__all__ = ["save_prediction_figure"]


def save_prediction_figure(
    model: nn.Module,
    records: Sequence[Any],
    path: str | os.PathLike,
    n: int = 6,
    device: str | torch.device | None = None,
    max_side: int | None = None,
) -> Path:
    """Save a grid of the first ``n`` records: image / ground truth / probability / overlay."""
    records = list(records)[:n]
    if not records:
        raise ValueError("save_prediction_figure() got no records")
    images, masks, probs = [], [], []
    for rec in records:
        image, mask = load_sample(rec)
        images.append(image)
        masks.append(mask)
        probs.append(predict_probability(model, image, device=device, max_side=max_side))
    fig = show_samples(images, masks, probs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
