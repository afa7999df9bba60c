"""Plots and overlays shared by the notebooks: every result a person would rather see than read."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import patches

from helpers import config
from helpers.errors import check_probabilities

FIGURE_NAME = re.compile(r"[A-Za-z0-9_-]+")
EXPORT_DPI = 200  # slide-ready: a 7-inch-wide figure is 1400 px

BOX_COLORS = ("#ff3b30", "#34c759", "#0a84ff", "#ff9f0a", "#bf5af2", "#64d2ff", "#ffd60a", "#ff375f")
# One convention for every figure that compares boxes (notebooks 05 and 06, the report): the truth (a
# radiologist's box) in white, solid; a prediction in magenta, dashed. Neither colour occurs in the jet
# heatmaps drawn under them, and they differ in brightness and line style for colour-blind readers.
TRUTH_COLOUR = "#ffffff"
PREDICTION_COLOUR = "#ff00ff"
BOX_STYLES = {"truth": (TRUTH_COLOUR, "-"), "prediction": (PREDICTION_COLOUR, "--")}


def draw_box(ax, box, kind: str = "truth", label: str | None = None, linewidth: float = 1.5) -> None:
    """Draw one (x, y, w, h) box, in the pixels of the image shown by imshow, as truth (white, solid) or prediction
    (magenta, dashed).

    Taught in 06_boxes_iobb.
    """
    if kind not in BOX_STYLES:
        raise ValueError(f"kind must be one of {', '.join(BOX_STYLES)}, not {kind!r}.")
    colour, style = BOX_STYLES[kind]
    x, y, w, h = (float(v) for v in box[:4])
    x, y = x - 0.5, y - 0.5  # imshow centres pixel i on i: the box's edge x lies at x - 0.5 on the axis
    ax.add_patch(patches.Rectangle((x, y), w, h, fill=False, edgecolor=colour, linestyle=style, linewidth=linewidth))
    if label:
        ax.text(x, y - 2, str(label), color=colour, fontsize=9, va="bottom")


def box_legend(ax, loc: str = "lower right") -> None:
    """Add the truth/prediction box legend of draw_box to a matplotlib axis.

    Taught in 06_boxes_iobb.
    """
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, linestyle=s, label=k) for k, (c, s) in BOX_STYLES.items()]
    legend = ax.legend(handles=handles, loc=loc, fontsize=9, framealpha=0.6, facecolor="grey")
    legend.get_frame().set_edgecolor("none")


def image_grid(
    images: Sequence[np.ndarray],
    titles: Sequence[str] | None = None,
    boxes: Sequence[Sequence[tuple]] | None = None,
    ncols: int = 4,
    size: float = 2.6,
    cmap: str = "gray",
):
    """Show images in a grid with titles and boxes ``(x, y, w, h, label)`` or ``(x, y, w, h, label, kind)`` (kind
    "truth"/"prediction", see draw_box).

    Taught in 01_preprocessing_and_splits.
    """
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
            ax.set_title(titles[i], fontsize=9)
        for j, box in enumerate(boxes[i] if boxes is not None else ()):
            if len(box) > 5:
                draw_box(ax, box, box[5], box[4])
                continue
            x, y, w, h = box[:4]
            color = BOX_COLORS[j % len(BOX_COLORS)]
            ax.add_patch(patches.Rectangle((x, y), w, h, fill=False, edgecolor=color, linewidth=1.5))
            if len(box) > 4:
                ax.text(x, y - 2, str(box[4]), color=color, fontsize=9, va="bottom")
    fig.tight_layout()
    return fig


# Colours of segmentation_overlay: agreement in white, the two kinds of error in colours that stay
# distinct for the common colour-vision deficiencies (orange-red against blue).
OVERLAY_COLORS = {"TP": (1.0, 1.0, 1.0), "FP": (1.0, 0.27, 0.0), "FN": (0.04, 0.52, 1.0),
                  "outside FOV": (0.15, 0.15, 0.15)}


def segmentation_overlay(vessels, predicted, fov=None) -> np.ndarray:
    """RGB picture of a binary segmentation against the truth: TP white, FP orange-red, FN blue, outside the FOV dark
    grey.

    Taught in 03_unet_vessels.
    """
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
    """Add the TP/FP/FN/outside-FOV colour legend of segmentation_overlay to a matplotlib axis.

    Taught in 03_unet_vessels.
    """
    handles = [patches.Patch(facecolor=color, edgecolor="black", label=name) for name, color in OVERLAY_COLORS.items()]
    ax.legend(handles=handles, loc=loc, fontsize=9, framealpha=0.8)


def reliability_diagram(ax, tables: dict, title: str = "reliability diagram") -> None:
    """Plot reliability tables (metrics.reliability_table) against the diagonal of perfect calibration.

    Taught in 04_mc_dropout_uncertainty.
    """
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    for name, table in tables.items():
        ax.plot(table["confidence"], table["frequency"], marker="o", markersize=3, label=name)
    ax.set(xlabel="mean predicted probability", ylabel="observed frequency", xlim=(0, 1), ylim=(0, 1), title=title)
    ax.legend(fontsize=9)


# --------------------------------------------------------------------------------------------
# Saliency maps (notebook 05): a heatmap over its image, and methods side by side
# --------------------------------------------------------------------------------------------


def heatmap_overlay(image, heatmap, alpha: float = 0.45, cmap: str = "jet") -> np.ndarray:
    """RGB picture of a [0, 1] heatmap blended over a grey (HxW or HxWx1) or RGB image, both HxW.

    Taught in 05_saliency.
    """
    image = np.asarray(image, np.float32)
    heatmap = check_probabilities(heatmap, "heatmap_overlay: heatmap (scale it to [0, 1] first, e.g. "
                                           "explain.normalize)").astype(np.float32)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.shape[:2] != heatmap.shape or heatmap.ndim != 2:
        raise ValueError(f"heatmap {heatmap.shape} must be HxW, the image's size {image.shape[:2]}.")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], not {alpha!r}.")
    low, high = float(image.min()), float(image.max())
    grey = (image - low) / (high - low) if high > low else np.zeros_like(image)
    rgb = np.repeat(grey[..., None], 3, axis=-1) if grey.ndim == 2 else grey
    colours = plt.get_cmap(cmap)(np.clip(heatmap, 0.0, 1.0))[..., :3]
    # The heat itself sets how much colour covers the image: cold regions keep the anatomy visible.
    weight = alpha * np.clip(heatmap, 0.0, 1.0)[..., None]
    return ((1 - weight) * rgb + weight * colours).astype(np.float32)


def saliency_grid(images, heatmaps: dict, boxes=None, row_titles=None, size: float = 2.0, alpha: float = 0.5):
    """Grid of heatmap overlays: one row per image, one column per method (``{name: (N, H, W) maps}``), the true boxes
    drawn (TRUTH_COLOUR).

    Taught in 05_saliency.
    """
    images = np.asarray(images)
    if not heatmaps:
        raise ValueError("saliency_grid got no heatmaps.")
    for name, maps in heatmaps.items():
        if len(maps) != len(images):
            raise ValueError(f"{name}: {len(maps)} maps for {len(images)} images.")
    columns = ["image"] + list(heatmaps)
    fig, axes = plt.subplots(len(images), len(columns), figsize=(size * len(columns), size * len(images)),
                             squeeze=False)
    for i, image in enumerate(images):
        for j, name in enumerate(columns):
            ax = axes[i, j]
            ax.axis("off")
            if name == "image":
                shown = np.asarray(image)
                ax.imshow(shown[..., 0] if shown.ndim == 3 and shown.shape[-1] == 1 else shown, cmap="gray")
                if row_titles is not None:
                    ax.set_title(row_titles[i], fontsize=9)
            else:
                ax.imshow(heatmap_overlay(image, heatmaps[name][i], alpha=alpha))
                if i == 0:
                    ax.set_title(name, fontsize=9)
            if boxes is not None and boxes[i] is not None:
                x, y, w, h = boxes[i][:4]
                draw_box(ax, (x, y, w, h), "truth", linewidth=1.2)
    fig.tight_layout()
    # one scale for every map: the heat's colour, from cold (0) to hot (1)
    scale = plt.cm.ScalarMappable(norm=plt.Normalize(0.0, 1.0), cmap="jet")
    fig.colorbar(scale, ax=axes[:, 1:].ravel().tolist(), fraction=0.025, pad=0.01, label="heat (0 to 1)")
    return fig


def iobb_bars(table, labels=None, size: tuple = (3.2, 2.6)):
    """One bar chart per threshold of a T(IoBB) table (rows (T, source)): the sources side by side per disease, "no
    boxes" left empty.

    Taught in 06_boxes_iobb.
    """
    import pandas as pd

    if table.index.nlevels != 2:
        raise ValueError("iobb_bars needs a table indexed by (T, source), as boxes.iobb_table returns.")
    labels = list(labels) if labels is not None else list(table.columns)
    thresholds = list(dict.fromkeys(table.index.get_level_values(0)))
    sources = list(dict.fromkeys(table.index.get_level_values(1)))
    fig, axes = plt.subplots(1, len(thresholds), figsize=(size[0] * len(thresholds), size[1]), sharey=True,
                             squeeze=False)
    width = 0.8 / max(1, len(sources))
    positions = np.arange(len(labels))
    for ax, t in zip(axes[0], thresholds):
        for k, source in enumerate(sources):
            if (t, source) not in table.index:
                continue
            values = pd.to_numeric(table.loc[(t, source), labels], errors="coerce").to_numpy(float)
            ax.bar(positions + (k - (len(sources) - 1) / 2) * width, np.nan_to_num(values), width,
                   label=source, color=BOX_COLORS[k % len(BOX_COLORS)])
        ax.set_title(f"T = {t:g}", fontsize=9)
        ax.set_xticks(positions, [label[:6] for label in labels], rotation=60, fontsize=9)
        ax.set_ylim(0, 1)
    axes[0, 0].set_ylabel("fraction of images")
    axes[0, -1].legend(fontsize=9, loc="upper right")
    fig.tight_layout()
    return fig


def export_figure(fig, name: str, folder=None) -> tuple[Path, Path] | None:
    """Save ``fig`` as ``name.png`` (200 dpi) and ``name.svg`` in the figures folder (MEDXAI_FIGURES_DIR, ``make
    figures``) and return both paths; a no-op returning None when figure export is off.

    Taught in 05_saliency.
    """
    from matplotlib.figure import Figure

    if not isinstance(name, str) or not FIGURE_NAME.fullmatch(name):
        raise ValueError(
            f"export_figure: name {name!r} is not a plain file name: use letters, digits, '_' and '-' only "
            "(no folder, no extension), for example 'randomisation_curve'."
        )
    if isinstance(fig, np.ndarray) and fig.dtype == object and fig.size:  # plt.subplots(n, m)'s array of axes
        fig = fig.flat[0]
    if hasattr(fig, "get_figure") and not isinstance(fig, Figure):  # an Axes (pandas' .plot() returns one)
        fig = fig.get_figure()
    if not isinstance(fig, Figure):
        raise TypeError(
            f"export_figure({name!r}) needs a matplotlib Figure (or one of its Axes), not {type(fig).__name__}: "
            "pass the figure a plotting call returned, e.g. fig, ax = plt.subplots()."
        )
    folder = config.load().figures_dir if folder is None else Path(folder).expanduser()
    if folder is None:
        return None
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"export_figure({name!r}): {folder} is a file, not a folder: point MEDXAI_FIGURES_DIR "
                                 "at a folder.")
    folder.mkdir(parents=True, exist_ok=True)
    png, svg = folder / f"{name}.png", folder / f"{name}.svg"
    fig.savefig(png, dpi=EXPORT_DPI, bbox_inches="tight", metadata={"Software": None})
    with plt.rc_context({"svg.hashsalt": name}):  # with no date and a fixed salt: the same bytes on every run
        fig.savefig(svg, bbox_inches="tight", metadata={"Date": None, "Creator": None})
    return png, svg
