"""Pivot network (paper §3.2, Fig. 2b): contour patches -> one hard positive se+ and one hard negative se-.

Two branches of identical structure (1x1 conv -> BN -> ReLU) take the same input, the k contour
patches of one image (k varies from image to image). The paper does not say how a variable k
enters a fixed 1x1 conv; we apply the branch to every cell of every contour patch and average over
the image's cells (docs/interpretation.md, "pivot input of variable k"). The mean is
permutation-invariant and defined for every k >= 1.

Cells are rows: the input is (B, K, C), the K cells the NCL loss gathered for each image, with a
(B, K) 0/1 weight that marks the real ones (images have different k; the rest is padding). A 1x1
conv on rows is one matrix product, and every reduction runs along contiguous rows (on a few hundred
cells oneDNN's convolution costs several times a GEMM; benchmarks/README.md). Weighting instead of
boolean indexing keeps shapes fixed, so nothing waits on the device. BatchNorm statistics are taken
over the weighted cells only (MaskedBatchNorm).

Why the pivot lives here, on the model, and not inside the loss: its weights are trained with the
network's and must travel with them, so one `state_dict`, one optimiser parameter list and one DDP
module cover everything; the model exposes it plainly as `model.pivot`, `forward` never calls it
(prediction does not need it) and the NCL loss (nclkit.ncl) receives it from there, with the map it
reads (`ModelOutput.pivot_feature`).
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["MaskedBatchNorm", "PivotBranch", "PivotNetwork"]


class MaskedBatchNorm(nn.BatchNorm1d):
    """BatchNorm over the rows whose weight is 1; falls back to running statistics below 2 rows.

    Shape: x (..., C), weight (..., 1) in {0, 1} -> (..., C).
    """

    def forward(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        mean, var = self._masked_stats(x, weight) if self.training else (self.running_mean, self.running_var)
        return (x - mean) * (self.weight * torch.rsqrt(var + self.eps)) + self.bias

    def _masked_stats(self, x: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and biased variance (C,) over the weighted rows, running ones below 2 rows; updates the running ones."""
        dims = tuple(range(x.dim() - 1))
        w = weight.to(x.dtype)  # fp32 in the pivot
        count = w.sum()
        denom = count.clamp(min=1)
        mean = (w * x).sum(dims) / denom  # (C,)
        var = (w * (x - mean) ** 2).sum(dims) / denom  # (C,) biased, as BatchNorm normalises
        enough = count > 1  # a 0-dim bool tensor: decided on the device, no .item()
        use_mean = torch.where(enough, mean, self.running_mean.to(x.dtype))
        use_var = torch.where(enough, var, self.running_var.to(x.dtype))
        with torch.no_grad():
            m = self.momentum
            unbiased = var.float() * count / (count - 1).clamp(min=1)
            self.running_mean.copy_(torch.where(enough, (1 - m) * self.running_mean + m * mean.float(), self.running_mean))
            self.running_var.copy_(torch.where(enough, (1 - m) * self.running_var + m * unbiased, self.running_var))
            self.num_batches_tracked.add_(1)
        return use_mean, use_var


class PivotBranch(nn.Module):
    """1x1 conv -> BN -> ReLU (Fig. 2b) on rows of cells; BN restricted to the contour cells.

    The 1x1 conv is a bias-free linear map of the channels (`conv`, a (C, C) weight).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Linear(channels, channels, bias=False)
        self.bn = MaskedBatchNorm(channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:  # (..., C), (..., 1) -> (..., C)
        y = self.conv(x).float()  # BN in fp32, as autocast runs it
        return self.relu(self.bn(y, weight))


class PivotNetwork(nn.Module):
    """se+ and se- for every image of a batch from its contour cells.

    Args:
        channels: C, the channel count of the tapped feature map (also the output size).

    Shape:
        cells: (B, K, C) cell features, one row per cell.
        weight: (B, K) bool or 0/1, the rows that are contour cells (the others are padding).
        Returns se_plus, se_minus: (B, C) and has_contour: (B,) bool. Rows of images without a
        contour cell are zero and must be ignored (has_contour is False there).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.plus = PivotBranch(channels)
        self.minus = PivotBranch(channels)

    def forward(self, cells: torch.Tensor, weight: torch.Tensor):
        if cells.dim() != 3 or weight.shape != cells.shape[:2]:
            raise ValueError(f"expected cells (B, K, C) and weight (B, K), got {tuple(cells.shape)} and "
                             f"{tuple(weight.shape)}")
        w = weight.float().unsqueeze(2)  # (B, K, 1)
        counts = w.sum((1, 2))  # (B,): k x P x P cells per image
        denom = counts.clamp(min=1).unsqueeze(1)  # (B, 1)
        outputs = []
        for branch in (self.plus, self.minus):
            y = branch(cells, w)  # (B, K, C)
            outputs.append((y * w).sum(1) / denom)  # (B, C): mean over the k patches' cells
        return outputs[0], outputs[1], counts > 0
