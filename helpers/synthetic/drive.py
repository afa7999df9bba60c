"""Synthetic fundus photographs, vessel trees and FOV masks written in exactly the DRIVE layout (``helpers.synthetic``
caches them)."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from helpers.synthetic.draw import _blur, _disc, _ellipse, _fx, _lowfreq, _rng, _SHIFT

_S_DRIVE = 12  # the seed stream of the fundus photographs (helpers.synthetic numbers the chest X-ray streams 1-11)


# --------------------------------------------------------------------------------------------
# DRIVE: fundus photographs, vessel trees, FOV masks
# --------------------------------------------------------------------------------------------


def _drive_fov(width: int, height: int) -> tuple[np.ndarray, tuple[float, float, float]]:
    cx, cy, r = (width - 1) / 2, (height - 1) / 2, min(270.0, 0.478 * min(width, height))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    return ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r), (cx, cy, r)


def _vessel_tree(rng: np.random.Generator, disc, macula, side: int, fov) -> list[tuple[np.ndarray, float, bool]]:
    """Segments (points, width, is_vein) of a branching vessel tree leaving the optic disc."""
    cx, cy, R = fov
    segments: list[tuple[np.ndarray, float, bool]] = []
    step = 4.0

    def inside(p, slack=6.0):
        return (p[0] - cx) ** 2 + (p[1] - cy) ** 2 <= (R + slack) ** 2

    mx, my = macula

    def grow(p, heading, width, curv, vein, depth):
        if width < 0.75 or depth > 14 or len(segments) > 1000:
            return
        length = rng.uniform(35, 70) * (0.55 + 0.45 * min(1.0, width / 4))
        pts = [p]
        stop = False
        for _ in range(max(2, int(length / step))):
            heading += curv + rng.normal(0, 0.05)
            dxm, dym = p[0] - mx, p[1] - my
            dm = math.hypot(dxm, dym)
            if dm < 130:  # vessels skirt the macula and never reach the fovea
                heading += 0.12 * (1 - dm / 130) * math.sin(math.atan2(dym, dxm) - heading)
            p = p + step * np.array([math.cos(heading), math.sin(heading)])
            pts.append(p)
            if not inside(p) or dm < 28:
                stop = True
                break
        segments.append((np.array(pts), width, vein))
        if stop:
            return
        turn = rng.choice([-1.0, 1.0])
        grow(p, heading + turn * rng.uniform(0.05, 0.25), width * rng.uniform(0.78, 0.88), curv * 0.85, vein, depth + 1)
        grow(p, heading - turn * rng.uniform(0.45, 1.0), width * rng.uniform(0.45, 0.65),
             rng.normal(0, 0.012), vein, depth + 1)  # fmt: skip

    # arcades: up and down from the disc, bending towards the macula (temporal = -side in x)
    for vein in (True, False):
        w0 = (7.0 if vein else 5.5) * rng.uniform(0.92, 1.05)
        for up in (-1, 1):
            base = math.pi / 2 * up  # +pi/2 points down in image coordinates
            tilt = side * up * 0.30  # lean temporally
            head = base + tilt + (0.10 if vein else -0.10) * side * up + rng.normal(0, 0.08)
            curv = side * up * rng.uniform(0.020, 0.028)
            start = np.array(disc[:2]) + np.array([rng.normal(0, 3), up * disc[2] * 0.3])
            grow(start, head, w0, curv, vein, 0)
            # nasal branches
            head_n = (0.0 if side > 0 else math.pi) + up * rng.uniform(0.4, 0.9)
            grow(start, head_n, w0 * 0.6, -curv * 0.4, vein, 2)
        # small temporal twigs towards the macula
        head_t = (math.pi if side > 0 else 0.0) + rng.normal(0, 0.2)
        grow(np.array(disc[:2], dtype=float), head_t, 2.2, 0.0, vein, 5)
    return segments


def _render_fundus(seed: int, image_id: int, width: int, height: int):
    """Return (RGB uint8 image, manual1 bool, manual2 bool, FOV bool) for one DRIVE-like photograph."""
    rng = _rng(seed, _S_DRIVE, image_id)
    fov, (cx, cy, R) = _drive_fov(width, height)
    side = 1 if rng.random() < 0.5 else -1  # +1: optic disc on the right of the image
    disc = (cx + side * rng.uniform(150, 185), cy + rng.uniform(-30, 30), rng.uniform(36, 44))
    mac = (disc[0] - side * rng.uniform(185, 225), disc[1] + rng.uniform(0, 25))

    segs = _vessel_tree(rng, disc, mac, side, (cx, cy, R))
    m1 = np.zeros((height, width), np.uint8)
    m2 = np.zeros((height, width), np.uint8)
    depth = np.zeros((height, width), np.float32)
    for pts, w, vein in segs:
        th = max(1, int(round(w)))
        q = _fx(pts)
        cv2.polylines(m1, [q], False, 1, th, cv2.LINE_8, _SHIFT)
        drop = w < 1.35 and rng.random() < 0.35  # the second observer misses some capillaries
        if not drop:
            cv2.polylines(m2, [q], False, 1, th, cv2.LINE_8, _SHIFT)
        d = (0.60 if vein else 0.48) * (0.70 + 0.30 * min(1.0, w / 6))
        cv2.polylines(depth, [q], False, d, th, cv2.LINE_8, _SHIFT)
    widen = (_lowfreq(rng, max(width, height), 9)[:height, :width] > 0.6) & (
        cv2.dilate(m2, np.ones((3, 3), np.uint8)) > 0
    )  # ... and draws some edges a pixel wider
    m2 = (m2 > 0) | widen
    m1 = (m1 > 0) & fov
    m2 = m2 & fov
    depth = _blur(depth, 0.5)

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    lx, ly = cx + rng.normal(0, 25), cy + rng.normal(0, 25)
    rr = np.sqrt((xx - lx) ** 2 + (yy - ly) ** 2) / R
    illum = np.clip(1.0 - 0.55 * rr**2.4, 0.15, 1.0)
    tex = (1 + 0.03 * _lowfreq(rng, max(width, height), 12)[:height, :width]
           + 0.02 * _lowfreq(rng, max(width, height), 40)[:height, :width])
    base = np.array([0.86, 0.40, 0.14], np.float32) * rng.uniform(0.9, 1.08, 3).astype(np.float32)
    img = (illum * tex)[..., None] * base
    dm = np.exp(-((xx - mac[0]) ** 2 + (yy - mac[1]) ** 2) / (2 * 55.0**2))
    img *= (1 - dm[..., None] * np.array([0.25, 0.45, 0.40], np.float32))
    dmask = _ellipse(max(width, height), disc[:2], (disc[2], disc[2] * 1.1), 0, 4.0)[:height, :width]
    cup = _disc(max(width, height), (disc[0] - side * 5, disc[1]), disc[2] * 0.45, 4.0)[:height, :width]
    disc_rgb = np.array([1.0, 0.86, 0.58], np.float32)
    img = img * (1 - dmask[..., None]) + dmask[..., None] * (disc_rgb * (0.88 + 0.12 * cup[..., None]))
    img *= 1 - depth[..., None] * np.array([0.22, 0.85, 0.50], np.float32)
    img += rng.normal(0, 0.012, img.shape).astype(np.float32)
    img = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    img[~fov] = 0
    return img, m1, m2, fov


def _write_gif_grey(path: Path, mask: np.ndarray) -> None:
    # optimize=False keeps Pillow's identity grey palette, so the file reads back as values 0/255
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(path, format="GIF", optimize=False)


def _write_gif_palette(path: Path, mask: np.ndarray) -> None:
    h, w = mask.shape
    img = Image.frombytes("P", (w, h), mask.astype(np.uint8).tobytes())
    img.putpalette([0, 0, 0, 255, 255, 255])  # index 1 is white, as in DRIVE's 2nd_manual files
    img.save(path, format="GIF", optimize=False)


def write_drive(root, *, train_ids=range(21, 41), test_ids=range(1, 21), seed: int = 42, width=565, height=584) -> Path:
    """Write a synthetic dataset in the DRIVE layout under ``root`` and return ``root``.

    Taught in 03_unet_vessels.
    """
    root = Path(root)
    train_ids, test_ids = [int(i) for i in train_ids], [int(i) for i in test_ids]
    if set(train_ids) & set(test_ids):
        raise ValueError(f"train_ids and test_ids overlap: {sorted(set(train_ids) & set(test_ids))}.")
    for split, ids in (("training", train_ids), ("test", test_ids)):
        subs = ("images", "1st_manual", "mask") + (("2nd_manual",) if split == "test" else ())
        for sub in subs:
            (root / split / sub).mkdir(parents=True, exist_ok=True)
        for i in ids:
            img, m1, m2, fov = _render_fundus(seed, i, int(width), int(height))
            Image.fromarray(img).save(root / split / "images" / f"{i:02d}_{split}.tif", format="TIFF")
            _write_gif_grey(root / split / "1st_manual" / f"{i:02d}_manual1.gif", m1)
            _write_gif_grey(root / split / "mask" / f"{i:02d}_{split}_mask.gif", fov)
            if split == "test":
                _write_gif_palette(root / split / "2nd_manual" / f"{i:02d}_manual2.gif", m2)
    return root
