"""From heatmaps to bounding boxes, and how to score them: IoU, IoBB and the T(IoBB) table.

Every box is ``(x, y, w, h)``: the top-left corner and the size, in the pixels of one image (x to the
right, y down), as in NIH's ``BBox_List_2017.csv``. A box covers the area from ``x`` to ``x + w`` and
from ``y`` to ``y + h``; two boxes that only touch share no area. Sizes are ``(width, height)``, or one
number for a square image. ``scale_box`` moves a box between two image sizes (the NIH PNG and the
model's input, say); never compare boxes measured in two different sizes.
"""

from __future__ import annotations

import json
import warnings
from typing import Iterable, Sequence

import cv2
import numpy as np
import pandas as pd

from helpers import side_files
from helpers.errors import DataError, check_finite, check_probabilities

THRESHOLD_METHODS = ("fraction", "fixed", "otsu")
HEURISTICS = ("largest", "mean_heat", "deep_media")
T_IOBB = (0.1, 0.25, 0.5, 0.75, 0.9)
NO_BOXES = "no boxes"
BOX_TABLE_COLUMNS = ("x", "y", "w", "h", "area", "mean_heat", "peak_heat")


# --------------------------------------------------------------------------------------------
# Boxes, sizes and coordinates
# --------------------------------------------------------------------------------------------


