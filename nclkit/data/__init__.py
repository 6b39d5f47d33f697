"""Data layer: decoding, manifests, joint transforms, the dataset, the synthetic generator, preparers."""
from .errors import DataError
from .io import binarize_mask, load_image, load_mask
from .manifest import SPLITS, Record, read_manifest, validate_manifest, write_manifest

__all__ = [
    "DataError",
    "load_image",
    "load_mask",
    "binarize_mask",
    "Record",
    "SPLITS",
    "write_manifest",
    "read_manifest",
    "validate_manifest",
]
