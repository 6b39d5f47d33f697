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

__all__ = ["save_prediction_figure", "compare_maps"]


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


def compare_maps(models: dict[str, nn.Module], records: Sequence[Any], device: str | torch.device | None = None,
                 own_range: bool = True):
    """The same photos through several models, side by side: a row per record with the image, its ground
    truth and each model's probability map on one grey scale (0 black, 1 white; a colour bar beside them),
    then, with `own_range`, each map stretched to its own minimum..maximum. A map whose values all sit near
    one probability looks uniform on the common scale; stretched, it shows which pixels the model ranks
    highest, which is all that its AUC measures. Returns the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    records, names = list(records), list(models)
    if not records or not names:
        raise ValueError("compare_maps() needs at least one model and one record")
    cols = 2 + len(names) * (2 if own_range else 1)
    fig, axes = plt.subplots(len(records), cols, figsize=(1.9 * cols, 1.55 * len(records) + 0.5),
                             layout="constrained", squeeze=False)
    for row, rec in zip(axes, records):
        image, mask = load_sample(rec)
        row[0].imshow(image)
        row[0].set_xlabel(Path(str(rec.id)).name[-28:], fontsize=6)
        row[1].imshow(image[..., 0] * 0 if mask is None else mask, cmap="gray", vmin=0, vmax=1)
        for k, name in enumerate(names):
            prob = predict_probability(models[name], image, device=device)
            shared = row[2 + k].imshow(prob, cmap="gray", vmin=0, vmax=1)
            if own_range:
                row[2 + len(names) + k].imshow(prob, cmap="gray")
                row[2 + len(names) + k].set_xlabel(f"{prob.min():.2f}..{prob.max():.2f}", fontsize=6)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    titles = ["image", "ground truth", *names, *(f"{n}\n(own range)" for n in names if own_range)]
    for ax, title in zip(axes[0], titles):
        ax.set_title(title, fontsize=8)
    fig.colorbar(shared, ax=axes[:, 1:2 + len(names)], shrink=0.6, location="bottom",
                 label="tamper probability (and mask), one scale")
    return fig
