"""Drawing primitives shared by the synthetic chest X-ray and fundus generators (float32 images, sub-pixel via cv2
"shift")."""

from __future__ import annotations

import cv2
import numpy as np


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) % (1 << 63), *keys])


# --------------------------------------------------------------------------------------------
# Drawing primitives (float32 images, coordinates in pixels, sub-pixel via cv2 "shift")
# --------------------------------------------------------------------------------------------

_SHIFT = 4
_ONE = 1 << _SHIFT


def _fx(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points, dtype=np.float64) * _ONE).astype(np.int32).reshape(-1, 1, 2)


def _smooth_closed(points: np.ndarray, n: int = 10) -> np.ndarray:
    """Closed Catmull-Rom curve through ``points`` (k x 2)."""
    p = np.asarray(points, dtype=np.float64)
    k = len(p)
    t = np.linspace(0, 1, n, endpoint=False)[:, None]
    out = []
    for i in range(k):
        p0, p1, p2, p3 = p[i - 1], p[i], p[(i + 1) % k], p[(i + 2) % k]
        out.append(
            0.5
            * (
                2 * p1
                + (-p0 + p2) * t
                + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3
            )
        )
    return np.concatenate(out)


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0.3:
        return a
    return cv2.GaussianBlur(a, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)


def _poly_mask(size: int, pts: np.ndarray, sigma: float = 0.0) -> np.ndarray:
    m = np.zeros((size, size), np.float32)
    cv2.fillPoly(m, [_fx(pts)], 1.0, cv2.LINE_AA, _SHIFT)
    return _blur(m, sigma)


def _disc(size: int, center, radius: float, sigma: float = 0.0, value: float = 1.0) -> np.ndarray:
    m = np.zeros((size, size), np.float32)
    cv2.circle(m, tuple(int(v) for v in _fx(center).ravel()), int(round(radius * _ONE)), value, -1, cv2.LINE_AA, _SHIFT)
    return _blur(m, sigma)


def _ellipse(size: int, center, axes, angle: float, sigma: float = 0.0) -> np.ndarray:
    m = np.zeros((size, size), np.float32)
    c = tuple(int(v) for v in _fx(center).ravel())
    a = (int(round(axes[0] * _ONE)), int(round(axes[1] * _ONE)))
    cv2.ellipse(m, c, a, float(angle), 0, 360, 1.0, -1, cv2.LINE_AA, _SHIFT)
    return _blur(m, sigma)


def _polyline(img: np.ndarray, pts, value: float, thickness: int) -> None:
    cv2.polylines(img, [_fx(pts)], False, value, max(1, int(thickness)), cv2.LINE_AA, _SHIFT)


def _bbox(mask: np.ndarray, frac: float = 0.3) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of the pixels above ``frac`` of the mask's maximum."""
    peak = float(np.abs(mask).max())
    if peak <= 0:
        return (0.0, 0.0, 1.0, 1.0)
    x, y, w, h = cv2.boundingRect((np.abs(mask) > frac * peak).astype(np.uint8))
    return (float(x), float(y), float(x + w), float(y + h))


def _lowfreq(rng: np.random.Generator, size: int, grid: int) -> np.ndarray:
    g = rng.standard_normal((grid, grid)).astype(np.float32)
    return cv2.resize(g, (size, size), interpolation=cv2.INTER_CUBIC)
