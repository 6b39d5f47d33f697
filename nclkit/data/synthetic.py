"""A learnable forgery set built from the sample photos that ship with scikit-image.

Every notebook and test can train without a download: `make_synthetic` crops and rescales
scikit-image's bundled photos and textures into many distinct backgrounds, then forges them
by splicing, copy-move or removal (inpainting) inside random ellipses, polygons or blobs
covering about 3-35 % of the image. The forged region carries a processing trace that
differs from its surroundings (re-JPEG at another quality, blur, noise, resampling), and the
whole image may be JPEG'd again at quality 80-100 (the
kind of set a plain DeepLabV3+ learns from traces). Authentic images get the
same global processing so that global statistics do not give the label away. The operations
themselves (paste, copy-move warp, inpainting, traces, region shapes) are `nclkit.data.tampering`'s.

Files: out_dir/images/<id>.png (lossless store of the final, possibly JPEG'd, image),
out_dir/masks/<id>.png (0/255), out_dir/manifest.jsonl, out_dir/synthetic.json (parameters
and the forgery kind of each id).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np

from ..atomic import write_text_atomic
from .errors import DataError
from .io import load_image
from .manifest import Record, write_manifest
from .tampering import KINDS, blurred, jpeg, noisy, pasted, random_region, removed, resampled, warped

__all__ = ["make_synthetic", "source_photos", "random_region", "TRACES"]

# Default share of each kind. Splices dominate: at the quick scale a small model learns them from
# traces within minutes, while copy-move and removal (no foreign content) take far longer; a
# mostly-hard set would teach little in a CPU-sized run (measured: val F1 0.35 after 12 epochs with
# 50/30/20, 0.56 after 6 epochs with splices only). Pass `mix` to change it.
DEFAULT_MIX = (0.7, 0.2, 0.1)
TRACES = ("jpeg", "blur", "noise", "resample")
_PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png",
           "motorcycle_right.png", "hubble_deep_field.jpg", "ihc.png", "retina.jpg", "camera.png",
           "brick.png", "grass.png", "gravel.png", "moon.png", "page.png", "text.png", "coins.png",
           "cell.png", "microaneurysms.png", "clock_motion.png")
_CACHE: dict[str, list[np.ndarray]] = {}
_VERSION = 3  # bump when the generator changes, so cached sets are rebuilt


def source_photos() -> list[np.ndarray]:
    """scikit-image's bundled photos/textures as uint8 RGB arrays (those present in the install)."""
    if "photos" not in _CACHE:
        import skimage  # imported here: only the generator needs it, and it is slow to import

        folder = Path(skimage.__file__).resolve().parent / "data"
        photos = [load_image(folder / name) for name in _PHOTOS if (folder / name).is_file()]
        if len(photos) < 2:
            raise DataError(f"{folder}: found {len(photos)} of scikit-image's sample photos; need at least 2")
        _CACHE["photos"] = photos
    return _CACHE["photos"]


