"""Pivot network (paper §3.2, Fig. 2b): contour patches -> one hard positive se+ and one hard negative se-.

Two branches of identical structure (1x1 conv -> BN -> ReLU) take the same input, the k contour
patches of one image (k varies from image to image). The paper does not say how a variable k
enters a fixed 1x1 conv; we apply the branch to every cell of every contour patch and average over
the image's cells (docs/interpretation.md, "pivot input of variable k"). The mean is
permutation-invariant and defined for every k >= 1.

For speed the branch runs on *all* cells of the batch and a 0/1 weight selects the contour cells:
a 1x1 conv is pointwise, so this equals running it on the selected cells only, and it avoids the
host-device synchronisation that boolean indexing (a data-dependent shape) would force. BatchNorm
statistics are taken over the selected cells only (MaskedBatchNorm1d).
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["MaskedBatchNorm1d", "PivotBranch", "PivotNetwork"]


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm over the rows whose weight is 1; falls back to running statistics below 2 rows."""

    def forward(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:  # (K, C), (K,) -> (K, C)
        if not self.training:
            return super().forward(x)
        w = weight.to(x.dtype).unsqueeze(1)  # (K, 1)
        count = w.sum()
        mean = (w * x).sum(0) / count.clamp(min=1)  # (C,)
        var = (w * (x - mean) ** 2).sum(0) / count.clamp(min=1)  # (C,) biased, as BatchNorm normalises
        enough = count > 1  # a 0-dim bool tensor: decided on the device, no .item()
        use_mean = torch.where(enough, mean, self.running_mean.to(x.dtype))
        use_var = torch.where(enough, var, self.running_var.to(x.dtype))
        with torch.no_grad():
            m = self.momentum
            unbiased = var * count / (count - 1).clamp(min=1)
            self.running_mean.copy_(torch.where(enough, (1 - m) * self.running_mean + m * mean.float(), self.running_mean))
            self.running_var.copy_(torch.where(enough, (1 - m) * self.running_var + m * unbiased.float(), self.running_var))
            self.num_batches_tracked.add_(1)
        return (x - use_mean) / torch.sqrt(use_var + self.eps) * self.weight + self.bias


class PivotBranch(nn.Module):
    """1x1 conv -> BN -> ReLU. On a flat list of cells a 1x1 conv is a Linear layer."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Linear(channels, channels, bias=False)
        self.bn = MaskedBatchNorm1d(channels)
        self.relu = nn.ReLU()

    def forward(self, cells: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:  # (K, C), (K,) -> (K, C)
        return self.relu(self.bn(self.conv(cells), weight))


class PivotNetwork(nn.Module):
    """se+ and se- for every image of a batch from its contour cells.

    Args:
        channels: C, the channel count of the tapped feature map (also the output size).

    Shape:
        cells: (B, L, C) features of every cell of each image.
        is_contour: (B, L) bool, the cells that belong to a contour patch.
        Returns se_plus, se_minus: (B, C) and has_contour: (B,) bool. Rows of images without a
        contour cell are zero and must be ignored (has_contour is False there).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.plus = PivotBranch(channels)
        self.minus = PivotBranch(channels)

    def forward(self, cells: torch.Tensor, is_contour: torch.Tensor):
        b, l, c = cells.shape
        w = is_contour.to(cells.dtype)  # (B, L)
        counts = w.sum(1)  # (B,) k x P x P cells per image
        flat, flat_w = cells.reshape(b * l, c), w.reshape(b * l)  # (B*L, C), (B*L,)
        outputs = []
        for branch in (self.plus, self.minus):
            y = branch(flat, flat_w).reshape(b, l, c)  # (B, L, C)
            pooled = (y * w.unsqueeze(2)).sum(1) / counts.clamp(min=1).unsqueeze(1)  # (B, C): mean over k
            outputs.append(pooled)
        return outputs[0], outputs[1], counts > 0
