"""nclkit: NCL (ICCV 2023) — pre-training-free image manipulation localization, trainable and taught.

The flat API mirrors the paper: patch categories (§3.2), the pivot network, the NCL loss (eq. 7),
the PC loss (eq. 8), the total loss (eq. 9), the DeepLabV3+ model (§3.1) and the training engine.

Names that need PyTorch are imported on first use (PEP 562), and so are the subpackages
(`nclkit.engine`, `nclkit.data` ...): `import nclkit` stays light, so the command line starts, and
answers Ctrl-C, before PyTorch has loaded.
"""
from __future__ import annotations

import importlib
from typing import Any

from .presets import PRESETS, Config, get_config
from .version import __version__

__all__ = [
    "AUTHENTIC", "TAMPERED", "CONTOUR", "categorize_patches", "ncl_terms", "pc_loss", "NCLCriterion",
    "PivotNetwork", "build_model", "get_encoder", "ModelOutput", "PRESETS", "Config", "get_config",
    "metrics", "__version__",
]

# Each lazily served name -> the subpackage it comes from.
_FROM = {
    **dict.fromkeys(("AUTHENTIC", "TAMPERED", "CONTOUR", "categorize_patches", "ncl_terms", "pc_loss", "NCLCriterion",
                     "PivotNetwork"), "ncl"),
    **dict.fromkeys(("build_model", "get_encoder", "ModelOutput"), "models"),
}
_SUBMODULES = ("metrics", "data", "models", "ncl", "engine", "viz", "course", "exercises", "cli")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    elif name in _FROM:
        value = getattr(importlib.import_module(f"{__name__}.{_FROM[name]}"), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # served once; later lookups find it here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_SUBMODULES))
