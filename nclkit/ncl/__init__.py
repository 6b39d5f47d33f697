"""The NCL method (paper §3.2-3.4): patch categories, pivot network, NCL loss (eq. 7), PC loss (eq. 8), total (eq. 9)."""
from .categorize import AUTHENTIC, CONTOUR, IGNORE, TAMPERED, categorize_patches, cell_fraction, patch_fraction
from .criterion import LossOutput, NCLCriterion, patch_categories, patch_cells, sample_patches
from .ncl_loss import ncl_terms, ncl_terms_batched
from .pc_loss import bce_loss, pc_loss, resize_bool, shrink_mask
from .pivot import MaskedBatchNorm2d, PivotBranch, PivotNetwork

__all__ = [
    "AUTHENTIC", "TAMPERED", "CONTOUR", "IGNORE", "categorize_patches", "cell_fraction", "patch_fraction",
    "LossOutput", "NCLCriterion", "patch_categories", "patch_cells", "sample_patches", "ncl_terms", "ncl_terms_batched",
    "bce_loss", "pc_loss", "resize_bool", "shrink_mask", "MaskedBatchNorm2d", "PivotBranch", "PivotNetwork",
]
