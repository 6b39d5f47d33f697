"""Decoding images and masks into the two arrays the rest of nclkit works with.

Images become uint8 (H, W, 3) RGB whatever their mode (grayscale, RGBA, palette, 16-bit,
TIFF, JPEG, PNG, BMP). Masks become uint8 (H, W) in {0, 1}, binarised at 127.5 on the mean
over channels (shared/design/DESIGN.md §3); a mask already stored as 0/1 is taken as is.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import DataError

__all__ = ["load_image", "load_mask", "image_hw", "to_uint8", "to_rgb", "binarize_mask", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_TIFF_SUFFIXES = (".tif", ".tiff")


def to_uint8(arr: np.ndarray, source: str | os.PathLike = "<array>") -> np.ndarray:
    """Scale an integer, boolean or float array to uint8.

    16-bit (and other wider integer) data are scaled by the type's range, so 65535 -> 255;
    floats are taken as [0, 1] when their maximum is <= 1, else as [0, 255].
    """
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        if info.min < 0:  # signed: shift into the unsigned range first
            arr = arr.astype(np.int64) - info.min
        scale = 255.0 / float(info.max - info.min)
        return np.clip(np.rint(arr.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        a = np.nan_to_num(arr.astype(np.float64))
        if a.size and a.max() <= 1.0:
            a = a * 255.0
        return np.clip(np.rint(a), 0, 255).astype(np.uint8)
    raise DataError(f"{source}: unsupported pixel type {arr.dtype}")


def to_rgb(arr: np.ndarray, source: str | os.PathLike = "<array>") -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 2), (H, W, 3) or (H, W, 4+) -> uint8 (H, W, 3) RGB; alpha dropped."""
    arr = to_uint8(np.asarray(arr), source)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise DataError(f"{source}: expected a 2-D image (H, W[, C]), got an array of shape {arr.shape}")
    c = arr.shape[2]
    if c in (1, 2):  # gray or gray+alpha
        arr = np.repeat(arr[:, :, :1], 3, axis=2)
    elif c >= 3:
        arr = arr[:, :, :3]
    else:
        raise DataError(f"{source}: image has {c} channels; expected 1 to 4")
    return np.ascontiguousarray(arr)


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    arr = tifffile.imread(str(path))
    # Multi-page or planar (C, H, W) TIFFs: take the first page, move channels last.
    if arr.ndim == 3 and arr.shape[0] in (3, 4) and arr.shape[2] not in (1, 2, 3, 4):
        arr = np.moveaxis(arr, 0, -1)
    while arr.ndim > 3:
        arr = arr[0]
    return arr


def _read_pil(path: Path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as im:
            im.load()  # force the full decode so truncation is detected here
            mode = im.mode
            if mode == "P" or mode == "PA":
                im = im.convert("RGBA" if "transparency" in im.info or mode == "PA" else "RGB")
            elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                im = im.convert("RGB")
            elif mode == "1":
                im = im.convert("L")
            elif mode.startswith("I;16"):
                return np.array(im, dtype=np.uint16)
            elif mode == "I":
                a = np.asarray(im, dtype=np.int64)
                # 'I' is 32-bit signed, but 16-bit PNGs decode to it; scale by the value range used.
                return a.astype(np.uint16) if a.max(initial=0) <= 65535 and a.min(initial=0) >= 0 else a.astype(np.int32)
            return np.array(im)


def _decode(path: str | os.PathLike) -> np.ndarray:
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: file not found")
    if not p.is_file():
        raise DataError(f"{p}: not a regular file")
    if p.stat().st_size == 0:
        raise DataError(f"{p}: file is empty (0 bytes)")
    try:
        if p.suffix.lower() in _TIFF_SUFFIXES:
            try:
                return _read_tiff(p)
            except Exception:  # noqa: BLE001 - fall back to PIL for TIFF flavours tifffile rejects
                return _read_pil(p)
        return _read_pil(p)
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 - any decoder failure becomes one clear error
        raise DataError(f"{p}: cannot decode image ({type(err).__name__}: {err}); "
                        "the file may be truncated or corrupt") from err


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB.

    Args:
        path: PNG, JPEG, BMP or TIFF (incl. deflate-compressed), any bit depth / mode.
    Returns:
        uint8 array, shape (H, W, 3), RGB.
    Raises:
        DataError: missing, empty, truncated or undecodable file (the message names it).
    """
    arr = _decode(path)
    return to_rgb(arr, path)


def binarize_mask(arr: np.ndarray, source: str | os.PathLike = "<array>") -> np.ndarray:
    """Mean over channels, then > 127.5; arrays whose max is <= 1 are already binary (value > 0.5).

    Shape: (H, W) or (H, W, C) -> uint8 (H, W) in {0, 1}.
    """
    arr = np.asarray(arr)
    if arr.ndim == 3:
        if arr.shape[2] in (2, 4):  # drop the alpha channel: it is not part of the mask
            arr = arr[:, :, : arr.shape[2] - 1]
        arr = arr.astype(np.float32).mean(axis=2)
    elif arr.ndim != 2:
        raise DataError(f"{source}: expected a 2-D mask (H, W[, C]), got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer) and np.iinfo(arr.dtype).max > 255:
        arr = to_uint8(arr, source)  # 16-bit masks: scale to 0..255 first
    a = arr.astype(np.float32)
    if a.size and a.max() <= 1.0:
        return (a > 0.5).astype(np.uint8)
    return (a > 127.5).astype(np.uint8)


def load_mask(path: str | os.PathLike, expected_hw: tuple[int, int] | None = None) -> np.ndarray:
    """Read a ground-truth mask as a binary array.

    Args:
        path: mask file, white (or 1) = manipulated.
        expected_hw: (H, W) of the paired image; a different mask size raises.
    Returns:
        uint8 array, shape (H, W), values in {0, 1}.
    Raises:
        DataError: unreadable file, or size differs from expected_hw (both sizes named).
    """
    mask = binarize_mask(_decode(path), path)
    if expected_hw is not None and tuple(mask.shape) != tuple(expected_hw):
        raise DataError(f"{path}: mask size {mask.shape[0]}x{mask.shape[1]} (HxW) differs from "
                        f"its image's size {expected_hw[0]}x{expected_hw[1]}")
    return mask


def image_hw(path: str | os.PathLike) -> tuple[int, int]:
    """(H, W) of an image file from its header, without decoding the pixels (cheap for preparers)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: file not found")
    try:
        with Image.open(p) as im:
            w, h = im.size
        return int(h), int(w)
    except Exception:  # noqa: BLE001 - PIL cannot parse the header: decode fully (raises DataError)
        arr = _decode(p)
        return int(arr.shape[0]), int(arr.shape[1])
