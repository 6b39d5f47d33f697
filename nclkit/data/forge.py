"""Forgeries made from real photos: more training forgeries from the authentic photos at hand.

Beyond the paper: NCL is trained on a benchmark's own forgeries only, and those can be few (CASIA v1's
grouped train split holds 643). This module forges the *training split's own* authentic photos the way
real forgers do, so that a model sees many more forgeries without any photo from outside its training
split (no pre-training, no other data set):

- **splice**: a region of another photo, rescaled (a resampling trace), pasted into the target;
- **copy-move**: a region of the same photo moved elsewhere in it, maybe rotated and rescaled;
- **removal**: a region filled from its surroundings (OpenCV's inpainting, Telea or Navier-Stokes).

Region shapes come from real ground-truth masks when given (a CASIA mask, rescaled, flipped and moved
elsewhere), else from object-like random shapes (`random_region`). Given the real forgery a mask
belongs to, a splice may also paste the very object its forger pasted (outline and content agree).
Then the traces forgers leave and hide: hard or feathered edges, colour/brightness matched to the
surroundings, a blurred or noisy paste, a pasted region JPEG'd before pasting, and the forger's final
JPEG at a random quality, sometimes twice (double compression). The mask marks exactly the pixels that
changed: before the final recompression, every pixel outside it equals the target photo's (feathering
stays inside the region).

Everything is a function of (seed, index): the same photos and arguments give the same files. The
operations themselves (paste, warp, inpainting, traces, random shapes) are `nclkit.data.tampering`'s.

Files: out_dir/images/<n>.{jpg,png} (a JPEG'd forgery is stored as the JPEG the forger would save),
out_dir/masks/<n>.png (0/255), out_dir/manifest.jsonl, out_dir/forged.json (parameters, and for each
forgery its kind, target photo, donor photo, shape and traces: what a leakage check reads).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..atomic import write_text_atomic
from .errors import DataError
from .io import IMAGE_SUFFIXES, load_image, load_mask
from .manifest import Record, read_manifest, write_manifest
from .tampering import KINDS, blurred, jpeg, noisy, pasted, random_region, removed, warped

__all__ = ["forge", "forge_from_manifest", "forge_from_photos", "forge_one", "place_shape", "FORGE_MIX"]

# CASIA v1 holds splices and same-photo pastes in about equal numbers, and no removals; removal stays a
# small share so that the model also meets a forgery with no foreign content.
FORGE_MIX = (0.45, 0.4, 0.15)
_VERSION = 1  # bump when the generator changes, so pools made by an older one are rebuilt
_REMOVAL_MAX_AREA = 0.12  # inpainting a larger area leaves a smear no forger would keep


def _bbox(region: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(region)
    return int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1


def place_shape(rng: np.random.Generator, shape: np.ndarray | None, hw: tuple[int, int],
                max_area: float = 0.45, pixels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """A (H, W) uint8 {0, 1} region for a forgery: `shape` (a real mask) rescaled by 0.6-1.5, maybe
    flipped, at a random place; or, without a shape, an object-like random one. Never empty, and
    never above `max_area` of the image.

    `pixels` (the image the shape is the mask of) goes through the same crop, flips and rescaling, so
    that the returned (H, W, 3) canvas holds the masked object where the region is (None without it)."""
    h, w = hw
    region = np.zeros((h, w), np.uint8)
    canvas = None
    if shape is not None and shape.any():
        y0, y1, x0, x1 = _bbox(shape)
        piece = shape[y0:y1, x0:x1]
        obj = None if pixels is None else pixels[y0:y1, x0:x1]
        flips = (rng.random() < 0.5, rng.random() < 0.25)
        for flip, axis in zip(flips, (1, 0)):
            if flip:
                piece = np.flip(piece, axis)
                obj = None if obj is None else np.flip(obj, axis)
        area = max(int(piece.sum()), 1)
        s = float(np.exp(rng.uniform(np.log(0.6), np.log(1.5))))
        s = min(s, np.sqrt(max_area * h * w / area), (h - 1) / piece.shape[0], (w - 1) / piece.shape[1])
        ph, pw = max(int(round(piece.shape[0] * s)), 2), max(int(round(piece.shape[1] * s)), 2)
        piece = cv2.resize(np.ascontiguousarray(piece), (pw, ph), interpolation=cv2.INTER_NEAREST)
        y, x = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
        region[y:y + ph, x:x + pw] = piece
        if obj is not None:
            canvas = np.zeros((h, w, 3), np.uint8)
            interp = cv2.INTER_AREA if s < 1 else (cv2.INTER_LINEAR, cv2.INTER_CUBIC)[int(rng.integers(2))]
            canvas[y:y + ph, x:x + pw] = cv2.resize(np.ascontiguousarray(obj), (pw, ph), interpolation=interp)
    if region.sum() < 16:  # no shape, or one that vanished when shrunk: an object-like random one
        side = min(h, w)
        blob = random_region(rng, side, (0.03, min(0.3, max_area)))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        region[:] = 0
        region[y:y + side, x:x + side] = blob
        canvas = None
    return region, canvas


def _match_colour(rng: np.random.Generator, patch: np.ndarray, target: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Move the pasted pixels' per-channel mean and spread part of the way to those of the ring of
    target pixels around the region (what a forger's levels/curves adjustment does)."""
    ring = cv2.dilate(region, np.ones((15, 15), np.uint8)) & (1 - region)
    inside = region.astype(bool)
    if ring.sum() < 16 or inside.sum() < 16:
        return patch
    src, ref = patch[inside].astype(np.float32), target[ring.astype(bool)].astype(np.float32)
    a = rng.uniform(0.4, 1.0)  # how far the forger went
    m_s, s_s = src.mean(0), src.std(0) + 1.0
    m_t, s_t = (1 - a) * m_s + a * ref.mean(0), (1 - a) * s_s + a * (ref.std(0) + 1.0)
    out = patch.astype(np.float32)
    out[inside] = (src - m_s) / s_s * s_t + m_t
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _spliced(rng: np.random.Generator, target: np.ndarray, donor: np.ndarray, region: np.ndarray) -> np.ndarray:
    """The donor photo rescaled (resampling) and shifted so that a random window of it covers the region."""
    h, w = region.shape
    y0, y1, x0, x1 = _bbox(region)
    dh, dw = donor.shape[:2]
    s = float(np.exp(rng.uniform(np.log(0.6), np.log(1.6))))
    s = max(s, (y1 - y0 + 1) / dh, (x1 - x0 + 1) / dw)
    interp = (cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_AREA)[rng.integers(3)]
    scaled = cv2.resize(donor, (max(int(np.ceil(dw * s)), x1 - x0), max(int(np.ceil(dh * s)), y1 - y0)),
                        interpolation=interp)
    oy = int(rng.integers(0, scaled.shape[0] - (y1 - y0) + 1))
    ox = int(rng.integers(0, scaled.shape[1] - (x1 - x0) + 1))
    out = target.copy()
    out[y0:y1, x0:x1] = scaled[oy:oy + y1 - y0, ox:ox + x1 - x0]
    return out


