"""The operations a forger applies, shared by both forgery generators.

`synthetic` (the built-in set made from scikit-image's photos) and `forge` (forgeries of one's own
photos) draw their own parameters and call these: the three kinds of forgery (a splice pastes
foreign content, a copy-move pastes the same photo warped, a removal fills a region from its
surroundings), the region shapes, the traces (JPEG recompression, blur, noise, resampling) and the
final paste of the content into the target through a soft or hard alpha.

Every function is deterministic given its arguments (and, where it takes one, the state of `rng`).
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["KINDS", "jpeg", "blurred", "noisy", "resampled", "warped", "removed", "pasted", "random_region"]

# The kinds of forgery both generators make, in the order their `mix` shares are given.
KINDS = ("splice", "copy_move", "removal")


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """`img` (uint8 RGB) saved as a JPEG at `quality` and decoded again."""
    ok, buf = cv2.imencode(".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]


def blurred(img: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur of standard deviation `sigma` pixels."""
    return cv2.GaussianBlur(img, (0, 0), float(sigma))


def noisy(img: np.ndarray, noise: np.ndarray, offset: float = 0.0) -> np.ndarray:
    """`img + noise + offset` clipped to uint8 (an offset of 0.5 rounds, 0 truncates)."""
    return np.clip(img + noise + offset, 0, 255).astype(np.uint8)


def resampled(img: np.ndarray, factor: float) -> np.ndarray:
    """A square image scaled down by `factor` and back up (bilinear both ways): the periodic, smoothed
    texture interpolation leaves."""
    s = img.shape[0]
    small = cv2.resize(img, (max(8, int(s * factor)),) * 2, interpolation=cv2.INTER_LINEAR)
    return cv2.resize(small, (s, s), interpolation=cv2.INTER_LINEAR)


def warped(img: np.ndarray, matrix: np.ndarray, inverse: bool = False, border: int = cv2.BORDER_REFLECT_101
           ) -> np.ndarray:
    """Copy-move content: `img` through the 2x3 affine `matrix` (source -> destination pixel, or
    destination -> source with `inverse`), bilinear, the border reflected."""
    h, w = img.shape[:2]
    flags = cv2.INTER_LINEAR | (cv2.WARP_INVERSE_MAP if inverse else 0)
    return cv2.warpAffine(img, matrix, (w, h), flags=flags, borderMode=border)


def removed(rng: np.random.Generator, target: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Removal content: the region filled from its surroundings by OpenCV's inpainting (Telea or
    Navier-Stokes, even odds; radius 3-7 px)."""
    method = cv2.INPAINT_TELEA if rng.random() < 0.5 else cv2.INPAINT_NS
    return cv2.inpaint(target, region * 255, float(rng.integers(3, 8)), method)


def pasted(target: np.ndarray, content: np.ndarray, alpha: np.ndarray, region: np.ndarray | None = None
           ) -> np.ndarray:
    """`content` pasted into `target` (both uint8 (H, W, 3)) through `alpha` ((H, W) float in [0, 1]).

    With `region`, every pixel outside it is the target's exactly, whatever the float rounding did."""
    a = alpha[:, :, None]  # (H, W, 1)
    out = np.clip(target * (1 - a) + content * a + 0.5, 0, 255).astype(np.uint8)
    if region is not None:
        out[region == 0] = target[region == 0]
    return out


def random_region(rng: np.random.Generator, size: int, area: tuple[float, float] = (0.03, 0.35)) -> np.ndarray:
    """A random ellipse, polygon or blob covering a fraction in `area` of a (size, size) uint8 {0,1} mask."""
    target = rng.uniform(*area) * size * size
    shape = rng.choice(["ellipse", "polygon", "blob"])
    cy, cx = rng.uniform(0.25, 0.75, size=2) * size
    mask = np.zeros((size, size), np.uint8)
    if shape == "ellipse":
        ratio = rng.uniform(0.5, 2.0)
        a = np.sqrt(target / np.pi * ratio)
        cv2.ellipse(mask, (int(cx), int(cy)), (max(2, int(a)), max(2, int(a / ratio))),
                    float(rng.uniform(0, 180)), 0, 360, 1, -1)
    elif shape == "polygon":
        k = int(rng.integers(3, 10))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        rad = rng.uniform(0.6, 1.2, k)
        pts = np.stack([np.cos(ang) * rad, np.sin(ang) * rad], 1)  # (k, 2) unit-scale polygon
        unit_area = 0.5 * abs(np.dot(pts[:, 0], np.roll(pts[:, 1], 1)) - np.dot(pts[:, 1], np.roll(pts[:, 0], 1)))
        scale = np.sqrt(target / max(unit_area, 1e-3))
        cv2.fillPoly(mask, [np.round(pts * scale + [cx, cy]).astype(np.int32)], 1)
    else:
        g = max(3, int(rng.integers(3, 7)))
        low = rng.standard_normal((g, g)).astype(np.float32)
        field = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
        field -= np.hypot(*np.meshgrid(np.arange(size) - cx, np.arange(size) - cy)) / size * 2.0
        mask = (field > np.quantile(field, 1 - target / (size * size))).astype(np.uint8)
    if mask.sum() < 0.02 * size * size:  # shape clipped by the border: fall back to a centred ellipse
        mask[:] = 0
        a = max(3, int(np.sqrt(target / np.pi)))
        cv2.ellipse(mask, (size // 2, size // 2), (a, a), 0, 0, 360, 1, -1)
    return mask