def _size(size, what: str = "size") -> tuple[float, float]:
    if np.isscalar(size):
        size = (size, size)
    try:
        width, height = (float(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be (width, height) or one number, not {size!r}.") from None
    if not (width > 0 and height > 0):
        raise ValueError(f"{what} must be positive, not {size!r}.")
    return width, height


def check_box(box, image_size=None) -> tuple[float, float, float, float]:
    """Validate a box (x, y, w, h): ValueError for w or h <= 0; with image_size, clip what lies outside (UserWarning).

    A box with zero or negative width or height, or with a NaN, raises ValueError. Given
    ``image_size`` (width, height), the part of the box outside the image is clipped away with a
    UserWarning; a box entirely outside raises ValueError.

    Taught in 06_boxes_iobb.
    """
    try:
        x, y, w, h = (float(v) for v in list(box)[:4])
    except (TypeError, ValueError):
        raise ValueError(f"a box is (x, y, w, h), not {box!r}.") from None
    check_finite([x, y, w, h], f"box {box!r} (x, y, w, h)")
    if w <= 0 or h <= 0:
        raise ValueError(f"box {(x, y, w, h)} has width {w:g} and height {h:g}: both must be positive.")
    if image_size is None:
        return x, y, w, h
    width, height = _size(image_size, "image_size")
    x0, y0, x1, y1 = max(x, 0.0), max(y, 0.0), min(x + w, width), min(y + h, height)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"box {(x, y, w, h)} lies entirely outside the {width:g}x{height:g} image.")
    if (x0, y0, x1, y1) != (x, y, x + w, y + h):
        warnings.warn(
            f"box {(x, y, w, h)} reaches outside the {width:g}x{height:g} image: clipped to "
            f"{(x0, y0, x1 - x0, y1 - y0)}.", UserWarning, stacklevel=2,
        )
    return x0, y0, x1 - x0, y1 - y0


def scale_box(box, from_size, to_size) -> tuple[float, float, float, float]:
    """Move a box (x, y, w, h) from an image of from_size (width, height) to one of to_size, e.g. NIH pixels to model
    input.

    Taught in 06_boxes_iobb.
    """
    x, y, w, h = check_box(box)
    (fw, fh), (tw, th) = _size(from_size, "from_size"), _size(to_size, "to_size")
    sx, sy = tw / fw, th / fh
    return x * sx, y * sy, w * sx, h * sy


def scaled_boxes(table: pd.DataFrame, to_size) -> list[tuple[float, float, float, float]]:
    """The (x, y, w, h) of each row of a box table (NIH .boxes) moved from its own image_width x image_height to
    to_size.

    x and w scale with the widths, y and h with the heights: a non-square PNG keeps its boxes in place.

    Taught in 05_saliency.
    """
    missing = {"x", "y", "w", "h", "image_width", "image_height"} - set(table.columns)
    if missing:
        raise ValueError("the box table needs columns x, y, w, h, image_width, image_height (missing "
                         f"{sorted(missing)}).")
    return [scale_box((r.x, r.y, r.w, r.h), (r.image_width, r.image_height), to_size) for r in table.itertuples()]


def intersection(a, b) -> float:
    """Area shared by two boxes (x, y, w, h); 0 when they are disjoint or only touch.

    Taught in 06_boxes_iobb.
    """
    ax, ay, aw, ah = check_box(a)
    bx, by, bw, bh = check_box(b)
    dx = min(ax + aw, bx + bw) - max(ax, bx)
    dy = min(ay + ah, by + bh) - max(ay, by)
    return dx * dy if dx > 0 and dy > 0 else 0.0


def iou(a, b, image_size=None) -> float:
    """Intersection over union of two boxes (x, y, w, h): area(a ∩ b) / area(a ∪ b), symmetric, in [0, 1].

    Given ``image_size``, both boxes are first clipped to the image (with a warning).

    Taught in 06_boxes_iobb.
    """
    a, b = check_box(a, image_size), check_box(b, image_size)
    inter = intersection(a, b)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def iobb(pred, truth, image_size=None) -> float:
    """IoBB of Wang et al. 2017 (ChestX-ray8): area(pred ∩ truth) / area(pred), the share of the predicted box on the
    truth.

    Intersection over the *detected* bounding box: not symmetric. A small predicted box inside a
    large truth scores 1; a huge predicted box that covers the truth scores little. Given
    ``image_size``, both boxes are first clipped to the image (with a warning).

    Taught in 06_boxes_iobb.
    """
    pred, truth = check_box(pred, image_size), check_box(truth, image_size)
    return intersection(pred, truth) / (pred[2] * pred[3])


# --------------------------------------------------------------------------------------------
# Heatmap -> heat image -> mask -> components -> boxes
# --------------------------------------------------------------------------------------------


def _heatmap(heatmap) -> np.ndarray:
    heatmap = np.asarray(heatmap, dtype=np.float32)
    if heatmap.ndim == 3 and heatmap.shape[-1] == 1:
        heatmap = heatmap[..., 0]
    if heatmap.ndim != 2:
        raise ValueError(
            f"a heatmap is one 2-D map (height, width), not shape {heatmap.shape}: pass heatmaps[i] for one "
            "image of a batch."
        )
    if min(heatmap.shape) < 1:
        raise ValueError(f"heatmap of shape {heatmap.shape} is empty: it holds no location.")
    return check_finite(heatmap, f"heatmap {heatmap.shape}").astype(np.float32)


def heat_image(heatmap, image_size) -> np.ndarray:
    """Upsample a 2-D heatmap bilinearly (OpenCV) to image_size (width, height) and min-max it to uint8 0..255.

    Taught in 06_boxes_iobb.
    """
    heatmap = _heatmap(heatmap)
    width, height = (int(round(v)) for v in _size(image_size, "image_size"))
    big = cv2.resize(heatmap, (width, height), interpolation=cv2.INTER_LINEAR)
    low, high = float(big.min()), float(big.max())
    if high <= low:  # a flat map holds no location: all zero, so no component survives any threshold
        return np.zeros((height, width), np.uint8)
    return np.round((big - low) / (high - low) * 255).astype(np.uint8)


def threshold_mask(heat, threshold: float = 0.5, method: str = "fraction") -> tuple[np.ndarray, float]:
    """Binary mask of a 0..255 heat image: above threshold*max ("fraction"), above a fixed 0..255 value ("fixed"), or
    Otsu's.

    Taught in 06_boxes_iobb.
    """
    heat = np.asarray(heat)
    if heat.ndim != 2:
        raise ValueError(f"heat must be a 2-D 0..255 image, not shape {heat.shape}.")
    if method not in THRESHOLD_METHODS:
        raise ValueError(f"threshold method must be one of {', '.join(THRESHOLD_METHODS)}, not {method!r}.")
    heat = heat.astype(np.uint8)
    if method == "otsu":
        level, _ = cv2.threshold(heat, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        level = float(level)
    elif method == "fraction":
        if not 0.0 <= threshold < 1.0:
            raise ValueError(f"a fraction of the maximum must be in [0, 1), not {threshold!r}.")
        level = float(threshold) * float(heat.max())
    else:
        if not 0.0 <= threshold < 255.0:
            raise ValueError(f"a fixed threshold on the 0..255 heat must be in [0, 255), not {threshold!r}.")
        level = float(threshold)
    return heat > level, level


def mask_to_boxes(mask, heat) -> pd.DataFrame:
    """One box per 8-connected component of a mask (cv2.connectedComponentsWithStats), with its mean and peak heat.

    Taught in 06_boxes_iobb.
    """
    mask, heat = np.asarray(mask), np.asarray(heat)
    if mask.shape != heat.shape or mask.ndim != 2:
        raise ValueError(f"mask {mask.shape} and heat {heat.shape} must be the same 2-D shape.")
    count, components, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    rows = []
    for k in range(1, count):  # component 0 is the background
        x, y, w, h, area = (int(v) for v in stats[k])
        values = heat[components == k]
        rows.append((x, y, w, h, area, float(values.mean()), float(values.max())))
    table = pd.DataFrame(rows, columns=list(BOX_TABLE_COLUMNS))
    return table.astype(
        {"x": float, "y": float, "w": float, "h": float, "area": int, "mean_heat": float, "peak_heat": float})


def heatmap_to_boxes(heatmap, image_size, threshold: float = 0.5, method: str = "fraction") -> pd.DataFrame:
    """Heatmap -> boxes (x, y, w, h, area, mean_heat, peak_heat) in image_size pixels: upsample, 0..255, threshold,
    components.

    ``image_size`` is the (width, height) of the image the boxes are wanted in (the original PNG, to
    compare with NIH's boxes). ``method``: "fraction" keeps pixels above ``threshold`` times the
    maximum, "fixed" above ``threshold`` on the 0..255 scale, "otsu" picks the level itself. A flat
    heatmap gives no boxes (an empty table). Heat is on the 0..255 scale.

    Taught in 06_boxes_iobb.
    """
    heat = heat_image(heatmap, image_size)
    mask, _ = threshold_mask(heat, threshold, method)
    return mask_to_boxes(mask, heat)


def probability_to_boxes(probabilities, image_size, threshold: float = 0.5) -> pd.DataFrame:
    """A segmentation output (2-D, P(inside a box) in [0, 1]) -> boxes in image_size pixels: upsample, keep P >
    threshold (not min-maxed), components.

    Unlike a heatmap, a probability has a meaning of its own: 0.5 is "as likely inside as outside", so
    the map is not stretched to its maximum (an image where the localiser sees nothing gives no box).
    ``mean_heat`` and ``peak_heat`` are the probability times 255, so ``choose_box`` works unchanged.

    Taught in 06_boxes_iobb.
    """
    probabilities = check_probabilities(_heatmap(probabilities), "the localiser's probability map")
    if not 0.0 < float(threshold) < 1.0:
        raise ValueError(f"a probability threshold must be in (0, 1), not {threshold!r}.")
    width, height = (int(round(v)) for v in _size(image_size, "image_size"))
    big = np.clip(cv2.resize(probabilities.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR), 0, 1)
    return mask_to_boxes(big > float(threshold), np.round(big * 255).astype(np.uint8))


# --------------------------------------------------------------------------------------------
# Choosing one box
# --------------------------------------------------------------------------------------------


def mean_box_sizes(boxes: pd.DataFrame, image_size=None) -> pd.DataFrame:
    """Mean ground-truth box width and height per label (NIH .boxes table), optionally rescaled to image_size.

    Taught in 06_boxes_iobb.
    """
    missing = {"label", "w", "h"} - set(boxes.columns)
    if missing:
        raise ValueError(f"the box table needs columns label, w, h (missing {sorted(missing)}).")
    if len(boxes) == 0:
        raise ValueError("no boxes to average: give the boxes that fit the prior (notebook 06: the fitting part of "
                         "boxes.fit_score_split, since every NIH box is on a test-list film, the training split "
                         "has none).")
    table = boxes[["label", "w", "h"]].copy()
    if image_size is not None:
        if not {"image_width", "image_height"} <= set(boxes.columns):
            raise ValueError("rescaling needs the columns image_width and image_height.")
        width, height = _size(image_size, "image_size")
        table["w"] = table["w"] * width / boxes["image_width"]
        table["h"] = table["h"] * height / boxes["image_height"]
    return table.groupby("label")[["w", "h"]].mean()


BOX_SIZES_SUFFIX = side_files.BOX_SIZES_SUFFIX  # beside the classifier, named as every side file (helpers.side_files)


def fit_score_split(boxes: pd.DataFrame, entries: pd.DataFrame, *, score_fraction: float = 0.5,
                    seed: int = 42) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split boxed images by patient into (fit, score) box tables: what may fit a localiser or a size prior, and what is
    scored.

    Every NIH box is on a test-list image, so anything that learns from boxes splits the boxed test images
    again; by patient (scikit-learn's ``GroupShuffleSplit``), so no patient has a box on both sides.
    ``entries`` maps ``image_index`` to ``patient_id`` (``read_nih(...).entries``).

    Taught in 06_boxes_iobb.
    """
    from sklearn.model_selection import GroupShuffleSplit

    if not 0 < float(score_fraction) < 1:
        raise ValueError(f"score_fraction must lie strictly between 0 and 1, not {score_fraction!r}.")
    patient_of = entries.set_index("image_index")["patient_id"]
    unknown = sorted(set(boxes["image_index"]) - set(patient_of.index))
    if unknown:
        raise DataError(f"{len(unknown)} boxed image(s) are not in the entries, e.g. {', '.join(unknown[:3])}: "
                        "pass the entries of the same dataset (read_nih(...).entries).")
    groups = patient_of.loc[boxes["image_index"]].to_numpy()
    if len(set(groups)) < 2:
        return boxes.iloc[:0].copy(), boxes.reset_index(drop=True)  # one patient or none: nothing left to fit on
    fit, score = next(GroupShuffleSplit(n_splits=1, test_size=float(score_fraction), random_state=int(seed))
                      .split(boxes, groups=groups))
    return boxes.iloc[np.sort(fit)].reset_index(drop=True), boxes.iloc[np.sort(score)].reset_index(drop=True)


def save_box_sizes(model_path, train_boxes: pd.DataFrame):
    """Write the mean fitting box (w, h) per finding, as fractions of the image's width and height, beside the
    classifier as {finding: [w, h]}.

    ``train_boxes`` is the box table that fits the prior (notebook 06's fitting part, never the scored boxes) (columns
    label, w, h, image_width, image_height); ``report.ChestReporter`` reads the file to choose its boxes with the Deep
    MedIA heuristic.

    Taught in 06_boxes_iobb.
    """
    if not {"image_width", "image_height"} <= set(train_boxes.columns):
        raise ValueError("save_box_sizes needs the columns image_width and image_height, to save sizes as fractions.")
    sizes = mean_box_sizes(train_boxes, image_size=1)
    check_probabilities(sizes.to_numpy(), "mean box sizes as fractions of the image side")
    path = side_files.side_file(model_path, BOX_SIZES_SUFFIX)
    path.write_text(json.dumps({str(k): [float(r.w), float(r.h)] for k, r in sizes.iterrows()}, indent=1))
    return path


def load_box_sizes(model_path) -> dict:
    """The {finding: (w, h)} fractions save_box_sizes wrote beside the classifier; {} if there is none.

    Taught in 06_boxes_iobb.
    """
    path = side_files.side_file(model_path, BOX_SIZES_SUFFIX)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        sizes = {str(k): (float(v[0]), float(v[1])) for k, v in data.items()}
    except (ValueError, TypeError, IndexError, AttributeError) as err:
        raise DataError(f"{path}: not a box-sizes file ({type(err).__name__}: {err}); it should map each finding to "
                        "[w, h] fractions. Run notebook 06 again to rewrite it.") from None
    check_probabilities(np.array(list(sizes.values()), dtype=float).reshape(-1),
                        f"{path} (fractions of the image side)")
    return sizes


def choose_box(boxes: pd.DataFrame, heuristic: str = "deep_media", mean_size=None, keep: int = 5):
    """One row of heatmap_to_boxes by "largest" area, highest "mean_heat", or "deep_media" (keep the `keep` closest to
    mean_size (w, h), then hottest).

    The Deep MedIA heuristic measures closeness in size as the Euclidean distance between (w, h) and
    the disease's mean training box ``mean_size``, in the same pixels. Returns None when there is no box.

    Taught in 06_boxes_iobb.
    """
    if heuristic not in HEURISTICS:
        raise ValueError(f"heuristic must be one of {', '.join(HEURISTICS)}, not {heuristic!r}.")
    if len(boxes) == 0:
        return None
    if heuristic == "largest":
        return boxes.loc[boxes["area"].idxmax()]
    if heuristic == "mean_heat":
        return boxes.loc[boxes["mean_heat"].idxmax()]
    if mean_size is None:
        raise ValueError("the deep_media heuristic needs mean_size=(w, h): the mean training box of the disease.")
    mw, mh = _size(mean_size, "mean_size")
    if int(keep) < 1:
        raise ValueError(f"keep must be at least 1, not {keep!r}.")
    distance = np.hypot(boxes["w"] - mw, boxes["h"] - mh)
    closest = boxes.loc[distance.sort_values(kind="stable").index[: int(keep)]]
    return closest.loc[closest["mean_heat"].idxmax()]


# --------------------------------------------------------------------------------------------
# The T(IoBB) table
# --------------------------------------------------------------------------------------------


def _labels_default() -> list[str]:
    from helpers.datasets import BOX_LABELS

    return list(BOX_LABELS)


def published_iobb() -> pd.DataFrame:
    """Published T(IoBB) rows "NIH" (Wang 2017) and "Deep MedIA" (IoU), index (T, source), from
    helpers/data/manifests/published_iobb.json.

    Taught in 06_boxes_iobb.
    """
    from helpers.manifests import MANIFEST_DIR

    with open(MANIFEST_DIR / "published_iobb.json", encoding="utf-8") as f:
        data = json.load(f)
    rows = {}
    for t, sources in data["thresholds"].items():
        for source, values in sources.items():
            rows[(float(t), source)] = dict(zip(data["labels"], values))
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index = pd.MultiIndex.from_tuples(table.index, names=["T", "source"])
    table.attrs["sources"] = data["sources"]
    table.attrs["notes"] = data["notes"]
    return table


def canonical_labels(labels, what: str = "labels") -> list[str]:
    """Box labels spelled as BOX_LABELS: case-insensitive exact names, BBox_List's 'Infiltrate' -> 'Infiltration';
    DataError for others.

    Taught in 06_boxes_iobb.
    """
    from helpers.datasets import _BOX_SPELLINGS  # the one place the NIH spellings are kept

    valid = _labels_default()
    lookup = {name.lower(): name for name in valid}
    lookup.update({spelling.lower(): name for spelling, name in _BOX_SPELLINGS.items()})
    out, unknown = [], []
    for label in labels:
        name = lookup.get(str(label).strip().lower())
        out.append(name)
        if name is None and label not in unknown:
            unknown.append(label)
    if unknown:
        raise DataError(
            f"{what}: unknown box label(s) {', '.join(repr(u) for u in unknown[:6])}; the valid ones are "
            f"{', '.join(valid)} (any case; 'Infiltrate' is read as Infiltration). Fix the spelling or drop those rows."
        )
    return out


def iobb_table(results: pd.DataFrame, thresholds: Sequence[float] = T_IOBB, value: str = "iobb", name: str = "ours",
               labels: Iterable[str] | None = None, published: bool = False) -> pd.DataFrame:
    """Per disease, the fraction of images whose best box scores above (>) each threshold T (ChestX-ray8 layout); "no
    boxes" where none.

    ``results`` has one row per (image, disease) with columns ``label`` and ``value`` (e.g. "iobb" or
    "iou"), each in [0, 1]; an image whose model found no box must carry 0. A NaN is refused (DataError
    naming its row), never counted as 0 silently: it usually means a failed computation, not "no box".
    Labels are read case-insensitively ('Infiltrate' as Infiltration); an unknown label is refused.
    Several rows of one image and label (two truth boxes) count once, by their best value. A hit is
    value > T, strictly, as Wang et al. (ChestX-ray8, CVPR 2017) define correct localisation. Rows are
    (T, source); with ``published=True`` the NIH and Deep MedIA rows of published_iobb() sit under ours
    for the thresholds they report.

    Taught in 06_boxes_iobb.
    """
    missing = {"label", value} - set(results.columns)
    if missing:
        raise ValueError(f"results need the columns label and {value!r} (missing {sorted(missing)}).")
    thresholds = [float(t) for t in thresholds]
    if not thresholds or any(not 0.0 <= t < 1.0 for t in thresholds):
        raise ValueError(f"thresholds must lie in [0, 1) (a hit is a value > T), not {thresholds!r}.")
    labels = canonical_labels(labels, "labels") if labels is not None else _labels_default()
    scores = results.assign(label=canonical_labels(results["label"], "results['label']"))
    check_probabilities(
        scores[value].to_numpy(), f"results[{value!r}] (one value per row in [0, 1]; put 0 where no box was found)"
    )
    if "image_index" in scores.columns:
        scores = scores.groupby(["image_index", "label"], as_index=False)[value].max()
    values = scores[value].to_numpy(np.float64)
    rows = {}
    for t in thresholds:
        row = {}
        for label in labels:
            mask = (scores["label"] == label).to_numpy()
            row[label] = float((values[mask] > t).mean()) if mask.any() else NO_BOXES
        rows[(t, name)] = row
    table = pd.DataFrame.from_dict(rows, orient="index", dtype=object)[labels]
    if published:
        reference = published_iobb()
        extra = reference[reference.index.get_level_values("T").isin(thresholds)]
        extra = extra.reindex(columns=labels).astype(object).where(extra.reindex(columns=labels).notna(),
                                                                   "not reported")
        table = pd.concat([table, extra]).sort_index(level=0, sort_remaining=False)
        order = {name: 0, "Deep MedIA": 1, "NIH": 2}
        table = table.loc[sorted(table.index, key=lambda ix: (ix[0], order.get(ix[1], 3)))]
    table.index = pd.MultiIndex.from_tuples(table.index, names=["T", "source"])
    return table


def counts(results: pd.DataFrame, labels: Iterable[str] | None = None) -> pd.Series:
    """Number of (image, disease) pairs scored per disease, 0 where none: how much each table column rests on.

    Taught in 06_boxes_iobb.
    """
    labels = canonical_labels(labels, "labels") if labels is not None else _labels_default()
    results = results.assign(label=canonical_labels(results["label"], "results['label']"))
    keys = results.drop_duplicates(["image_index", "label"]) if "image_index" in results.columns else results
    return keys["label"].value_counts().reindex(labels, fill_value=0).rename("images")
