"""nclkit: NCL (ICCV 2023) — pre-training-free image manipulation localization, trainable and taught."""
from .ncl import (
    AUTHENTIC, CONTOUR, TAMPERED, NCLCriterion, PivotNetwork, categorize_patches, ncl_terms, pc_loss,
)
from .presets import PRESETS, Config, get_config

__version__ = "0.1.0"

__all__ = [
    "AUTHENTIC", "TAMPERED", "CONTOUR", "categorize_patches", "ncl_terms", "pc_loss", "NCLCriterion",
    "PivotNetwork", "PRESETS", "Config", "get_config", "build_model", "__version__",
]


def __getattr__(name: str):
    # build_model lives in nclkit.models, which imports torchvision; load it on first use.
    if name == "build_model":
        from .models import build_model
        return build_model
    raise AttributeError(f"module 'nclkit' has no attribute {name!r}")