def _background(rng: np.random.Generator, photos: list[np.ndarray], size: int) -> np.ndarray:
    """A random crop of a random photo, rescaled to (size, size, 3), flipped/rotated/tinted."""
    src = photos[rng.integers(len(photos))]
    h, w = src.shape[:2]
    side_max = min(h, w)
    side_min = min(side_max, size // 2 + 1)
    side = int(round(np.exp(rng.uniform(np.log(side_min), np.log(side_max)))))
    y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    crop = src[y:y + side, x:x + side]
    interp = cv2.INTER_AREA if side >= size else cv2.INTER_CUBIC
    img = cv2.resize(crop, (size, size), interpolation=interp)
    img = np.rot90(img, rng.integers(4))
    if rng.random() < 0.5:
        img = img[:, ::-1]
    if np.ptp(img.astype(np.int16).mean(axis=2) - img[:, :, 0]) < 2:  # grayscale source: tint it
        img = np.clip(img * rng.uniform(0.75, 1.1, size=3), 0, 255)
    return np.ascontiguousarray(img, dtype=np.uint8)


def _trace(rng: np.random.Generator, img: np.ndarray) -> tuple[np.ndarray, str]:
    """Process a donor so the pasted region differs from its surroundings."""
    kind = TRACES[rng.integers(len(TRACES))]
    if kind == "jpeg":
        out = jpeg(img, int(rng.integers(10, 45)))
    elif kind == "blur":
        out = blurred(img, float(rng.uniform(1.2, 2.5)))
    elif kind == "noise":
        out = noisy(img, rng.normal(0, rng.uniform(8, 16), img.shape).astype(np.float32))
    else:
        out = resampled(img, rng.uniform(0.3, 0.6))
    return np.ascontiguousarray(out), kind


def _forgery(rng: np.random.Generator, target: np.ndarray, photos: list[np.ndarray],
             mix: tuple[float, float, float] = DEFAULT_MIX) -> tuple[np.ndarray, np.ndarray, str]:
    """One forgery of `target`: (forged image, region mask in {0, 1}, its kind)."""
    size = target.shape[0]
    kind = KINDS[rng.choice(3, p=list(mix))]
    if kind == "removal":
        region = random_region(rng, size, (0.03, 0.15))  # inpainting large areas is just a smear
        donor = removed(rng, target, region)
    else:
        region = random_region(rng, size)
        if kind == "splice":
            donor = _background(rng, photos, size)
        else:  # copy-move: the same image, shifted (and maybe rescaled/rotated: a resampling trace)
            d = rng.uniform(0.15, 0.5, size=2) * size * rng.choice([-1, 1], size=2)
            m = cv2.getRotationMatrix2D((size / 2, size / 2), float(rng.uniform(-20, 20)), float(rng.uniform(0.8, 1.25)))
            m[:, 2] += d
            donor = warped(target, m, border=cv2.BORDER_REFLECT)
    donor, _ = _trace(rng, donor)
    alpha = region.astype(np.float32)
    if rng.random() < 0.5:  # soften the seam a little; the ground truth stays the hard region
        alpha = blurred(alpha, 0.7)
    return pasted(target, donor, alpha), region, kind


def _synthetic_image(seed: int, index: int, size: int, tampered: bool, photos: list[np.ndarray],
                     mix: tuple[float, float, float] = DEFAULT_MIX) -> tuple[np.ndarray, np.ndarray, str]:
    """Image `index` of the set: (image, mask in {0, 1}, its kind or "authentic")."""
    rng = np.random.default_rng([seed, index])
    img = _background(rng, photos, size)
    if rng.random() < 0.5:  # the camera's own JPEG, before any forgery
        img = jpeg(img, int(rng.integers(75, 98)))
    mask, kind = np.zeros((size, size), np.uint8), "authentic"
    if tampered:
        img, mask, kind = _forgery(rng, img, photos, mix)
    if rng.random() < 0.8:  # the final save of the forger (or of the authentic photo)
        img = jpeg(img, int(rng.integers(80, 101)))
    return img, mask, kind


def _split_counts(num: int, splits: tuple[float, float, float]) -> list[int]:
    if len(splits) != 3 or min(splits) < 0 or abs(sum(splits) - 1.0) > 1e-6:
        raise ValueError(f"splits={splits}; expected three non-negative fractions (train, val, test) summing to 1")
    n_train, n_val = int(round(num * splits[0])), int(round(num * splits[1]))
    return [n_train, n_val, num - n_train - n_val]


def make_synthetic(
    out_dir: str | os.PathLike,
    num: int = 1000,
    seed: int = 0,
    size: int = 128,
    splits: tuple[float, float, float] = (0.8, 0.1, 0.1),
    authentic_fraction: float = 0.15,
    mix: tuple[float, float, float] = DEFAULT_MIX,
    overwrite: bool = False,
) -> Path:
    """Generate (or reuse) a synthetic forgery set and return its manifest path.

    Args:
        out_dir: output folder (created).
        num: number of images.
        seed: everything is a function of (seed, index): same arguments, same files.
        size: image side in pixels.
        splits: train/val/test fractions; images are assigned to splits in index order.
        authentic_fraction: share of authentic images in each split.
        mix: shares of splice, copy-move and removal among the forgeries (see DEFAULT_MIX).
        overwrite: regenerate even when out_dir already holds a set made with the same arguments.
    Returns:
        out_dir/manifest.jsonl
    """
    if num < 1 or size < 16:
        raise ValueError(f"num={num}, size={size}; expected num >= 1 and size >= 16")
    mix = tuple(float(m) for m in mix)
    if len(mix) != 3 or min(mix) < 0 or abs(sum(mix) - 1.0) > 1e-6:
        raise ValueError(f"mix={mix}; expected three non-negative shares (splice, copy_move, removal) summing to 1")
    if not 0.0 <= authentic_fraction <= 1.0:
        raise ValueError(f"authentic_fraction={authentic_fraction}; expected 0..1")
    counts = _split_counts(num, tuple(splits))
    out = Path(out_dir)
    manifest = out / "manifest.jsonl"
    params = {"version": _VERSION, "num": num, "seed": seed, "size": size,
              "splits": list(splits), "authentic_fraction": authentic_fraction, "mix": list(mix)}
    info_path = out / "synthetic.json"
    if not overwrite and manifest.is_file() and info_path.is_file():
        if json.loads(info_path.read_text()).get("params") == params:
            return manifest
    for done in (manifest, info_path):  # written last: a folder killed while being remade never looks complete
        done.unlink(missing_ok=True)
    photos = source_photos()
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    split_rng = np.random.default_rng([seed, 2**31])
    records, kinds, start = [], {}, 0
    for split, n in zip(("train", "val", "test"), counts):
        authentic = set((start + split_rng.permutation(n)[: int(round(n * authentic_fraction))]).tolist())
        for i in range(start, start + n):
            rid = f"syn{i:05d}"
            img, mask, kind = _synthetic_image(seed, i, size, i not in authentic, photos, mix)
            ipath = out / "images" / f"{rid}.png"
            cv2.imwrite(str(ipath), img[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])
            mpath = None
            if kind != "authentic":
                mpath = out / "masks" / f"{rid}.png"
                cv2.imwrite(str(mpath), mask * 255, [cv2.IMWRITE_PNG_COMPRESSION, 1])
            records.append(Record(image=str(ipath), mask=None if mpath is None else str(mpath),
                                  label=int(kind != "authentic"), dataset="synthetic", split=split, id=rid))
            kinds[rid] = kind
        start += n
    write_text_atomic(info_path, json.dumps({"params": params, "kinds": kinds}, indent=1))
    return write_manifest(records, manifest)
