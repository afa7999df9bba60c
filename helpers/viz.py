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
