"""Decoding images and masks into the two arrays the rest of nclkit works with.

Images become uint8 (H, W, 3) RGB whatever their mode (grayscale, RGBA, palette, 16-bit,
TIFF, JPEG, PNG, BMP), shown upright (EXIF/TIFF orientation applied). Masks become uint8 (H, W)
in {0, 1}: a mask stored as 0/1 is taken as is at any bit depth, others are binarised at half
their range on the brightest channel, so coloured masks keep their region (`binarize_mask`).
Masks go through the same orientation step as images, so a pair drawn upright stays aligned.
"""
from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .errors import DataError

__all__ = ["load_image", "load_mask", "load_sample", "inspect_mask", "mask_doubt", "MASK_RULE", "image_hw", "to_uint8",
           "to_rgb", "binarize_mask", "orient", "max_image_pixels",
           "IMAGE_SUFFIXES", "DEFAULT_MAX_IMAGE_PIXELS"]

# Every format load_image decodes (through Pillow): what the preparers list and `predict` accepts.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".ppm", ".pgm")
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


# The pixel count above which an image is refused as a possible decompression bomb. Pillow's own
# limit (about 89 MP) refuses ordinary 100 MP phone photos; this one does not, and
# NCLKIT_MAX_IMAGE_PIXELS overrides it (0 = no limit).
DEFAULT_MAX_IMAGE_PIXELS = 250_000_000


def max_image_pixels() -> int | None:
    """The pixel limit in force: NCLKIT_MAX_IMAGE_PIXELS if set (0 = none), else the default."""
    text = os.environ.get("NCLKIT_MAX_IMAGE_PIXELS", "").strip()
    if not text:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        value = int(float(text))
    except ValueError:
        raise DataError(f"NCLKIT_MAX_IMAGE_PIXELS={text!r}; expected a whole number of pixels (0 = no limit)") from None
    return value if value > 0 else None


def _check_pixels(path: Path, h: int, w: int) -> None:
    limit = max_image_pixels()
    if limit is not None and h * w > limit:
        raise DataError(f"{path}: {w}x{h} px is over the limit of {limit:,} pixels that guards against "
                        f"decompression bombs; to read it, set NCLKIT_MAX_IMAGE_PIXELS={h * w} (0 = no limit)")


def orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF/TIFF orientation code (1-8) so the array shows the upright view.

    Shape: (H, W[, C]) -> (H, W[, C]), or (W, H[, C]) for codes 5-8 (a quarter turn).
    """
    if orientation in (5, 7):  # transposes: across the main (5) or the anti-diagonal (7)
        arr = np.swapaxes(arr, 0, 1)
        return arr if orientation == 5 else arr[::-1, ::-1]
    if not isinstance(orientation, int):  # a malformed tag: show the pixels as stored
        return arr
    ops = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           6: lambda a: np.rot90(a, -1), 8: lambda a: np.rot90(a, 1)}
    return ops[orientation](arr) if orientation in ops else arr


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile  # imported here: only TIFFs need it, and it is slow to import

    with tifffile.TiffFile(str(path)) as tif:
        page = tif.pages[0]
        n_pages = len(tif.pages)
        shape = page.shape
        planar = int(page.planarconfig) == 2 and len(shape) == 3  # (C, H, W) samples
        hw = shape[1:3] if planar else shape[:2]
        _check_pixels(path, int(hw[0]), int(hw[1]))
        arr = page.asarray()
        tag = page.tags.get(274)
        orientation = tag.value if tag is not None else 1
    if n_pages > 1:
        # Pages are separate images (not colour channels): read the first, say so.
        warnings.warn(f"{path}: TIFF has {n_pages} pages; only the first is read", stacklevel=4)
    if planar:
        arr = np.moveaxis(arr, 0, -1)
    while arr.ndim > 3:
        arr = arr[0]
    return np.ascontiguousarray(orient(arr, orientation))


def _read_pil(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        _check_pixels(path, im.size[1], im.size[0])
        im.load()  # force the full decode so truncation is detected here
        # Read after load: Pillow already turns some formats (TIFF) upright and then drops the tag.
        orientation = im.getexif().get(0x0112, 1)
        mode = im.mode
        if mode == "P" or mode == "PA":
            im = im.convert("RGBA" if "transparency" in im.info or mode == "PA" else "RGB")
        elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
            im = im.convert("RGB")
        elif mode == "1":
            im = im.convert("L")
        if mode.startswith("I;16"):
            arr = np.array(im, dtype=np.uint16)
        elif mode == "I":
            a = np.asarray(im, dtype=np.int64)
            # 'I' is 32-bit signed, but 16-bit PNGs decode to it; scale by the value range used.
            arr = a.astype(np.uint16) if a.max(initial=0) <= 65535 and a.min(initial=0) >= 0 else a.astype(np.int32)
        else:
            arr = np.array(im)
    return np.ascontiguousarray(orient(arr, orientation))


def _decode(path: str | os.PathLike) -> np.ndarray:
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: file not found")
    if not p.is_file():
        raise DataError(f"{p}: not a regular file")
    if p.stat().st_size == 0:
        raise DataError(f"{p}: file is empty (0 bytes)")
    try:
        # Our own pixel limit (_check_pixels) replaces Pillow's, which has no override per call.
        with _no_pillow_pixel_limit():
            if p.suffix.lower() in _TIFF_SUFFIXES:
                try:
                    return _read_tiff(p)
                except DataError:
                    raise
                except Exception:  # noqa: BLE001 - fall back to PIL for TIFF flavours tifffile rejects
                    return _read_pil(p)
            return _read_pil(p)
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 - any decoder failure becomes one clear error
        raise DataError(f"{p}: cannot decode image ({type(err).__name__}: {err}); "
                        "the file may be truncated or corrupt") from err


@contextmanager
def _no_pillow_pixel_limit():
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB.

    Args:
        path: any of IMAGE_SUFFIXES (PNG, JPEG, TIFF incl. deflate-compressed, BMP, WebP ...), any bit depth / mode.
    Returns:
        uint8 array, shape (H, W, 3), RGB.
    Raises:
        DataError: missing, empty, truncated or undecodable file (the message names it).
    """
    arr = _decode(path)
    return to_rgb(arr, path)


def binarize_mask(arr: np.ndarray, source: str | os.PathLike = "<array>") -> np.ndarray:
    """A pixel is manipulated when its brightest channel is above half the range.

    Rule, in order: drop an alpha channel; take the maximum over colour channels (a gray mask is
    unchanged, a red-on-black or green-on-black mask keeps its region); if every value is <= 1 the
    mask is stored as 0/1 (whatever its bit depth) and 1 = manipulated; otherwise wider integers
    (16-bit) are scaled to 0..255 by their type's range and values > 127.5 are manipulated.
    Palette masks arrive here as their colours (see `load_mask`).

    Shape: (H, W) or (H, W, C) -> uint8 (H, W) in {0, 1}.
    """
    arr = np.asarray(arr)
    if arr.ndim == 3:
        if arr.shape[2] in (2, 4):  # drop the alpha channel: it is not part of the mask
            arr = arr[:, :, : arr.shape[2] - 1]
        arr = arr.max(axis=2)  # (H, W): the brightest channel, so a coloured region counts
    elif arr.ndim != 2:
        raise DataError(f"{source}: expected a 2-D mask (H, W[, C]), got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if arr.size and float(arr.max()) <= 1.0:  # 0/1 masks at any bit depth, before any scaling
        return (arr > 0.5).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer) and np.iinfo(arr.dtype).max > 255:
        arr = to_uint8(arr, source)  # 16-bit masks: scale to 0..255 first
    return (arr.astype(np.float32) > 127.5).astype(np.uint8)


def load_mask(path: str | os.PathLike, expected_hw: tuple[int, int] | None = None) -> np.ndarray:
    """Read a ground-truth mask as a binary array.

    Args:
        path: mask file, white (or 1) = manipulated.
        expected_hw: (H, W) of the paired image; a different mask size raises.
    Returns:
        uint8 array, shape (H, W), values in {0, 1}; see `binarize_mask` for the rule. A palette
        mask is read as its colours, the EXIF/TIFF orientation applied as for its image.
    Raises:
        DataError: unreadable file, or size differs from expected_hw (both sizes named).
    """
    mask = binarize_mask(_decode(path), path)
    if expected_hw is not None and tuple(mask.shape) != tuple(expected_hw):
        raise DataError(f"{path}: mask size {mask.shape[0]}x{mask.shape[1]} (HxW) differs from "
                        f"its image's size {expected_hw[0]}x{expected_hw[1]}")
    return mask


