"""Synthetic datasets written in exactly the real layouts: the NIH ChestX-ray14 writer here, the others beside it.

The package: this module (chest films in the NIH layout, ``ensure``, the command line), ``draw`` (the drawing
primitives), ``drive`` (fundus photographs in the DRIVE layout), ``cells`` (nuclei in the Data Science Bowl 2018
layout) and ``site`` (an external site's DICOM export, notebook 09).

Every file is a pure function of the generator's parameters and the seed: each patient, image and
fundus photograph draws from its own NumPy generator (``default_rng([seed, stream, patient, ...])``),
so the bytes do not depend on the order of generation, and the same seed gives byte-identical files.
The loaders in ``helpers.datasets`` read these files and the real ones through the same code path.

Command line::

    python -m helpers.synthetic [--profile smoke|lab|full] [--dataset nih|drive|dsb2018|all] [--force]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from helpers import config as _config
from helpers.synthetic import cells as _cells
from helpers.synthetic import site as _site
from helpers.datasets import BOX_LABELS, LABELS
from helpers.synthetic.draw import (_ONE, _SHIFT, _bbox, _blur, _disc, _ellipse, _fx, _lowfreq, _poly_mask, _polyline,
                                    _rng, _smooth_closed)
from helpers.synthetic.drive import write_drive
from helpers.errors import DataError

FORMAT_VERSION = 4  # 4: boxes only on images of test_list.txt, as in the real release
MARKER = ".medxai_synthetic.json"

# Per profile. The full profile reads the real data; its sizes are only used by the command line.
NIH_SIZES: dict[str, dict] = {
    "smoke": dict(patients=40, image_size=128),
    "lab": dict(patients=320, image_size=256),
    "full": dict(patients=300, image_size=1024),
}
DRIVE_SIZES: dict[str, dict] = {
    "smoke": dict(train_ids=tuple(range(21, 27)), test_ids=tuple(range(1, 5)), width=565, height=584),
    "lab": dict(train_ids=tuple(range(21, 41)), test_ids=tuple(range(1, 21)), width=565, height=584),
    "full": dict(train_ids=tuple(range(21, 41)), test_ids=tuple(range(1, 21)), width=565, height=584),
}

BBOX_NAME = {label: ("Infiltrate" if label == "Infiltration" else label) for label in BOX_LABELS}
DATA_ENTRY_HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],"
)
BBOX_HEADER = "Image Index,Finding Label,Bbox [x,y,w,h],,,"

# Target share of images per label (NIH-like order, with a floor of ~3%), and the part of it
# that comes from acute, one-image findings; the rest are a patient's chronic findings.
_TARGET = {
    "Infiltration": 0.18, "Effusion": 0.12, "Atelectasis": 0.10, "Nodule": 0.06, "Mass": 0.055,
    "Pneumothorax": 0.052, "Consolidation": 0.048, "Pleural_Thickening": 0.045, "Cardiomegaly": 0.042,
    "Emphysema": 0.040, "Edema": 0.039, "Fibrosis": 0.037, "Pneumonia": 0.036, "Hernia": 0.032,
}  # fmt: skip
_ACUTE = {
    "Infiltration": 0.04, "Effusion": 0.015, "Atelectasis": 0.015, "Pneumonia": 0.008,
    "Consolidation": 0.008, "Edema": 0.006, "Pneumothorax": 0.004,
}  # fmt: skip
_CHRONIC_P = 0.8  # chance that a chronic finding shows on a given image of its patient
_SICK_FRACTION = 0.45  # share of patients with at least one chronic finding
_MAX_CHRONIC = 4

# Seed streams: each kind of draw has its own, so adding one kind never shifts another.
_S_ANATOMY, _S_PATIENT, _S_PLAN, _S_IMAGE, _S_LABELS, _S_ANCHOR = 1, 2, 3, 4, 5, 6
# 12: the fundus photographs (synthetic.drive)
_S_CHRONIC_LOC, _S_ACUTE_LOC, _S_LOOK, _S_SPLIT, _S_RGBA = 7, 8, 9, 10, 11


# --------------------------------------------------------------------------------------------
# Chest X-rays: a patient's anatomy
# --------------------------------------------------------------------------------------------

# Lung outlines in units of the image, x relative to the body's midline; index 0 is the
# patient's right lung (image left, as on a PA film), index 1 the patient's left lung.
_LUNG_R = [(-0.055, 0.21), (-0.13, 0.13), (-0.24, 0.17), (-0.32, 0.33), (-0.35, 0.55), (-0.345, 0.75),
           (-0.25, 0.69), (-0.14, 0.68), (-0.07, 0.62), (-0.06, 0.40)]  # fmt: skip
_LUNG_L = [(0.06, 0.22), (0.13, 0.14), (0.24, 0.18), (0.32, 0.34), (0.35, 0.56), (0.345, 0.78),
           (0.25, 0.73), (0.15, 0.72), (0.09, 0.66), (0.065, 0.40)]  # fmt: skip
_HEART_LEVEL = 0.62  # density of the heart and mediastinal soft tissue


def _anatomy(seed: int, patient: int, size: int) -> dict[str, Any]:
    """A patient's chest: density map without lung markings, markings, and the geometry findings use."""
    rng = _rng(seed, _S_ANATOMY, patient)
    S = size
    cx = 0.5 + rng.uniform(-0.015, 0.015)
    bw = rng.uniform(0.80, 0.94)  # body width, fraction of the image
    sx = bw / 0.87
    sy = rng.uniform(0.94, 1.06)
    y0 = rng.uniform(-0.02, 0.02)

    def px(dx, y):
        return np.array([(cx + dx * sx) * S, (0.45 + (y - 0.45) * sy + y0) * S])

    lungs = []
    for ctrl, scale in ((_LUNG_R, rng.uniform(0.95, 1.05)), (_LUNG_L, rng.uniform(0.95, 1.05))):
        pts = np.array([px(dx * scale, y) for dx, y in ctrl]) + rng.normal(0, 0.008 * S, (len(ctrl), 2))
        lungs.append(_smooth_closed(pts, 12))
    lung_masks = [_poly_mask(S, p, 0.006 * S) for p in lungs]
    lung_any = np.maximum(lung_masks[0], lung_masks[1])

    hs = rng.uniform(0.88, 1.12)
    heart = dict(
        center=px(0.065 + rng.uniform(-0.015, 0.015), 0.60 + rng.uniform(-0.02, 0.02)),
        axes=np.array([0.16 * sx * hs * S, 0.115 * hs * sy * S]),
        angle=rng.uniform(12, 30),
    )
    heart_mask = _ellipse(S, heart["center"], heart["axes"], heart["angle"], 0.006 * S)

    yy = (np.arange(S, dtype=np.float32) / S)[:, None] * np.ones((1, S), np.float32)
    D = np.full((S, S), 0.02, np.float32)

    # soft tissue of the trunk, the arms and the abdomen
    half = bw / 2
    body = [(cx - 0.07, -0.05), (cx - 0.08, 0.06), (cx - 0.30 * sx, 0.085), (cx - half, 0.2), (cx - half - 0.012, 0.5),
            (cx - half, 1.05), (cx + half, 1.05), (cx + half + 0.012, 0.5), (cx + half, 0.2), (cx + 0.30 * sx, 0.085),
            (cx + 0.08, 0.06), (cx + 0.07, -0.05)]  # fmt: skip
    D += 0.40 * _poly_mask(S, _smooth_closed(np.array(body) * S, 8), 0.008 * S)
    for side in (-1, 1):
        x_in = cx + side * (half + 0.025)
        arm = [(x_in, 0.16), (x_in + side * 0.09, 0.10), (x_in + side * 0.12, 1.05), (x_in + side * 0.01, 1.05)]
        D += 0.30 * _poly_mask(S, np.array(arm) * S, 0.01 * S)
        D += 0.28 * _disc(S, (np.array([cx + side * (half + 0.015), 0.14]) * S), 0.065 * S, 0.01 * S)
    D += 0.10 * np.clip((yy - 0.70) / 0.08, 0, 1)  # liver and abdomen

    # mediastinum, aortic knob, spine with disc spaces
    med = [(cx - 0.065, 0.08), (cx + 0.065, 0.08), (cx + 0.085, 0.78), (cx - 0.085, 0.78)]
    D += 0.18 * _poly_mask(S, np.array(med) * S, 0.012 * S)
    D += 0.10 * _disc(S, px(0.065, 0.28), 0.04 * S, 0.008 * S)
    spine = np.zeros((S, S), np.float32)
    xa, xb = int((cx - 0.03) * S), int((cx + 0.03) * S)
    cv2.rectangle(spine, (xa, 0), (xb, S), 1.0, -1)
    phase = rng.uniform(0, 0.045)
    for k in range(24):
        y = int((phase + k * 0.045) * S)
        cv2.line(spine, (xa, y), (xb, y), 0.45, max(1, int(0.006 * S)))
    D += 0.12 * _blur(spine, 0.006 * S)

    # lungs: air makes them dark, a little denser towards the bases
    D -= lung_any * (0.28 - 0.06 * np.clip((yy - 0.3) / 0.5, 0, 1))

    # ribs (posterior arcs from the spine, fainter anterior arcs) and clavicles
    bones = np.zeros((S, S), np.float32)
    rib_phase = rng.uniform(-0.02, 0.02)
    rib_gap = 0.062 * sy * rng.uniform(0.95, 1.05)
    t = np.linspace(0, 1, 16)
    th = max(1, int(round(0.016 * S)))
    for k in range(10):
        yk = 0.13 + rib_phase + k * rib_gap + y0
        for side in (-1, 1):
            xs = cx + side * (0.035 + 0.33 * sx * t)
            ys = yk - 0.03 * np.sin(np.pi * t * 0.8) + 0.15 * t**2
            _polyline(bones, np.stack([xs, ys], 1) * S, 0.07, th)
            xa = cx + side * (0.34 - 0.24 * t) * sx
            ya = yk + 0.10 + 0.08 * t - 0.02 * np.sin(np.pi * t)
            _polyline(bones, np.stack([xa, ya], 1) * S, 0.03, th)
    for side in (-1, 1):
        xs = cx + side * (0.045 + 0.25 * sx * t)
        ys = 0.185 + y0 - 0.075 * t + 0.012 * np.sin(2 * np.pi * t)
        _polyline(bones, np.stack([xs, ys], 1) * S, 0.15, max(1, int(round(0.022 * S))))
    D += _blur(bones, 0.004 * S)
    D += heart_mask * np.maximum(_HEART_LEVEL - D, 0)  # the heart shadow hides what lies behind it

    # patient-specific texture: low-frequency density variation
    D += 0.04 * _lowfreq(rng, S, 7)

    # lung markings: vessels radiating from the hila plus fine texture; findings may erase them
    mk = np.zeros((S, S), np.float32)
    thin = max(1, int(round(S / 200)))
    for side, hilum in ((-1, px(-0.10, 0.45)), (1, px(0.11, 0.46))):
        for _ in range(16):
            ang = math.radians(rng.uniform(-75, 75)) + (math.pi if side < 0 else 0.0)
            length = rng.uniform(0.12, 0.30) * S
            bend = rng.uniform(-0.3, 0.3)
            seg = []
            for s in np.linspace(0, 1, 8):
                a = ang + bend * s
                seg.append(hilum + s * length * np.array([math.cos(a), math.sin(a)]))
            seg = np.array(seg)
            _polyline(mk, seg[:5], 0.06, thin + 1)
            _polyline(mk, seg[4:], 0.04, thin)
    mk = _blur(mk, 0.004 * S)
    fine = _blur(rng.standard_normal((S, S)).astype(np.float32), S / 150)
    fine *= 0.016 / (float(fine.std()) + 1e-6)
    markings = (mk + fine) * lung_any * (1 - 0.85 * heart_mask)

    return dict(
        size=S, cx=cx * S, sx=sx, sy=sy, base=D, markings=markings, lungs=lungs, lung_masks=lung_masks,
        lung_any=lung_any, heart=heart, heart_mask=heart_mask,
        exposure=(rng.uniform(1.0, 1.25), rng.uniform(-0.05, 0.06), rng.uniform(0.85, 1.15)),
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Chest X-rays: findings. Each returns a dict with optional "blend": (mask, target density),
# "add": density layer, "erase": mask of lung markings removed, and "box": (x0, y0, x1, y1).
# --------------------------------------------------------------------------------------------


def _in_lung(an, rng, side=None, zone=(0.15, 0.85), margin=0.0, lateral=None):
    """A point well inside a lung: ``zone`` is the vertical range as a fraction of the lung's height."""
    if side is None:
        side = int(rng.integers(2))
    poly = an["lungs"][side].astype(np.float32)
    x0, y0 = poly.min(0)
    x1, y1 = poly.max(0)
    best, best_d = None, -1e9
    for _ in range(40):
        if lateral is None:
            fx = rng.uniform(0.2, 0.8)
        else:  # 0 = medial, 1 = lateral
            fx = lateral if side == 1 else 1 - lateral
            fx = float(np.clip(fx + rng.uniform(-0.1, 0.1), 0.05, 0.95))
        p = (x0 + fx * (x1 - x0), y0 + rng.uniform(*zone) * (y1 - y0))
        d = cv2.pointPolygonTest(poly.reshape(-1, 1, 2), (float(p[0]), float(p[1])), True)
        if d >= margin:
            return np.array(p), side
        if d > best_d:
            best, best_d = np.array(p), d
    return best, side


def _lung(an, side: int):
    """A lung's outline and its bounding extent: (poly, x0, y0, x1, y1)."""
    poly = an["lungs"][side]
    (x0, y0), (x1, y1) = poly.min(0), poly.max(0)
    return poly, x0, y0, x1, y1


def _f_mass(an, rng):
    S = an["size"]
    r = rng.uniform(0.10, 0.13) * S
    c, _ = _in_lung(an, rng, margin=0.5 * r)
    m = _disc(S, c, r)
    for _ in range(3):  # lobulated edge
        a = rng.uniform(0, 2 * math.pi)
        m = np.maximum(m, _disc(S, c + 0.45 * r * np.array([math.cos(a), math.sin(a)]), 0.55 * r))
    m = _blur(m, 0.08 * r)
    return dict(blend=(m, 0.72), box=_bbox(m))


def _f_nodule(an, rng):
    S = an["size"]
    r = rng.uniform(0.055, 0.07) * S
    c, _ = _in_lung(an, rng, margin=r)
    m = _disc(S, c, r, 0.12 * r)
    return dict(blend=(m, 0.72), box=_bbox(m))


def _f_effusion(an, rng):
    S = an["size"]
    side = int(rng.integers(2))
    poly, x0, y0, x1, y1 = _lung(an, side)
    h = y1 - y0
    xx = np.arange(S, dtype=np.float32)[None, :]
    yy = np.arange(S, dtype=np.float32)[:, None]
    lat = (xx - x1) / (x0 - x1) if side == 0 else (xx - x0) / (x1 - x0)  # 0 medial .. 1 lateral
    lat = np.clip(lat, 0, 1)
    level = y1 - h * (rng.uniform(0.16, 0.22) + rng.uniform(0.14, 0.20) * lat**2)  # meniscus rises laterally
    fluid = np.clip((yy - level) / (0.012 * S) + 0.5, 0, 1)
    m = _blur(fluid * an["lung_masks"][side], 0.006 * S)
    return dict(blend=(m, 0.60), erase=m, box=_bbox(m))


def _f_cardiomegaly(an, rng):
    S = an["size"]
    hrt = an["heart"]
    f = rng.uniform(1.35, 1.50)  # well clear of the normal patients' 0.88-1.12
    axes = hrt["axes"] * np.array([f, f * 0.92])
    center = hrt["center"] + np.array([0.25 * (f - 1) * hrt["axes"][0], 0.15 * (f - 1) * hrt["axes"][1]])
    m = _ellipse(S, center, axes, hrt["angle"], 0.006 * S)
    return dict(blend=(m, _HEART_LEVEL), box=_bbox(m, 0.5))


def _f_pneumothorax(an, rng):
    S = an["size"]
    side = int(rng.integers(2))
    poly, x0, _, x1, y1 = _lung(an, side)
    anchor = np.array([x1 if side == 0 else x0, y1]) * 0.7 + np.array([(x0 + x1) / 2, y1]) * 0.3
    k = rng.uniform(0.66, 0.76)
    collapsed = anchor + k * (poly - anchor)
    lung = an["lung_masks"][side]
    inner = _poly_mask(S, collapsed, 0.003 * S)
    cres = np.clip(lung - inner, 0, 1)
    line = np.zeros((S, S), np.float32)
    cv2.polylines(line, [_fx(collapsed)], True, 1.0, max(1, int(round(S / 160))), cv2.LINE_AA, _SHIFT)
    line *= lung
    add = -0.10 * cres + 0.12 * _blur(line, 0.002 * S)
    return dict(add=add, erase=cres, box=_bbox(cres, 0.5))


def _f_atelectasis(an, rng):
    S = an["size"]
    c, side = _in_lung(an, rng, zone=(0.55, 0.85), margin=0.06 * S)
    ang = rng.uniform(-25, 25)
    m = _ellipse(S, c, (rng.uniform(0.14, 0.17) * S, rng.uniform(0.040, 0.048) * S), ang, 0.006 * S)
    m *= np.clip(an["lung_masks"][side] * 1.5, 0, 1)
    return dict(blend=(m, 0.62), box=_bbox(m))


def _f_infiltration(an, rng):
    S = an["size"]
    r = rng.uniform(0.11, 0.14) * S
    c, _ = _in_lung(an, rng, margin=0.5 * r)
    m = np.zeros((S, S), np.float32)
    for _ in range(int(rng.integers(12, 18))):
        off = rng.normal(0, 0.45 * r, 2)
        cv2.circle(m, tuple(int(v) for v in _fx(c + off).ravel()), int(rng.uniform(0.10, 0.22) * r * _ONE),
                   float(rng.uniform(0.5, 1.0)), -1, cv2.LINE_AA, _SHIFT)  # fmt: skip
    m = _blur(m, 0.07 * r) * _disc(S, c, r, 0.15 * r) * np.clip(an["lung_any"] * 1.5, 0, 1)
    m = np.clip(m * 1.4, 0, 1)
    return dict(blend=(m, 0.55), box=_bbox(m, 0.25))


def _f_pneumonia(an, rng):
    S = an["size"]
    r = rng.uniform(0.12, 0.15) * S
    c, side = _in_lung(an, rng, zone=(0.35, 0.85), margin=0.4 * r)
    m = np.zeros((S, S), np.float32)
    for _ in range(6):
        off = rng.normal(0, 0.35 * r, 2)
        cv2.circle(m, tuple(int(v) for v in _fx(c + off).ravel()), int(rng.uniform(0.35, 0.55) * r * _ONE), 1.0,
                   -1, cv2.LINE_AA, _SHIFT)  # fmt: skip
    m = _blur(m, 0.25 * r) * np.clip(an["lung_masks"][side] * 1.5, 0, 1)
    m = np.clip(m * 1.2, 0, 1) * 0.85
    # air bronchograms: dark branching tubes inside the opacity
    tubes = np.zeros((S, S), np.float32)
    toward_hilum = math.pi if side == 1 else 0.0  # from the lateral side towards the hilum
    th = max(1, int(round(S / 100)))
    root = c + 0.6 * r * np.array([math.cos(toward_hilum), 0.0])
    for k in range(3):
        a = toward_hilum + math.pi + (k - 1) * 0.55 + rng.uniform(-0.15, 0.15)  # fanning out laterally
        d = np.array([math.cos(a), math.sin(a)])
        mid = root + 0.6 * r * d + rng.normal(0, 0.06 * r, 2)
        _polyline(tubes, np.array([root + 0.15 * r * d, mid, mid + 0.6 * r * d]), 1.0, th)
    tubes = _blur(tubes, 0.003 * S) * np.clip(m * 1.5, 0, 1)
    return dict(blend=(m, 0.62), add=-0.14 * tubes, box=_bbox(m))


def _f_consolidation(an, rng):
    S = an["size"]
    r = rng.uniform(0.11, 0.13) * S
    c, side = _in_lung(an, rng, zone=(0.4, 0.85), margin=0.5 * r)
    ang = np.sort(rng.uniform(0, 2 * math.pi, 7))
    pts = c + (r * rng.uniform(0.75, 1.1, 7))[:, None] * np.stack([np.cos(ang), np.sin(ang)], 1)
    m = _poly_mask(S, pts, 0.03 * r) * np.clip(an["lung_masks"][side] * 1.5, 0, 1)
    return dict(blend=(m, 0.64), erase=m, box=_bbox(m))


def _f_edema(an, rng):
    S = an["size"]
    m = np.zeros((S, S), np.float32)
    yc = (0.47 + rng.uniform(-0.03, 0.03)) * S
    for side in (-1, 1):
        c = np.array([an["cx"] + side * rng.uniform(0.13, 0.16) * S * an["sx"], yc])
        m = np.maximum(m, _ellipse(S, c, (0.10 * S, 0.15 * S), side * rng.uniform(10, 25), 0.045 * S))
    m = m * np.clip(an["lung_any"] * 1.3, 0, 1)
    # Kerley-like septal lines at the bases
    lines = np.zeros((S, S), np.float32)
    for side, lung in enumerate(an["lungs"]):
        x0, y0 = lung.min(0)
        x1, y1 = lung.max(0)
        xl = x0 if side == 0 else x1
        for k in range(4):
            y = y1 - (0.10 + 0.035 * k) * (y1 - y0)
            _polyline(lines, np.array([[xl, y], [xl + (1 if side == 0 else -1) * 0.05 * S, y]]), 1.0, max(1, S // 200))
    m = np.clip(m + 0.6 * lines * an["lung_any"], 0, 1) * 0.8
    return dict(blend=(m, 0.50), box=_bbox(m))


def _f_emphysema(an, rng):
    S = an["size"]
    yy = np.arange(S, dtype=np.float32)[:, None] / S
    top = float(min(p[:, 1].min() for p in an["lungs"])) / S
    bottom = float(max(p[:, 1].max() for p in an["lungs"])) / S
    cut = top + rng.uniform(0.55, 0.70) * (bottom - top)
    m = an["lung_any"] * np.clip((cut - yy) / 0.04 + 0.5, 0, 1)
    return dict(add=-0.085 * m, erase=0.85 * m, box=_bbox(m, 0.5))


def _f_fibrosis(an, rng):
    S = an["size"]
    r = rng.uniform(0.12, 0.15) * S
    c, side = _in_lung(an, rng, zone=(0.5, 0.85), margin=0.3 * r, lateral=0.7)
    net = np.zeros((S, S), np.float32)
    th = max(1, int(round(S / 110)))  # lines that survive the downsampling to a 128 px model input
    for _ in range(int(rng.integers(30, 40))):
        p = c + rng.uniform(-r, r, 2)
        a = rng.uniform(0, math.pi)
        d = rng.uniform(0.25, 0.5) * r * np.array([math.cos(a), math.sin(a)])
        _polyline(net, np.array([p - d, p + d]), 1.0, th)
    for _ in range(6):  # honeycomb rings
        p = c + rng.uniform(-0.7 * r, 0.7 * r, 2)
        cv2.circle(net, tuple(int(v) for v in _fx(p).ravel()), int(rng.uniform(0.08, 0.14) * r * _ONE), 1.0, th,
                   cv2.LINE_AA, _SHIFT)  # fmt: skip
    m = np.clip(_blur(net, 0.004 * S), 0, 1) * _disc(S, c, r, 0.1 * r) * np.clip(an["lung_masks"][side] * 1.5, 0, 1)
    return dict(blend=(m, 0.75), box=_bbox(m, 0.25))


def _f_pleural_thickening(an, rng):
    S = an["size"]
    side = int(rng.integers(2))
    poly, x0, y0, x1, y1 = _lung(an, side)
    ya = y0 + rng.uniform(0.12, 0.35) * (y1 - y0)
    yb = ya + rng.uniform(0.36, 0.45) * (y1 - y0)
    xmid = (x0 + x1) / 2
    wall = poly[((poly[:, 0] < xmid) if side == 0 else (poly[:, 0] > xmid)) & (poly[:, 1] >= ya) & (poly[:, 1] <= yb)]
    wall = wall[np.argsort(wall[:, 1])]
    m = np.zeros((S, S), np.float32)
    if len(wall) >= 2:
        _polyline(m, wall, 1.0, max(2, int(round(0.05 * S))))
    m = _blur(m, 0.006 * S) * np.clip(an["lung_masks"][side] * 2.0, 0, 1)
    return dict(blend=(m, 0.70), box=_bbox(m))


def _f_hernia(an, rng):
    S = an["size"]
    hrt = an["heart"]
    r = rng.uniform(0.095, 0.11) * S
    c = np.array([an["cx"] + rng.uniform(0.0, 0.05) * S, hrt["center"][1] + 0.75 * hrt["axes"][1]])
    m = _disc(S, c, r, 0.08 * r)
    # A retrocardiac hiatal hernia: a round density with an air-fluid level, unlike any heart outline.
    air = _ellipse(S, c - np.array([0, 0.40 * r]), (0.75 * r, 0.38 * r), 0, 0.06 * r) * m
    return dict(blend=(m, 0.85), add=-0.45 * air, box=_bbox(m))


_FINDINGS = {
    "Atelectasis": _f_atelectasis, "Cardiomegaly": _f_cardiomegaly, "Effusion": _f_effusion,
    "Infiltration": _f_infiltration, "Mass": _f_mass, "Nodule": _f_nodule, "Pneumonia": _f_pneumonia,
    "Pneumothorax": _f_pneumothorax, "Consolidation": _f_consolidation, "Edema": _f_edema,
    "Emphysema": _f_emphysema, "Fibrosis": _f_fibrosis, "Pleural_Thickening": _f_pleural_thickening,
    "Hernia": _f_hernia,
}  # fmt: skip


# --------------------------------------------------------------------------------------------
# Chest X-rays: who has what
# --------------------------------------------------------------------------------------------


def _nih_plan(patients: int, seed: int) -> list[dict]:
    """One record per image: name, patient, follow-up, labels, chronic labels and metadata."""
    P = int(patients)
    if P < 1:
        raise ValueError(f"patients must be at least 1, not {patients!r}.")
    meta = []
    for p in range(1, P + 1):
        r = _rng(seed, _S_PATIENT, p)
        meta.append(
            dict(n=1 + int(r.binomial(5, 0.4)), sex="M" if r.random() < 0.55 else "F", age=int(r.integers(18, 86))))
    N = sum(m["n"] for m in meta)

    rng = _rng(seed, _S_PLAN, P)
    n_sick = int(np.clip(round(_SICK_FRACTION * P), 1, P))
    sick = [int(i) + 1 for i in rng.permutation(P)[:n_sick]]
    chronic: dict[int, list[str]] = {p: [] for p in range(1, P + 1)}
    min_patients = min(3 if P >= 20 else 1, n_sick)
    for label in sorted(LABELS, key=lambda lb: (_TARGET[lb], lb)):  # rarest first
        need = (_TARGET[label] - _ACUTE.get(label, 0.0)) * N
        keys = rng.random(len(sick))
        order = sorted(range(len(sick)),
                       key=lambda i: (len(chronic[sick[i]]) >= _MAX_CHRONIC, len(chronic[sick[i]]), keys[i]))
        got, count = 0.0, 0
        for i in order:
            p = sick[i]
            expected = 1 + _CHRONIC_P * (meta[p - 1]["n"] - 1)
            if count >= min_patients and got + expected / 2 >= need:
                break
            chronic[p].append(label)
            got += expected
            count += 1

    records = []
    for p in range(1, P + 1):
        n = meta[p - 1]["n"]
        anchors = {lb: int(_rng(seed, _S_ANCHOR, p, LABELS.index(lb)).integers(n)) for lb in chronic[p]}
        for f in range(n):
            r = _rng(seed, _S_LABELS, p, f)
            u = r.random(len(LABELS))
            v = r.random(len(LABELS))
            labels = []
            for i, lb in enumerate(LABELS):
                if lb in chronic[p]:
                    if f == anchors[lb] or u[i] < _CHRONIC_P:
                        labels.append(lb)
                elif v[i] < _ACUTE.get(lb, 0.0):  # acute: this image only
                    labels.append(lb)
            view = "PA" if r.random() < 0.6 else "AP"
            width, height = int(r.integers(2400, 3057)), int(r.integers(2400, 3057))
            spacing = [0.143, 0.143, 0.143, 0.143, 0.139, 0.168][int(r.integers(6))]
            records.append(
                dict(
                    name=f"{p:08d}_{f:03d}.png", patient=p, followup=f, labels=labels, chronic=list(chronic[p]),
                    age=min(95, meta[p - 1]["age"] + f // 3), sex=meta[p - 1]["sex"], view=view,
                    width=width, height=height, spacing=spacing,
                )
            )  # fmt: skip
    return records


def _nih_split(records: list[dict], seed: int) -> set[int]:
    """Test patients: about 20%, with about a fifth (at least one) of the patients of every label present on two or
    more."""
    patients = sorted({r["patient"] for r in records})
    has: dict[str, set[int]] = {lb: set() for lb in LABELS}
    for r in records:
        for lb in r["labels"]:
            has[lb].add(r["patient"])
    rng = _rng(seed, _S_SPLIT, len(patients))
    goal = max(1, round(0.2 * len(patients))) if len(patients) > 1 else 0
    test: set[int] = set()
    labels_of = {p: {lb for lb in LABELS if p in has[lb]} for p in patients}
    rarest = sorted(LABELS, key=lambda x: (len(has[x]), x))
    for lb in rarest:  # first one patient per label, preferring patients who bring other missing labels
        if len(has[lb]) < 2 or has[lb] & test or len(test) >= goal:
            continue
        missing = {x for x in LABELS if len(has[x]) >= 2 and not has[x] & test}
        keys = rng.random(len(has[lb]))
        pool = sorted(has[lb])
        best = max(range(len(pool)), key=lambda i: (len(labels_of[pool[i]] & missing), keys[i]))
        test.add(pool[best])
    for lb in rarest:  # then about a fifth of each label's patients
        pool = sorted(has[lb] - test)
        want = round(0.2 * len(has[lb]))
        for i in rng.permutation(len(pool)):
            if len(has[lb] & test) >= want or len(test) >= goal:
                break
            test.add(pool[int(i)])
    rest = [p for p in patients if p not in test]
    for i in rng.permutation(len(rest))[: max(0, goal - len(test))]:
        test.add(rest[int(i)])
    return test


# --------------------------------------------------------------------------------------------
# Chest X-rays: one image
# --------------------------------------------------------------------------------------------


# Focal findings are placed so that they do not cover one another (else a label could be invisible).
_FOCAL = {"Atelectasis", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia", "Consolidation", "Fibrosis",
          "Pleural_Thickening", "Hernia"}  # fmt: skip


def _overlap(a, b) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    return w * h / max(1e-6, min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])))


def _place(an, label: str, rng: np.random.Generator, taken: list) -> dict:
    best = None
    for _ in range(8):
        fd = _FINDINGS[label](an, rng)
        if label not in _FOCAL or not taken:
            return fd
        ov = max(_overlap(fd["box"], b) for b in taken)
        if best is None or ov < best[0]:
            best = (ov, fd)
        if ov <= 0.15:
            break
    return best[1]


def _findings(an, seed: int, record: dict, cache: dict | None) -> dict[str, dict]:
    """The patterns of the record's findings: chronic ones keep their place on every image of the patient."""
    p = record["patient"]
    chronic = None if cache is None else cache.get(("chronic", p))
    if chronic is None:
        chronic, taken = {}, []
        for label in LABELS:  # all of the patient's chronic findings, shown on this image or not
            if label in record["chronic"]:
                chronic[label] = _place(an, label, _rng(seed, _S_CHRONIC_LOC, p, LABELS.index(label)), taken)
                if label in _FOCAL:
                    taken.append(chronic[label]["box"])
        if cache is not None:
            cache[("chronic", p)] = chronic
    taken = [fd["box"] for lb, fd in chronic.items() if lb in _FOCAL]
    out = {}
    for label in record["labels"]:
        if label in chronic:
            out[label] = chronic[label]
        else:
            rng = _rng(seed, _S_ACUTE_LOC, p, record["followup"], LABELS.index(label))
            out[label] = _place(an, label, rng, taken)
            if label in _FOCAL:
                taken.append(out[label]["box"])
    return out


def _render_chest(an, seed: int, record: dict, findings: dict[str, dict] | None = None, with_findings: bool = True):
    """Return (uint8 image, {label: (x, y, w, h)}) for one record; ``findings`` caches chronic patterns."""
    S = an["size"]
    p, f = record["patient"], record["followup"]
    rng = _rng(seed, _S_IMAGE, p, f)
    dx, dy = rng.uniform(-0.018, 0.018, 2) * S
    scale = rng.uniform(0.985, 1.015)
    c0, b0, g0 = an["exposure"]
    contrast = c0 * rng.uniform(0.97, 1.03) * (0.98 if record["view"] == "AP" else 1.0)
    bright = b0 + rng.uniform(-0.015, 0.015)
    gamma = g0 * rng.uniform(0.97, 1.03)
    sigma = rng.uniform(0.010, 0.020)
    noise = rng.standard_normal((S, S), dtype=np.float32)

    todo = []
    if with_findings:
        for label, fd in _findings(an, seed, record, findings).items():
            look = _rng(seed, _S_LOOK, p, f, LABELS.index(label)).uniform(0.88, 1.0)
            todo.append((label, fd, look))

    erase = np.zeros((S, S), np.float32)
    for _, fd, look in todo:
        if "erase" in fd:
            erase = np.maximum(erase, fd["erase"] * look)
    D = an["base"] + an["markings"] * (1.0 - erase)
    for _, fd, look in todo:
        if "blend" in fd:
            m, target = fd["blend"]
            D += (look * m) * np.maximum(target - D, 0)
        if "add" in fd:
            D += look * fd["add"]

    img = np.clip(contrast * D + bright, 0, 1) ** gamma
    M = np.array([[scale, 0, (1 - scale) * S / 2 + dx], [0, scale, (1 - scale) * S / 2 + dy]], np.float32)
    img = cv2.warpAffine(img, M, (S, S), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    img = img + sigma * _blur(noise, 0.35 + S / 1024) * (1.6 if S >= 512 else 1.0)
    out = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)

    boxes = {}
    for label, fd, _ in todo:
        x0, y0, x1, y1 = fd["box"]
        x0, x1 = (np.array([x0, x1]) * scale + (1 - scale) * S / 2 + dx).clip(0, S)
        y0, y1 = (np.array([y0, y1]) * scale + (1 - scale) * S / 2 + dy).clip(0, S)
        boxes[label] = (float(x0), float(y0), float(x1 - x0), float(y1 - y0))
    return out, boxes


def _num(v: float) -> str:
    return repr(round(float(v), 3))


def _write_png(path: Path, array: np.ndarray) -> None:
    Image.fromarray(array).save(path, format="PNG", optimize=False, compress_level=6)


def write_nih(root, *, patients: int, image_size: int, seed: int = 42, rgba_fraction: float = 0.01) -> Path:
    """Write a synthetic dataset in the NIH ChestX-ray14 layout under ``root`` and return ``root``.

    As in the real release, ``BBox_List_2017.csv`` boxes images of ``test_list.txt`` only (every boxed finding
    on every test image: the real share, 880 of 25,596 test images, would leave one or two boxes at these sizes).

    Taught in 01_preprocessing_and_splits.
    """
    root = Path(root)
    size = int(image_size)
    if size < 32:
        raise ValueError(f"image_size must be at least 32 pixels, not {image_size!r}.")
    records = _nih_plan(patients, seed)
    n = len(records)
    k = int(round(rgba_fraction * n))
    if rgba_fraction > 0 and n >= 50:
        k = max(k, 1)
    rgba = {int(i) for i in _rng(seed, _S_RGBA, n).permutation(n)[:k]}
    (root / "images").mkdir(parents=True, exist_ok=True)

    entry_rows, box_rows = [DATA_ENTRY_HEADER], [BBOX_HEADER]
    test = _nih_split(records, seed)
    anatomy, cache, current = None, {}, None
    for i, rec in enumerate(records):
        if rec["patient"] != current:
            current, anatomy, cache = rec["patient"], _anatomy(seed, rec["patient"], size), {}
        img, boxes = _render_chest(anatomy, seed, rec, cache)
        if i in rgba:
            img = np.dstack([img, img, img, np.full_like(img, 255)])
        _write_png(root / "images" / rec["name"], img)
        labels = "|".join(sorted(rec["labels"])) or "No Finding"
        entry_rows.append(
            f"{rec['name']},{labels},{rec['followup']},{rec['patient']},{rec['age']},{rec['sex']},{rec['view']},"
            f"{rec['width']},{rec['height']},{rec['spacing']!r},{rec['spacing']!r},"
        )
        for label in sorted(boxes) if rec["patient"] in test else ():  # the real release boxes test images only
            if label in BBOX_NAME:
                x, y, w, h = boxes[label]
                box_rows.append(f"{rec['name']},{BBOX_NAME[label]},{_num(x)},{_num(y)},{_num(w)},{_num(h)},,,")

    _write_text(root / "Data_Entry_2017.csv", entry_rows)
    _write_text(root / "BBox_List_2017.csv", box_rows)
    _write_text(root / "train_val_list.txt", [r["name"] for r in records if r["patient"] not in test])
    _write_text(root / "test_list.txt", [r["name"] for r in records if r["patient"] in test])
    return root


def _write_text(path: Path, lines: list[str]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("\n".join(lines) + "\n")


# --------------------------------------------------------------------------------------------
# Cache management
# --------------------------------------------------------------------------------------------


def _params(name: str, profile: str) -> dict:
    sizes = {"nih": NIH_SIZES, "drive": DRIVE_SIZES, _cells.NAME: _cells.SIZES, _site.NAME: _site.SIZES}[name]
    return {k: (list(v) if isinstance(v, (range, tuple, list)) else v) for k, v in sizes[profile].items()}


def _marker(name: str, params: dict, seed: int) -> dict:
    return {"generator": "helpers.synthetic", "format_version": FORMAT_VERSION, "dataset": name, "seed": int(seed),
            "params": params}


def _is_complete(path: Path, expected: dict) -> bool:
    try:
        found = json.loads((path / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    key_file = path / {"nih": "Data_Entry_2017.csv", "drive": "training", _cells.NAME: _cells.TRAIN_FOLDER,
                       _site.NAME: _site.LABEL_FILE}[expected["dataset"]]
    return found == expected and key_file.exists()


def _generate(path: Path, name: str, params: dict, seed: int, force: bool = False, quiet: bool = False) -> Path:
    expected = _marker(name, params, seed)
    if not force and _is_complete(path, expected):
        return path
    if not quiet:
        what = f"{len(_nih_plan(params['patients'], seed))} images" if name == "nih" else (
            f"{len(params['train_ids']) + len(params['test_ids'])} photographs" if name == "drive" else
            f"{params['patients']} patients' films" if name == _site.NAME else
            f"{params['images']} nuclei images")  # fmt: skip
        layout = {"nih": "NIH", "drive": "DRIVE", _cells.NAME: "Data Science Bowl 2018",
                  _site.NAME: "PACS-export"}[name]
        print(f"Writing synthetic {layout}-layout data ({what}) to {path} ...", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the finished dataset is an ordinary folder
    try:
        if name == "nih":
            write_nih(tmp, seed=seed, **params)
        elif name == "drive":
            write_drive(tmp, seed=seed, **params)
        elif name == _site.NAME:
            _site.write_site(tmp, seed=seed, **params)
        else:
            _cells.write_nuclei(tmp, seed=seed, **params)
        (tmp / MARKER).write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        if not force and _is_complete(path, expected):  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
            return path
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            try:
                path.rename(old / path.name)
            except FileNotFoundError:  # moved away by another process meanwhile
                pass
        try:
            tmp.rename(path)
        except OSError:
            if _is_complete(path, expected):  # another process finished first
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def ensure(cfg, name: str) -> Path:
    """Return the folder of dataset ``name`` ("nih", "drive" or "dsb2018"), writing the synthetic one first if needed.

    Taught in 01_preprocessing_and_splits.
    """
    if name not in _config.DATASETS:
        raise _config.ConfigError(f"Unknown dataset {name!r}: choose one of {', '.join(_config.DATASETS)}.")
    path = cfg.dataset_dir(name)
    if not cfg.synthetic:
        if not path.is_dir():
            raise DataError(
                f"{path}: the real {name.upper()} dataset is not there. Place it under MEDXAI_DATA_DIR as "
                f"{name}/ (layout and sources in helpers/data/manifests/{name}.md), or unset MEDXAI_DATA_DIR to use "
                "the synthetic data."
            )
        return path
    return _generate(path, name, _params(name, cfg.profile), cfg.seed)


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.synthetic", description="Write the synthetic datasets.")
    parser.add_argument("--profile", choices=_config.PROFILES, help="size to write (default: MEDXAI_PROFILE)")
    parser.add_argument("--dataset", choices=(*_config.DATASETS, "all"), default="all")
    parser.add_argument("--force", action="store_true", help="write again even if a complete copy exists")
    args = parser.parse_args(argv)
    env_cfg = _config.load()
    profile = args.profile or env_cfg.profile
    names = _config.DATASETS if args.dataset == "all" else (args.dataset,)
    for name in names:
        # Always the synthetic cache, also in the full profile or when MEDXAI_DATA_DIR is set.
        path = env_cfg.cache_dir / "synthetic" / profile / name
        start = time.perf_counter()
        _generate(path, name, _params(name, profile), env_cfg.seed, force=args.force)
        print(f"{name}: {path} ready ({time.perf_counter() - start:.1f} s)")
    return 0

