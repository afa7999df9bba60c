"""Plots and overlays shared by the notebooks: every result a person would rather see than read."""

from __future__ import annotations

import math
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import patches

BOX_COLORS = ("#ff3b30", "#34c759", "#0a84ff", "#ff9f0a", "#bf5af2", "#64d2ff", "#ffd60a", "#ff375f")


def image_grid(
    images: Sequence[np.ndarray],
    titles: Sequence[str] | None = None,
    boxes: Sequence[Sequence[tuple]] | None = None,
    ncols: int = 4,
    size: float = 2.6,
    cmap: str = "gray",
):
    """Show images in a grid with titles and boxes ``(x, y, w, h, label)`` in each image's pixels. Taught in 01_preprocessing_and_splits."""
    count = len(images)
    if count == 0:
        raise ValueError("image_grid got no images to show.")
    if titles is not None and len(titles) != count:
        raise ValueError(f"image_grid got {count} images but {len(titles)} titles.")
    if boxes is not None and len(boxes) != count:
        raise ValueError(f"image_grid got {count} images but {len(boxes)} box lists.")
    ncols = max(1, min(ncols, count))
    nrows = math.ceil(count / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, image in enumerate(images):
        ax = axes.flat[i]
        image = np.asarray(image)
        if image.ndim == 3 and image.shape[-1] == 1:
            image = image[..., 0]
        ax.imshow(image, cmap=cmap if image.ndim == 2 else None, vmin=None if image.ndim == 3 else image.min(),
                  vmax=None if image.ndim == 3 else image.max())
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
        for j, box in enumerate(boxes[i] if boxes is not None else ()):
            x, y, w, h = box[:4]
            color = BOX_COLORS[j % len(BOX_COLORS)]
            ax.add_patch(patches.Rectangle((x, y), w, h, fill=False, edgecolor=color, linewidth=1.5))
            if len(box) > 4:
                ax.text(x, y - 2, str(box[4]), color=color, fontsize=7, va="bottom")
    fig.tight_layout()
    return fig


# Colours of segmentation_overlay: agreement in white, the two kinds of error in colours that stay
# distinct for the common colour-vision deficiencies (orange-red against blue).
OVERLAY_COLORS = {"TP": (1.0, 1.0, 1.0), "FP": (1.0, 0.27, 0.0), "FN": (0.04, 0.52, 1.0), "outside FOV": (0.15, 0.15, 0.15)}


def segmentation_overlay(vessels, predicted, fov=None) -> np.ndarray:
    """RGB picture of a binary segmentation against the truth: TP white, FP orange-red, FN blue, outside the FOV dark grey. Taught in 03_unet_vessels."""
    vessels, predicted = np.asarray(vessels, bool), np.asarray(predicted, bool)
    if vessels.shape != predicted.shape or vessels.ndim != 2:
        raise ValueError(f"vessels {vessels.shape} and predicted {predicted.shape} must be the same HxW shape.")
    picture = np.zeros(vessels.shape + (3,), np.float32)
    picture[vessels & predicted] = OVERLAY_COLORS["TP"]
    picture[~vessels & predicted] = OVERLAY_COLORS["FP"]
    picture[vessels & ~predicted] = OVERLAY_COLORS["FN"]
    if fov is not None:
        fov = np.asarray(fov, bool)
        if fov.shape != vessels.shape:
            raise ValueError(f"fov {fov.shape} must have the shape of vessels {vessels.shape}.")
        picture[~fov] = OVERLAY_COLORS["outside FOV"]
    return picture


def overlay_legend(ax, loc: str = "lower right") -> None:
    """Add the TP/FP/FN/outside-FOV colour legend of segmentation_overlay to a matplotlib axis. Taught in 03_unet_vessels."""
    handles = [patches.Patch(facecolor=color, edgecolor="black", label=name) for name, color in OVERLAY_COLORS.items()]
    ax.legend(handles=handles, loc=loc, fontsize=7, framealpha=0.8)
