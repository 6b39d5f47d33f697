"""Pivot network (paper §3.2, Fig. 2b): contour patches -> one hard positive se+ and one hard negative se-.

Two branches of identical structure (1x1 conv -> BN -> ReLU) take the same input, the k contour
patches of one image (k varies from image to image). The paper does not say how a variable k
enters a fixed 1x1 conv; we apply the branch to every cell of every contour patch and average over
the image's cells (docs/interpretation.md, "pivot input of variable k"). The mean is
permutation-invariant and defined for every k >= 1.

The input is any (B, C, H, W) map of cells with a 0/1 weight that selects the contour cells (the
criterion passes the cells of the sampled contour patches as a (B, C, k*P*P, 1) map). A 1x1 conv is
pointwise, so weighting equals running the branch on the selected cells only, without the
host-device synchronisation that boolean indexing (a data-dependent shape) would force. BatchNorm
statistics are taken over the selected cells only (MaskedBatchNorm2d). Inside, cells are rows of a
(..., C) tensor: the 1x1 conv is then one matrix product and every reduction runs along contiguous
rows (on a few hundred cells oneDNN's convolution costs several times a GEMM; benchmarks/README.md).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MaskedBatchNorm2d", "PivotBranch", "PivotNetwork"]


class MaskedBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm over the cells whose weight is 1; falls back to running statistics below 2 cells."""

    def forward(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:  # (B, C, H, W), (B, 1, H, W)
        return self.forward_rows(x.movedim(1, -1), weight.movedim(1, -1)).movedim(-1, 1)

    def forward_rows(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:  # (..., C), (..., 1)
        """The same on cells laid out as rows: statistics over every row whose weight is 1."""
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
    """1x1 conv -> BN -> ReLU (Fig. 2b), BN restricted to the contour cells."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=1, bias=False)
        self.bn = MaskedBatchNorm2d(channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        return self.forward_rows(x.movedim(1, -1), weight.movedim(1, -1)).movedim(-1, 1)

    def forward_rows(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:  # (..., C), (..., 1) -> (..., C)
        y = F.linear(x, self.conv.weight.flatten(1)).float()  # the 1x1 conv; BN in fp32, as autocast runs it
        return self.relu(self.bn.forward_rows(y, weight))


class PivotNetwork(nn.Module):
    """se+ and se- for every image of a batch from its contour cells.

    Args:
        channels: C, the channel count of the tapped feature map (also the output size).

    Shape:
        feature: (B, C, H, W) the tapped encoder feature (its cells).
        is_contour: (B, 1, H, W) bool, the cells that belong to a contour patch.
        Returns se_plus, se_minus: (B, C) and has_contour: (B,) bool. Rows of images without a
        contour cell are zero and must be ignored (has_contour is False there).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.plus = PivotBranch(channels)
        self.minus = PivotBranch(channels)

    def forward(self, feature: torch.Tensor, is_contour: torch.Tensor):
        if is_contour.dim() != 4 or is_contour.shape[1] != 1 or is_contour.shape[2:] != feature.shape[2:]:
            raise ValueError(f"is_contour must be (B, 1, H, W) matching feature {tuple(feature.shape)}, "
                             f"got {tuple(is_contour.shape)}")
        cells = feature.movedim(1, -1).flatten(1, 2)  # (B, H*W, C): a view when the map is channels_last
        w = is_contour.movedim(1, -1).flatten(1, 2).float()  # (B, H*W, 1)
        counts = w.sum((1, 2))  # (B,): k x P x P cells per image
        denom = counts.clamp(min=1).unsqueeze(1)  # (B, 1)
        outputs = []
        for branch in (self.plus, self.minus):
            y = branch.forward_rows(cells, w)  # (B, H*W, C)
            outputs.append((y * w).sum(1) / denom)  # (B, C): mean over the k patches' cells
        return outputs[0], outputs[1], counts > 0
