"""Synthetic fluorescence nuclei written in the 2018 Data Science Bowl (BBBC038) layout.

One folder per image, named by its ID (64 hex digits, like the real ones)::

    <root>/stage1_train/<image_id>/images/<image_id>.png    RGBA, grey values in R = G = B, alpha 255
    <root>/stage1_train/<image_id>/masks/<mask_id>.png      one binary mask (0/255) per nucleus

Every image draws from its own NumPy generator (``default_rng([seed, stream, image])``), so the same
seed gives byte-identical files whatever the order of generation. Each image has a density regime
(sparse, medium, dense: from a few to a few hundred nuclei at 192 px), nuclei of varied size,
brightness, shape and texture, touching and overlapping clumps (the top nucleus owns the shared pixels,
as annotators draw them), out-of-focus nuclei and whole-image blur, dividing cells (two small bright
daughter nuclei side by side, two masks), uneven illumination and noise. ``helpers.cells.read_nuclei``
reads these folders and the real ones through the same code.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

NAME = "dsb2018"
TRAIN_FOLDER = "stage1_train"
# Per profile; the full profile reads the real data (these sizes are only used by the command line).
SIZES: dict[str, dict] = {
    "smoke": dict(images=48, image_size=128),
    "lab": dict(images=240, image_size=192),
    "full": dict(images=240, image_size=192),
}
MIN_VISIBLE_PIXELS = 6  # a nucleus almost hidden under others is not annotated
_STREAM = 31  # seed stream of the nuclei images (the chest X-ray and DRIVE streams are below 20)
# regime: (share of images, nuclei per 10,000 pixels, radius range in pixels, chance to join a clump)
_REGIMES = {
    "sparse": (0.3, (1.0, 12.0), (6.0, 11.0), 0.1),
    "medium": (0.4, (12.0, 40.0), (4.5, 8.0), 0.3),
    "dense": (0.3, (40.0, 100.0), (3.0, 5.0), 0.5),
}


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) % (1 << 63), *keys])


def image_id(seed: int, index: int) -> str:
    """The 64-hex-digit ID of synthetic image ``index`` (like the real SHA-256 names).

    Taught in 08_cells_counting.
    """
    return hashlib.sha256(f"medxai-nuclei-{int(seed)}-{int(index)}".encode()).hexdigest()


def _outline(rng: np.random.Generator, center, radius: float, elongation: float, angle: float) -> np.ndarray:
    """A nucleus outline: an ellipse with a little low-order wobble, as (k x 2) points."""
    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    wobble = 1 + sum(rng.uniform(0, a) * np.cos(k * t + rng.uniform(0, 2 * np.pi))
                     for k, a in ((2, 0.08), (3, 0.07), (4, 0.04)))
    ax, ay = radius * elongation * wobble, radius / elongation * wobble
    x, y = ax * np.cos(t), ay * np.sin(t)
    c, s = math.cos(angle), math.sin(angle)
    return np.stack([center[0] + c * x - s * y, center[1] + s * x + c * y], axis=1)


def _place(rng: np.random.Generator, size: int, regime: str, scale: float = 1.0) -> list[dict]:
    """Nuclei centres, radii and looks for one image: isolated ones apart, clump members touching or overlapping.

    ``scale`` magnifies the nuclei (a higher magnification): radii times ``scale``, density over ``scale**2``.
    """
    _, density, (r_lo, r_hi), clump_p = _REGIMES[regime]
    r_lo, r_hi = r_lo * scale, r_hi * scale
    target = max(2, int(round(rng.uniform(*density) * size * size / 10_000 / scale**2)))
    nuclei: list[dict] = []
    attempts = 0
    while len(nuclei) < target and attempts < 40 * target:
        attempts += 1
        r = rng.uniform(r_lo, r_hi)
        dividing = regime != "sparse" and rng.random() < 0.04
        if nuclei and rng.random() < clump_p:
            other = nuclei[int(rng.integers(len(nuclei)))]
            a = rng.uniform(0, 2 * np.pi)
            gap = rng.uniform(0.7, 1.0) * (r + other["r"])  # below 1: the two overlap
            c = other["c"] + gap * np.array([math.cos(a), math.sin(a)])
            closest = 0.55  # clump members touch or overlap, but none hides another
        else:
            c = rng.uniform(r, size - r, 2)
            closest = 1.3  # an isolated nucleus keeps a gap
        if not (0 <= c[0] < size and 0 <= c[1] < size):
            continue
        if any(np.hypot(*(c - n["c"])) < closest * (r + n["r"]) for n in nuclei):
            continue
        look = dict(
            brightness=rng.uniform(0.35, 1.0),
            elongation=rng.uniform(1.0, 1.45),
            angle=rng.uniform(0, np.pi),
            focus=rng.uniform(1.0, 2.2) if rng.random() < 0.2 else 0.0,  # out of focus
        )
        if dividing:  # telophase: two small bright daughters side by side, each its own nucleus
            a = rng.uniform(0, np.pi)
            d = 0.62 * r * np.array([math.cos(a), math.sin(a)])
            for sign in (-1, 1):
                nuclei.append(
                    dict(c=c + sign * d, r=0.6 * r, **{**look, "brightness": 1.0, "focus": 0.0, "elongation": 1.1}))
        else:
            nuclei.append(dict(c=c, r=r, **look))
    return nuclei


def render(seed: int, index: int, size: int, scale: float = 1.0,
           regime: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic fluorescence image: (grey uint8 HxW, instance labels int32 HxW, 0 = background, 1..n = nuclei).

    Taught in 08_cells_counting.
    """
    rng = _rng(seed, _STREAM, index)
    names = list(_REGIMES)
    drawn = names[int(rng.choice(len(names), p=[_REGIMES[n][0] for n in names]))]
    regime = regime or drawn
    nuclei = _place(rng, size, regime, scale)
    labels = np.zeros((size, size), np.int32)
    light = np.zeros((size, size), np.float32)
    texture = 1 + 0.18 * cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), 1.2)
    for k, n in enumerate(nuclei, start=1):
        pts = _outline(rng, n["c"], n["r"], n["elongation"], n["angle"])
        # drawn in a window around the nucleus (blur margin included), then pasted
        x0, y0 = np.maximum(np.floor(pts.min(0)).astype(int) - 6, 0)
        x1, y1 = np.minimum(np.ceil(pts.max(0)).astype(int) + 7, size)
        local = np.round((pts - (x0, y0)) * 16).astype(np.int32)
        hard = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(hard, [local], 1, cv2.LINE_8, 4)
        labels[y0:y1, x0:x1][hard > 0] = k  # drawn later = on top: the top nucleus owns the overlap
        soft = np.zeros((y1 - y0, x1 - x0), np.float32)
        cv2.fillPoly(soft, [local], 1.0, cv2.LINE_AA, 4)
        spot = soft * n["brightness"] * texture[y0:y1, x0:x1]
        if n["focus"]:
            spot = cv2.GaussianBlur(spot, (0, 0), n["focus"])
        light[y0:y1, x0:x1] += spot  # fluorescence adds up where nuclei overlap
    # nuclei almost hidden under others are not annotated; their pixels go to the nucleus on top of them
    ids, areas = np.unique(labels, return_counts=True)
    for k in ids[(ids > 0) & (areas < MIN_VISIBLE_PIXELS)]:
        labels[labels == k] = 0
    labels = _renumber(labels)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    tilt = rng.uniform(-1, 1, 2)
    background = (rng.uniform(0.02, 0.10)
                  + rng.uniform(0.03, 0.12) * (0.5 + 0.5 * (tilt[0] * (xx - 0.5) + tilt[1] * (yy - 0.5))))
    grid = cv2.resize(rng.standard_normal((4, 4)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    background += 0.03 * grid
    image = background + light * rng.uniform(0.55, 0.85)
    blur = rng.uniform(0.0, 1.2)
    if blur > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), blur)
    image = image + rng.normal(0, rng.uniform(0.01, 0.03), image.shape).astype(np.float32)
    return np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8), labels