def _copy_moved(rng: np.random.Generator, target: np.ndarray, region: np.ndarray) -> np.ndarray:
    """The same photo, so that each region pixel shows the photo elsewhere: moved by at least half the
    region's size, maybe rotated (up to 30 degrees) and rescaled (0.75-1.3)."""
    h, w = region.shape
    y0, y1, x0, x1 = _bbox(region)
    c_dst = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    angle = np.deg2rad(rng.uniform(-30, 30)) if rng.random() < 0.5 else 0.0
    scale = rng.uniform(0.75, 1.3) if rng.random() < 0.5 else 1.0
    least = 0.5 * max(x1 - x0, y1 - y0) + 4
    c_src = c_dst
    for _ in range(20):  # a source centre far enough away
        c_src = np.array([rng.uniform(0, w), rng.uniform(0, h)])
        if np.hypot(*(c_src - c_dst)) >= least:
            break
    a = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) / scale
    m = np.hstack([a, (c_src - a @ c_dst)[:, None]])  # destination pixel -> source pixel
    return warped(target, m, inverse=True)


def _hide(rng: np.random.Generator, content: np.ndarray, traces: list[str]) -> np.ndarray:
    """What a forger does to the pasted content: a JPEG'd source, blur, noise (each sometimes)."""
    if rng.random() < 0.3:
        content = jpeg(content, int(rng.integers(60, 96)))
        traces.append("jpeg_before_paste")
    if rng.random() < 0.2:
        content = blurred(content, float(rng.uniform(0.4, 1.2)))
        traces.append("blur")
    if rng.random() < 0.25:
        sigma = float(rng.uniform(1.0, 4.0))
        content = noisy(content, rng.normal(0, sigma, content.shape), offset=0.5)
        traces.append("noise")
    return content


