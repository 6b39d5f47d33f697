"""The NCL method (paper §3.2-3.4): patch categories, sampling, the NCL loss (eq. 7), PC loss (eq. 8), total (eq. 9).

The pivot network is a layer of the model (nclkit.models.pivot); it is re-exported here because
eq. 7 is where it is used. Everything here takes plain values (tau, patch_size, ...), never a Config:
`NCLCriterion.from_config` is the one place a Config is read (nclkit.ncl.total_loss says why).
"""
from ..models.pivot import MaskedBatchNorm, PivotBranch, PivotNetwork
from .categorize import AUTHENTIC, CONTOUR, IGNORE, TAMPERED, categorize_patches, cell_fraction, patch_fraction
from .ncl_loss import batch_ncl_loss, ncl_terms, ncl_terms_batched
from .pc_loss import bce_loss, pc_loss, resize_bool, shrink_mask
from .sampling import patch_categories, patch_cells, sample_patches
from .total_loss import LOSS_VARIANTS, LossOutput, NCLCriterion

__all__ = [
    "AUTHENTIC", "TAMPERED", "CONTOUR", "IGNORE", "categorize_patches", "cell_fraction", "patch_fraction",
    "LOSS_VARIANTS", "LossOutput", "NCLCriterion", "patch_categories", "patch_cells", "sample_patches",
    "batch_ncl_loss", "ncl_terms", "ncl_terms_batched", "bce_loss", "pc_loss", "resize_bool", "shrink_mask",
    "MaskedBatchNorm", "PivotBranch", "PivotNetwork",
]