def _renumber(labels: np.ndarray) -> np.ndarray:
    ids = np.unique(labels)
    ids = ids[ids > 0]
    lookup = np.zeros(int(labels.max()) + 1, np.int32)
    lookup[ids] = np.arange(1, len(ids) + 1, dtype=np.int32)
    return lookup[labels]


def _png(path: Path, array: np.ndarray) -> None:
    Image.fromarray(array).save(path, format="PNG", optimize=False, compress_level=6)


def as_kind(grey: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A fluorescence rendering (uint8 HxW) as the Bowl's other kinds: RGBA brightfield (dark nuclei on a light field)
    or histology (H&E-like purple on pink).

    Taught in 08_cells_counting.
    """
    g = grey.astype(np.float32) / 255.0
    if kind == "fluorescence":
        rgb = np.dstack([g, g, g])
    elif kind == "brightfield":
        light = rng.uniform(0.78, 0.92)
        rgb = np.dstack([light - 0.75 * g] * 3)
    elif kind == "histology":
        pink = np.array([0.93, 0.78, 0.86], np.float32) * rng.uniform(0.92, 1.0)
        purple = np.array([0.42, 0.22, 0.58], np.float32)
        weight = np.clip(g * 1.4, 0, 1)[..., None]
        rgb = pink * (1 - weight) + purple * weight
    else:
        raise ValueError(f"kind must be one of fluorescence, brightfield, histology, not {kind!r}.")
    rgb8 = np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)
    return np.dstack([rgb8, np.full(grey.shape, 255, np.uint8)])


def write_nuclei(root, *, images: int, image_size: int, seed: int = 42, kinds=("fluorescence",), large: int = 0,
                 large_size: int = 1400) -> Path:
    """Write ``images`` synthetic nuclei images in the Data Science Bowl 2018 layout under ``root``/stage1_train; return
    ``root``.

    ``kinds``: the kinds of image, dealt in turn (the Bowl has fluorescence, brightfield and histology);
    ``large``: how many images (the last ones) are ``large_size`` pixels a side at a higher magnification, as
    real microscopy images of 1,000 to 2,000 pixels are (sparse nuclei, larger by ``large_size / 512``).

    Taught in 08_cells_counting.
    """
    root = Path(root)
    size = int(image_size)
    if size < 32:
        raise ValueError(f"image_size must be at least 32 pixels, not {image_size!r}.")
    if int(images) < 1:
        raise ValueError(f"images must be a whole number >= 1, not {images!r}.")
    if not 0 <= int(large) <= int(images):
        raise ValueError(f"large must be between 0 and images ({images}), not {large!r}.")
    for index in range(int(images)):
        big = index >= int(images) - int(large)
        # a large image: nuclei about 2.7x larger (a higher magnification) and sparse, a few tens to a few hundred
        grey, labels = (render(seed, index, int(large_size), scale=max(1.0, int(large_size) / 512), regime="sparse")
                        if big else render(seed, index, size))
        kind = kinds[index % len(kinds)]
        name = image_id(seed, index)
        folder = root / TRAIN_FOLDER / name
        (folder / "images").mkdir(parents=True, exist_ok=True)
        (folder / "masks").mkdir(exist_ok=True)
        pixels = (np.dstack([grey, grey, grey, np.full_like(grey, 255)]) if kind == "fluorescence"
                  else as_kind(grey, kind, _rng(seed, _STREAM + 1, index)))
        _png(folder / "images" / f"{name}.png", pixels)
        for k in range(1, int(labels.max()) + 1):
            mask_id = hashlib.sha256(f"{name}-{k}".encode()).hexdigest()
            _png(folder / "masks" / f"{mask_id}.png", np.where(labels == k, 255, 0).astype(np.uint8))
    return root