# `binarize_mask`'s rule in one line, for the warnings that name masks it likely misreads.
MASK_RULE = ("white = tampered: a pixel counts when its brightest colour channel is above half its type's range "
             "(a mask of 0 and 1 only: 1), the alpha channel is not read")


def mask_doubt(raw: np.ndarray, mask: np.ndarray) -> str | None:
    """Why a tampered image's mask is likely misread by the rule (MASK_RULE), or None where it looks sound.

    Args:
        raw: the decoded file, any dtype. Shape (H, W) or (H, W, C).
        mask: its reading by `binarize_mask`. Shape (H, W).
    """
    if raw.ndim == 3 and raw.shape[2] in (2, 4):
        colour, alpha = raw[:, :, :-1], raw[:, :, -1]
        if colour.min() == colour.max() and alpha.min() != alpha.max():
            return "drawn in the alpha channel only, which is not read"
    if raw.dtype.itemsize > 1 and np.issubdtype(raw.dtype, np.integer) and raw.max() == 255 \
            and bool(((raw == 0) | (raw == 255)).all()):
        return "16-bit holding only 0 and 255, so 255 is dark on its 0..65535 range"
    tampered = float(mask.mean()) if mask.size else 0.0
    if tampered == 0.0:
        return "no tampered pixel"
    if tampered == 1.0:
        return "every pixel tampered"
    return f"{tampered:.0%} tampered: inverted?" if tampered > 0.5 else None


def inspect_mask(path: str | os.PathLike) -> tuple[np.ndarray, str | None]:
    """A tampered image's mask as `load_mask` reads it, and `mask_doubt`'s reason to doubt that reading.

    Returns:
        (uint8 mask (H, W) in {0, 1}, a reason or None).
    """
    raw = _decode(path)
    mask = binarize_mask(raw, path)
    return mask, mask_doubt(raw, mask)


def load_sample(record: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Image (uint8 (H, W, 3)) and mask (uint8 (H, W) in {0, 1}, None if authentic) of a Record."""
    if (record.mask is None) != (int(record.label) == 0):  # else it would be scored as the other class
        raise DataError(f"{record.image}: record {record.id!r} has label {record.label} but "
                        f"{'no mask' if record.mask is None else 'a mask'}; tampered records need a mask, "
                        "authentic ones none")
    image = load_image(record.image)
    mask = None if record.mask is None else load_mask(record.mask, expected_hw=image.shape[:2])
    return image, mask


def image_hw(path: str | os.PathLike) -> tuple[int, int]:
    """(H, W) of an image file from its header, without decoding the pixels (cheap for preparers).

    The size of the upright view: an EXIF/TIFF orientation of a quarter turn swaps H and W.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: file not found")
    if p.stat().st_size == 0:
        raise DataError(f"{p}: file is empty (0 bytes)")
    try:
        with _no_pillow_pixel_limit(), Image.open(p) as im:
            if im.format == "TIFF":  # the stored size: some Pillow versions report TIFFs' upright size
                w, h = im.tag_v2[256], im.tag_v2[257]
                orientation = im.tag_v2.get(0x0112, 1)
            elif im.format == "PNG":  # getexif() would decode the pixels to look for a trailing eXIf chunk
                w, h = im.size
                exif = Image.Exif()
                if im.info.get("exif"):
                    exif.load(im.info["exif"])
                orientation = exif.get(0x0112, 1)
            else:
                w, h = im.size
                orientation = im.getexif().get(0x0112, 1)
        return (int(w), int(h)) if orientation in (5, 6, 7, 8) else (int(h), int(w))
    except Exception:  # noqa: BLE001 - PIL cannot parse the header: decode fully (raises DataError)
        arr = _decode(p)
        return int(arr.shape[0]), int(arr.shape[1])
