"""nclkit: NCL (ICCV 2023) — pre-training-free image manipulation localization, trainable and taught.

The flat API mirrors the paper: patch categories (§3.2), the pivot network, the NCL loss (eq. 7),
the PC loss (eq. 8), the total loss (eq. 9), the DeepLabV3+ model (§3.1) and the training engine.
"""
from . import metrics
from .models import ModelOutput, build_model, get_encoder
from .ncl import (
    AUTHENTIC, CONTOUR, TAMPERED, NCLCriterion, PivotNetwork, categorize_patches, ncl_terms, pc_loss,
)
from .presets import PRESETS, Config, get_config
from .version import __version__

__all__ = [
    "AUTHENTIC", "TAMPERED", "CONTOUR", "categorize_patches", "ncl_terms", "pc_loss", "NCLCriterion",
    "PivotNetwork", "build_model", "get_encoder", "ModelOutput", "PRESETS", "Config", "get_config",
    "metrics", "__version__",
]
