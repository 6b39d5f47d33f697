"""Robustness attacks of the paper's Table 3 (§4.2): parsing a spec and attacking one image.

Every attack acts on the uint8 RGB image before normalisation; the ground-truth mask is never
touched. Metrics stay at the mask's (original) resolution: after ``resize`` the predictor's map
is resized back to the mask's size (docs/evaluation.md, "Robustness").

Specs are ``"KIND:VALUE"`` strings:

- ``resize:F``  scale both sides by F, 0 < F <= 4 (cv2.resize, its default bilinear interpolation).
- ``blur:K``    Gaussian blur with a K x K kernel, K odd, 1 <= K <= MAX_BLUR, sigma from OpenCV's rule for K
  (sigma = 0.3 * ((K - 1) * 0.5 - 1) + 0.8, i.e. ``cv2.GaussianBlur(img, (K, K), 0)``).
- ``noise:S``   add i.i.d. Gaussian noise of std S on the 0-255 scale, round, clip to 0..255.
- ``jpeg:Q``    encode as JPEG with quality Q (OpenCV, 4:2:0 chroma) and decode.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import cv2
import numpy as np

__all__ = [
    "ATTACK_KINDS",
    "MAX_RESIZE",
    "MAX_BLUR",
    "TABLE3_ATTACKS",
    "Attack",
    "parse_attack",
    "apply_attack",
]

ATTACK_KINDS = ("resize", "blur", "noise", "jpeg")
MAX_RESIZE = 4.0  # larger factors only blow memory up (Table 3 goes down to 0.25, never up)
MAX_BLUR = 255  # sigma ~38 px; larger kernels only take minutes (Table 3 uses 3 and 5)

# Table 3's rows in the paper's order (the "None" row is the clean run).
TABLE3_ATTACKS = ("resize:0.78", "resize:0.25", "blur:3", "blur:5", "noise:3", "noise:5", "jpeg:50", "jpeg:100")


class Attack(NamedTuple):
    """One parsed attack: kind in ATTACK_KINDS and its value (float for resize/noise, int otherwise)."""

    kind: str
    value: float

    def __str__(self) -> str:
        return f"{self.kind}:{self._value}"

    @property
    def _value(self) -> str:
        return str(self.value) if isinstance(self.value, int) else f"{self.value:g}"

    @property
    def label(self) -> str:
        """The row name used by the paper's Table 3."""
        return {
            "resize": f"Resize({self._value}x)",
            "blur": f"GaussianBlur(size={self._value})",
            "noise": f"GaussianNoise(sigma={self._value})",
            "jpeg": f"JPEGCompress({self._value})",
        }[self.kind]


def parse_attack(spec: str | Attack) -> Attack:
    """``"KIND:VALUE"`` -> Attack; a bad spec raises ValueError naming the valid kinds and ranges."""
    if isinstance(spec, Attack):
        return spec
    help_text = (f"expected 'KIND:VALUE' with KIND one of resize (factor in (0, {MAX_RESIZE:g}]), "
                 f"blur (odd kernel size 1..{MAX_BLUR}), "
                 "noise (std >= 0 on the 0-255 scale), jpeg (quality 0..100), e.g. 'jpeg:50'")
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ValueError(f"bad attack {spec!r}; {help_text}")
    kind, text = (part.strip() for part in spec.split(":"))
    kind = kind.lower()
    if kind not in ATTACK_KINDS:
        raise ValueError(f"unknown attack kind {kind!r} in {spec!r}; {help_text}")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"bad attack value {text!r} in {spec!r}; {help_text}") from None
    if not math.isfinite(value):
        raise ValueError(f"attack value {text!r} in {spec!r} must be a finite number; {help_text}")
    integral = value.is_integer()
    if kind == "resize" and not 0 < value <= MAX_RESIZE:
        raise ValueError(f"resize factor {text} in {spec!r} must be > 0 and <= {MAX_RESIZE:g}")
    if kind == "blur" and not (integral and 1 <= value <= MAX_BLUR and int(value) % 2 == 1):
        raise ValueError(f"blur kernel size {text} in {spec!r} must be an odd integer from 1 to {MAX_BLUR}")
    if kind == "noise" and not value >= 0:
        raise ValueError(f"noise std {text} in {spec!r} must be >= 0")
    if kind == "jpeg" and not (integral and 0 <= value <= 100):
        raise ValueError(f"JPEG quality {text} in {spec!r} must be an integer in 0..100")
    return Attack(kind, int(value) if kind in ("blur", "jpeg") else value)


def apply_attack(image: np.ndarray, attack: str | Attack, seed: int | Sequence[int] = 0) -> np.ndarray:
    """Attack one uint8 RGB image (paper Table 3).

    Args:
        image: uint8 RGB. Shape (H, W, 3).
        attack: spec string such as ``"blur:3"`` or an Attack.
        seed: seeds the noise (numpy ``default_rng(seed)``); other attacks are deterministic.
    Returns:
        uint8 RGB; shape (H, W, 3), or (round(H*F), round(W*F), 3) for ``resize:F``.
    """
    atk = parse_attack(attack)
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError("apply_attack expects a uint8 RGB image of shape (H, W, 3)")
    h, w = image.shape[:2]
    if atk.kind == "resize":
        size = (max(1, round(w * atk.value)), max(1, round(h * atk.value)))  # cv2 wants (W, H)
        return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    if atk.kind == "blur":
        k = int(atk.value)
        return cv2.GaussianBlur(image, (k, k), 0)  # sigma 0: OpenCV derives it from k
    if atk.kind == "noise":
        noise = np.random.default_rng(seed).normal(0.0, atk.value, size=image.shape)  # (H, W, 3)
        return np.clip(np.rint(image + noise), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(atk.value)])
    if not ok:
        raise ValueError(f"OpenCV could not JPEG-encode an image of shape {image.shape}")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
