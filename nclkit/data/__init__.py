"""Data layer: decoding, manifests, joint transforms, the dataset, the synthetic generator, preparers.

See docs/data.md for the manifest format and each preparer's expected layout.
"""
from .dataset import ManifestDataset
from .errors import DataError
from .io import binarize_mask, image_hw, load_image, load_mask, load_sample
from .manifest import PROTOCOLS, SPLITS, Record, describe_data, read_manifest, validate_manifest, write_manifest
from .preparers import PREPARERS
from .scan import scan_records
from .synthetic import make_synthetic
from .transforms import MEAN, STD, JointTransform, build_transforms, denormalize, to_tensor_image

__all__ = [
    "DataError",
    "load_image",
    "load_mask",
    "load_sample",
    "binarize_mask",
    "image_hw",
    "Record",
    "SPLITS",
    "write_manifest",
    "read_manifest",
    "describe_data",
    "PROTOCOLS",
    "validate_manifest",
    "scan_records",
    "MEAN",
    "STD",
    "to_tensor_image",
    "denormalize",
    "JointTransform",
    "build_transforms",
    "ManifestDataset",
    "make_synthetic",
    "PREPARERS",
]