def forge_one(rng: np.random.Generator, target: np.ndarray, donor: np.ndarray | None, kind: str,
              shape: np.ndarray | None = None, shape_pixels: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One forgery of `target` (uint8 (H, W, 3)) before any recompression.

    Args:
        donor: the photo a splice takes its region from (unused by copy-move and removal).
        kind: one of KINDS.
        shape: a real mask (any size) to shape the region, or None for a random object-like shape.
        shape_pixels: the image `shape` is the mask of (a real forgery): a splice then pastes that
            image's masked object itself, rescaled with its mask, instead of a window of `donor`; the
            object's outline and content agree, as in a forger's splice.
    Returns:
        (forged uint8 (H, W, 3), mask uint8 (H, W) in {0, 1}, the traces applied). Every pixel where
        the mask is 0 equals the target's.
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; expected one of {KINDS}")
    if shape_pixels is not None and (shape is None or shape_pixels.shape[:2] != shape.shape):
        raise ValueError("shape_pixels must be the image of `shape`, of the same height and width")
    region, obj = place_shape(rng, shape, target.shape[:2], _REMOVAL_MAX_AREA if kind == "removal" else 0.45,
                              shape_pixels if kind == "splice" else None)
    traces: list[str] = []
    if kind == "splice" and obj is not None:
        content = obj
        traces.append("object")
    elif kind == "splice":
        if donor is None:
            raise ValueError("a splice needs a donor photo")
        content = _spliced(rng, target, donor, region)
    elif kind == "copy_move":
        content = _copy_moved(rng, target, region)
    else:
        content = removed(rng, target, region)
    if kind != "removal" and rng.random() < 0.5:
        content = _match_colour(rng, content, target, region)
        traces.append("colour_matched")
    content = _hide(rng, content, traces)
    alpha = region.astype(np.float32)
    if rng.random() < 0.5:  # feathered edge, kept inside the region so that the mask stays exact
        alpha = blurred(alpha, float(rng.uniform(0.8, 2.5))) * alpha
        traces.append("feathered")
    return pasted(target, content, alpha, region), region, traces


def _load_photo(path: str, max_side: int) -> np.ndarray:
    img = load_image(path)
    h, w = img.shape[:2]
    if max(h, w) > max_side:
        s = max_side / max(h, w)
        img = cv2.resize(img, (max(int(round(w * s)), 1), max(int(round(h * s)), 1)), interpolation=cv2.INTER_AREA)
    return img


def _encode_final(rng: np.random.Generator, img: np.ndarray, traces: list[str]) -> tuple[bytes, str]:
    """The forger's save: JPEG at quality 70-100 (85 %), twice at two qualities a third of those times."""
    if rng.random() >= 0.85:
        ok, buf = cv2.imencode(".png", img[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])
        return buf.tobytes(), ".png"
    if rng.random() < 1 / 3:
        q1 = int(rng.integers(60, 96))
        img = jpeg(img, q1)
        traces.append(f"jpeg{q1}")
    q = int(rng.integers(70, 101))
    traces.append(f"jpeg{q}")
    ok, buf = cv2.imencode(".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
    return buf.tobytes(), ".jpg"


def _fingerprint(items: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(items).encode()).hexdigest()[:16]


def forge(
    photos: Sequence[tuple[str, str]],
    out_dir: str | os.PathLike,
    num: int,
    seed: int = 0,
    shapes: Sequence[tuple[str, ...]] | None = None,
    mix: Sequence[float] = FORGE_MIX,
    object_share: float = 0.5,
    max_side: int = 1024,
    split: str = "train",
    dataset: str = "forged",
    overwrite: bool = False,
) -> Path:
    """Write `num` forgeries of `photos` (and their manifest); return the manifest's path.

    Args:
        photos: (id, path) of authentic photos: every target and donor comes from these, nothing else.
        out_dir: output folder (created). A folder made with the same arguments is reused unless `overwrite`.
        num: number of forgeries.
        seed: forgery i is a function of (seed, i) and the arguments.
        shapes: (id, mask path) of real masks to shape regions with, or (id, mask path, image path) of real
            forgeries: a splice then pastes the forgery's own masked object `object_share` of the time
            (else a window of a donor photo in that shape). None: random object-like shapes.
        mix: shares of splice, copy-move and removal.
        max_side: photos with a longer side are scaled down to it first (forging time grows with pixels).
        split, dataset: written into every record.
    Raises:
        DataError: fewer than 2 photos (a splice needs a donor), or an unreadable photo or mask.
    """
    photos = sorted(photos)
    shapes = sorted(shapes) if shapes else []
    if len(photos) < 2:
        raise DataError(f"{out_dir}: forging needs at least 2 authentic photos, got {len(photos)}")
    if num < 1:
        raise ValueError(f"num={num}; expected >= 1")
    mix = [float(m) for m in mix]
    if len(mix) != 3 or min(mix) < 0 or abs(sum(mix) - 1.0) > 1e-6:
        raise ValueError(f"mix={mix}; expected three non-negative shares (splice, copy_move, removal) summing to 1")
    out = Path(out_dir)
    manifest, info_path = out / "manifest.jsonl", out / "forged.json"
    params = {"version": _VERSION, "num": num, "seed": seed, "mix": mix, "max_side": max_side, "split": split,
              "dataset": dataset, "photos": _fingerprint([f"{i}\t{p}" for i, p in photos]),
              "shapes": _fingerprint(["\t".join(item) for item in shapes]), "object_share": object_share}
    if not overwrite and manifest.is_file() and info_path.is_file():
        if json.loads(info_path.read_text()).get("params") == params:
            return manifest
    for done in (manifest, info_path):  # written last: a folder killed while being remade never looks complete
        done.unlink(missing_ok=True)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    records, sources = [], {}
    for i in range(num):
        rng = np.random.default_rng([seed, i])
        kind = KINDS[rng.choice(3, p=mix)]
        t = int(rng.integers(len(photos)))
        d = (t + 1 + int(rng.integers(len(photos) - 1))) % len(photos)  # any photo but the target
        s = int(rng.integers(len(shapes))) if shapes else None
        target = _load_photo(photos[t][1], max_side)
        # read for every splice: an object splice whose shape vanishes when shrunk falls back to a window of it
        donor = _load_photo(photos[d][1], max_side) if kind == "splice" else None
        shape = load_mask(shapes[s][1]) if s is not None else None
        use_object = kind == "splice" and s is not None and len(shapes[s]) > 2 and rng.random() < object_share
        pixels = load_image(shapes[s][2]) if use_object else None
        if pixels is not None and pixels.shape[:2] != shape.shape:
            raise DataError(f"{shapes[s][2]}: image {pixels.shape[:2]} and mask {shapes[s][1]} {shape.shape} "
                            "differ in size")
        img, mask, traces = forge_one(rng, target, donor, kind, shape, pixels)
        data, suffix = _encode_final(rng, img, traces)
        rid = f"{dataset}/{i:05d}"
        ipath, mpath = out / "images" / f"{i:05d}{suffix}", out / "masks" / f"{i:05d}.png"
        ipath.write_bytes(data)
        cv2.imwrite(str(mpath), mask * 255, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        records.append(Record(image=str(ipath), mask=str(mpath), label=1, dataset=dataset, split=split, id=rid))
        donor_id = shapes[s][0] if pixels is not None else photos[d][0] if donor is not None else None
        sources[rid] = {"kind": kind, "target": photos[t][0], "donor": donor_id,
                        "shape": shapes[s][0] if s is not None else None, "traces": traces}
    write_text_atomic(info_path, json.dumps({"params": params, "forgeries": sources}, indent=1))
    return write_manifest(records, manifest)


def forge_from_manifest(manifest: str | os.PathLike, out_dir: str | os.PathLike, num: int, seed: int = 0,
                        split: str = "train", **kwargs) -> Path:
    """Forgeries made only from `split` of a manifest: its authentic photos are the targets and donors,
    its tampered images the shapes (and, for half of the splices, the objects their forgers pasted). No
    record of another split is read."""
    records = read_manifest(manifest, split=split)
    photos = [(r.id, r.image) for r in records if r.label == 0]
    if len(photos) < 2:
        raise DataError(f"{manifest}: forging needs at least 2 authentic photos in split {split!r}, "
                        f"found {len(photos)}")
    shapes = [(r.id, r.mask, r.image) for r in records if r.label == 1 and r.mask is not None]
    return forge(photos, out_dir, num, seed=seed, shapes=shapes or None, split=split, **kwargs)


def forge_from_photos(photo_dir: str | os.PathLike, out_dir: str | os.PathLike, num: int, seed: int = 0,
                      shapes_manifest: str | os.PathLike | None = None,
                      splits: tuple[float, float, float] = (0.8, 0.1, 0.1), **kwargs) -> Path:
    """A train/val/test forgery set from a folder of one's own authentic photos.

    The photos are split first (a seeded shuffle), and each split's forgeries are made from that split's
    photos only, so no photo is seen in two splits; the photos themselves join their split as authentic
    records (image-level negatives). Shapes come from every tampered record of `shapes_manifest` (they
    carry no pixels of their images), else random object-like shapes.
    """
    folder = Path(photo_dir)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) < 2 * 3:
        raise DataError(f"{folder}: found {len(files)} photos ({', '.join(sorted(IMAGE_SUFFIXES))}); "
                        "need at least 6 (two per split)")
    if len(splits) != 3 or min(splits) < 0 or abs(sum(splits) - 1.0) > 1e-6:
        raise ValueError(f"splits={splits}; expected three non-negative fractions (train, val, test) summing to 1")
    shapes = None
    if shapes_manifest is not None:
        shapes = [(r.id, r.mask) for r in read_manifest(shapes_manifest) if r.label == 1 and r.mask is not None]
        if not shapes:
            raise DataError(f"{shapes_manifest}: no tampered record with a mask to take shapes from")
    order = np.random.default_rng([seed, 2**30]).permutation(len(files))
    n_val = max(int(round(len(files) * splits[1])), 2)
    n_test = max(int(round(len(files) * splits[2])), 2)
    parts = {"val": order[:n_val], "test": order[n_val:n_val + n_test], "train": order[n_val + n_test:]}
    out = Path(out_dir)
    records: list[Record] = []
    for split, idx in parts.items():
        photos = [(f"photo/{files[i].relative_to(folder).as_posix()}", str(files[i])) for i in sorted(idx)]
        n = max(int(round(num * len(idx) / len(files))), 1)
        sub = forge(photos, out / split, n, seed=seed, shapes=shapes, split=split, dataset="forged", **kwargs)
        records += [Record(image=r.image, mask=r.mask, label=1, dataset="forged", split=split, id=f"{split}/{r.id}")
                    for r in read_manifest(sub)]
        records += [Record(image=p, mask=None, label=0, dataset="forged", split=split, id=pid) for pid, p in photos]
    return write_manifest(records, out / "manifest.jsonl")
