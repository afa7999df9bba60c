"""From pixels to objects: instance maps by watershed, matching by IoU, the Data Science Bowl AP, counts and their
intervals.

An instance (label) map is a 2-D integer array: 0 is background, each positive value one object.
Matching follows the 2018 Data Science Bowl: a predicted object hits a true one when their IoU is
*above* the threshold; at thresholds of 0.5 and more a pair is unique, below it the pairs are chosen by
the Hungarian algorithm on IoU.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy.optimize import linear_sum_assignment

from helpers import errors

DSB_THRESHOLDS = tuple(np.round(np.arange(0.5, 1.0, 0.05), 2))  # 0.5, 0.55, ..., 0.95


def _label_map(labels, what: str) -> np.ndarray:
    """``labels`` as a 2-D int64 array of whole numbers >= 0, or a DataError saying what it is instead."""
    array = np.asarray(labels)
    if array.dtype == bool:
        raise errors.DataError(
            f"{what}: a boolean mask, not an instance map; label its objects first (scipy.ndimage.label, or "
            "instances.classical_instances) so that each object has its own number."
        )
    values = errors.check_finite(array, what)
    if values.ndim != 2:
        raise errors.DataError(f"{what}: shape {values.shape}; an instance map is 2-D (height, width), "
                               "one image at a time.")
    if values.size and (values.min() < 0 or not np.array_equal(values, np.round(values))):
        raise errors.DataError(
            f"{what}: values from {values.min():g} to {values.max():g}, but an instance map holds whole numbers >= 0 "
            "(0 background, 1, 2, ... objects). Is it a probability map? Threshold and label it first."
        )
    return values.astype(np.int64)


def _pair(true_labels, pred_labels) -> tuple[np.ndarray, np.ndarray]:
    true = _label_map(true_labels, "true_labels (instance map)")
    pred = _label_map(pred_labels, "pred_labels (instance map)")
    if true.shape != pred.shape:
        raise ValueError(f"true_labels {true.shape} and pred_labels {pred.shape} must be maps of the same image "
                         "(same shape).")
    return true, pred


def relabel(labels) -> np.ndarray:
    """The same objects numbered 1..n in order of their old numbers (gaps closed), as int32.

    Taught in 08_cells_counting.
    """
    values = _label_map(labels, "labels (instance map)")
    if values.size == 0:
        return values.astype(np.int32)
    # by rank among the values present, not a table as long as the largest id (an id of 2**33 is a number, not 64 GB)
    ids, inverse = np.unique(values, return_inverse=True)
    return (inverse.reshape(values.shape) + (0 if ids[0] == 0 else 1)).astype(np.int32)


def count_instances(labels) -> int:
    """How many objects an instance map holds (distinct positive values).

    Taught in 08_cells_counting.
    """
    values = _label_map(labels, "labels (instance map)")
    return int(np.count_nonzero(np.unique(values)))


def nucleus_targets(labels, core_fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Training targets from an instance map: foreground, and each object's core (its pixels at least core_fraction of
    its deepest distance inside).

    Taught in 08_cells_counting.
    """
    from skimage.segmentation import find_boundaries

    if not 0 < core_fraction < 1:
        raise ValueError(f"core_fraction must be in (0, 1), not {core_fraction!r}.")
    values = relabel(labels).astype(np.int64)  # ids 1..n: the per-object table below is n long, whatever the ids were
    foreground = values > 0
    # touching objects are cut apart by their shared border, so each core lies inside one object
    inside = foreground & ~find_boundaries(values, mode="inner")
    depth = ndi.distance_transform_edt(inside)
    deepest = np.zeros(int(values.max()) + 1)
    ids = np.unique(values[foreground])
    if ids.size:
        deepest[ids] = ndi.maximum(depth, values, ids)
    cores = foreground & (depth >= np.maximum(core_fraction * deepest[values], 1.0))
    # an object too thin to have an inside keeps its whole mask as core
    lost = np.setdiff1d(ids, np.unique(values[cores]))
    cores |= np.isin(values, lost)
    return foreground.astype(np.float32), cores.astype(np.float32)


def _remove_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    labels = relabel(labels)
    if min_size > 1 and labels.max() > 0:
        sizes = np.bincount(labels.ravel())
        small = np.flatnonzero(sizes < min_size)
        labels = np.where(np.isin(labels, small[small > 0]), 0, labels)
    return relabel(labels)


def _check_min_size(min_size) -> int:
    if isinstance(min_size, bool) or not isinstance(min_size, (int, np.integer)) or min_size < 1:
        raise ValueError(f"min_size must be a whole number of pixels >= 1, not {min_size!r}.")
    return int(min_size)


def classical_instances(image, min_size: int = 8, min_distance: int = 3, smooth: float = 1.0) -> np.ndarray:
    """The no-learning baseline: Gaussian smoothing, Otsu threshold, distance transform, peaks as markers, watershed.

    Taught in 08_cells_counting.
    """
    from skimage.feature import peak_local_max
    from skimage.filters import threshold_otsu
    from skimage.segmentation import watershed

    min_size = _check_min_size(min_size)
    values = errors.check_finite(image, "image")
    if values.ndim != 2:
        raise errors.DataError(f"image: shape {values.shape}; pass one grey image (height, width).")
    if values.max() == values.min():
        return np.zeros(values.shape, np.int32)  # a flat image: no threshold, no objects
    smoothed = ndi.gaussian_filter(values, smooth) if smooth > 0 else values
    mask = ndi.binary_fill_holes(smoothed > threshold_otsu(smoothed))
    depth = ndi.distance_transform_edt(mask)
    components, _ = ndi.label(mask)
    peaks = peak_local_max(depth, min_distance=min_distance, labels=components, exclude_border=False)
    markers = np.zeros(values.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = watershed(-depth, markers, mask=mask)
    return _remove_small(labels, min_size)


def instances_from_maps(foreground, cores, threshold: float = 0.5, core_threshold: float = 0.5,
                        min_size: int = 8) -> np.ndarray:
    """Instances from predicted foreground and core probabilities: cores are the markers, the watershed grows them over
    the foreground.

    Taught in 08_cells_counting.
    """
    from skimage.segmentation import watershed

    min_size = _check_min_size(min_size)
    foreground = errors.check_probabilities(foreground, "foreground (probabilities)")
    cores = errors.check_probabilities(cores, "cores (probabilities)")
    if foreground.shape != cores.shape or foreground.ndim != 2:
        raise ValueError(f"foreground {foreground.shape} and cores {cores.shape} must be two maps of one image, "
                         "same 2-D shape.")
    for name, value in (("threshold", threshold), ("core_threshold", core_threshold)):
        if not 0 < value < 1:
            raise ValueError(f"{name} must be in (0, 1), not {value!r}.")
    mask = foreground > threshold
    markers, found = ndi.label((cores > core_threshold) & mask)
    # a foreground blob whose core the model missed is still one object
    blobs, _ = ndi.label(mask)
    orphan = np.setdiff1d(np.unique(blobs[mask]), np.unique(blobs[markers > 0]))
    for k, blob in enumerate(orphan, start=found + 1):
        markers[blobs == blob] = k
    labels = watershed(-cores, markers, mask=mask)
    return _remove_small(labels, min_size)


def iou_matrix(true_labels, pred_labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU of every (true, predicted) object pair from one contingency table: (iou (n_true, n_pred), true ids, predicted
    ids).

    Taught in 08_cells_counting.
    """
    true, pred = _pair(true_labels, pred_labels)
    true_ids, true_index = np.unique(true, return_inverse=True)
    pred_ids, pred_index = np.unique(pred, return_inverse=True)
    table = np.bincount(true_index.ravel() * len(pred_ids) + pred_index.ravel(),
                        minlength=len(true_ids) * len(pred_ids))
    table = table.reshape(len(true_ids), len(pred_ids)).astype(np.float64)
    keep_t, keep_p = true_ids > 0, pred_ids > 0
    inter = table[np.ix_(keep_t, keep_p)]
    union = table.sum(1)[keep_t][:, None] + table.sum(0)[keep_p][None, :] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return iou, true_ids[keep_t], pred_ids[keep_p]


class Match(NamedTuple):
    """Objects matched at one IoU threshold: counts, precision, recall, F1, the pairs, and which predictions hit.

    Taught in 08_cells_counting.
    """

    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    pairs: list  # (true id, predicted id, IoU)
    pred_ids: np.ndarray
    pred_hit: np.ndarray  # bool per predicted id: matched to a true object


def _hits(iou: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    if threshold >= 0.5:  # IoU > 0.5 pairs each object with at most one other: no choice to make
        return np.nonzero(iou > threshold)
    allowed = np.where(iou > threshold, iou, 0.0)
    rows, cols = linear_sum_assignment(allowed, maximize=True)
    keep = allowed[rows, cols] > 0
    return rows[keep], cols[keep]


def _check_threshold(threshold) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)) or not 0 <= threshold < 1:
        raise ValueError(f"threshold must be an IoU in [0, 1), not {threshold!r}.")
    return float(threshold)


def match_instances(true_labels, pred_labels, threshold: float = 0.5) -> Match:
    """Match predicted to true objects at IoU above ``threshold``: TP, FP, FN, precision, recall and F1 (1.0 when both
    maps are empty).

    Taught in 08_cells_counting.
    """
    threshold = _check_threshold(threshold)
    iou, true_ids, pred_ids = iou_matrix(true_labels, pred_labels)
    rows, cols = _hits(iou, threshold)
    tp = len(rows)
    fp, fn = len(pred_ids) - tp, len(true_ids) - tp
    precision = tp / (tp + fp) if tp + fp else float(fn == 0)
    recall = tp / (tp + fn) if tp + fn else float(fp == 0)
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    hit = np.zeros(len(pred_ids), bool)
    hit[cols] = True
    pairs = [(int(true_ids[r]), int(pred_ids[c]), float(iou[r, c])) for r, c in zip(rows, cols)]
    return Match(tp, fp, fn, precision, recall, f1, pairs, pred_ids, hit)


def average_precision(true_labels, pred_labels, thresholds=DSB_THRESHOLDS) -> float:
    """The Data Science Bowl 2018 score of one image: TP / (TP + FP + FN) averaged over IoU thresholds 0.5 to 0.95 (1.0
    when both are empty).

    Taught in 08_cells_counting.
    """
    thresholds = errors.check_finite(thresholds, "thresholds")
    if thresholds.ndim != 1 or thresholds.size == 0:
        raise ValueError("thresholds must be a non-empty list of IoU values, e.g. instances.DSB_THRESHOLDS.")
    for t in thresholds:
        _check_threshold(float(t))
    iou, true_ids, pred_ids = iou_matrix(true_labels, pred_labels)
    if not len(true_ids) and not len(pred_ids):
        return 1.0
    scores = []
    for t in thresholds:
        tp = len(_hits(iou, float(t))[0])
        scores.append(tp / (len(true_ids) + len(pred_ids) - tp))
    return float(np.mean(scores))


def count_errors(true_counts, pred_counts) -> pd.Series:
    """Count errors over images: mean absolute error, mean relative error (|error| / true count, images with objects),
    bias (mean predicted - true).

    Taught in 08_cells_counting.
    """
    true = errors.check_finite(true_counts, "true_counts")
    pred = errors.check_finite(pred_counts, "pred_counts")
    if true.shape != pred.shape or true.ndim != 1 or true.size == 0:
        raise ValueError(f"true_counts {true.shape} and pred_counts {pred.shape} must be two equal-length lists of "
                         "counts, one per image.")
    if (true < 0).any() or (pred < 0).any():
        raise errors.DataError("counts: a negative count was found; counts are numbers of objects, >= 0.")
    error = pred - true
    some = true > 0
    relative = float(np.mean(np.abs(error[some]) / true[some])) if some.any() else math.nan
    return pd.Series(
        {"MAE": float(np.mean(np.abs(error))), "relative error": relative, "bias": float(np.mean(error)),
         "images": int(true.size)})


def _check_level(level) -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)) or not 0 < level < 1:
        hint = (f" It looks like a percentage: pass {level / 100:g}."
                if isinstance(level, (int, float)) and 1 < level < 100 else "")
        raise ValueError(f"level must be a fraction in (0, 1), e.g. 0.9, not {level!r}.{hint}")
    return float(level)


def count_interval(counts, level: float = 0.9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From MC counts of shape (T, images): each image's mean count and the central ``level`` interval of the T counts.

    Taught in 08_cells_counting.
    """
    level = _check_level(level)
    counts = errors.check_finite(counts, "counts (T samples, images)")
    if counts.ndim != 2 or counts.shape[0] < 2:
        raise ValueError(f"counts must have shape (T >= 2 samples, images), not {counts.shape}.")
    tail = (1 - level) / 2
    return counts.mean(0), np.quantile(counts, tail, axis=0), np.quantile(counts, 1 - tail, axis=0)


def conformal_scale(true_counts, centre, spread, level: float = 0.9) -> float:
    """Split-conformal factor k from calibration images: centre +- k * spread covers ``level`` of them (finite-sample
    corrected).

    Taught in 08_cells_counting.
    """
    level = _check_level(level)
    true = errors.check_finite(true_counts, "true_counts")
    centre = errors.check_finite(centre, "centre")
    spread = errors.check_finite(spread, "spread")
    if not (true.shape == centre.shape == spread.shape) or true.ndim != 1:
        raise ValueError(f"true_counts {true.shape}, centre {centre.shape} and spread {spread.shape} must be "
                         "equal-length lists, one per image.")
    if (spread <= 0).any():
        raise errors.DataError(
            f"spread: {int((spread <= 0).sum())} value(s) <= 0, the first at image {int(np.argmax(spread <= 0))}; "
            "use a positive spread (e.g. np.maximum(std, 1): one object)."
        )
    scores = np.sort(np.abs(true - centre) / spread)
    rank = math.ceil((len(scores) + 1) * level - 1e-9)  # the tolerance: 10 * 0.9 must give rank 9, not 10
    if rank > len(scores):
        raise ValueError(
            f"{len(scores)} calibration image(s) are too few for a {level:.0%} interval: at least "
            f"{math.ceil(level / (1 - level) - 1e-9)} are needed."
        )
    return float(scores[rank - 1])


def coverage(true_counts, low, high) -> float:
    """Share of images whose true count lies inside [low, high].

    Taught in 08_cells_counting.
    """
    true = errors.check_finite(true_counts, "true_counts")
    low, high = errors.check_finite(low, "low"), errors.check_finite(high, "high")
    if not (true.shape == low.shape == high.shape) or true.ndim != 1 or true.size == 0:
        raise ValueError(f"true_counts {true.shape}, low {low.shape} and high {high.shape} must be equal-length lists, "
                         "one per image.")
    if (low > high).any():
        raise ValueError(f"low > high at image {int(np.argmax(low > high))}: pass the lower bound first.")
    return float(np.mean((low <= true) & (true <= high)))


def per_instance_mean(labels, values) -> np.ndarray:
    """Mean of a pixel map inside each object, in order of the object ids (e.g. mutual information per nucleus).

    Taught in 08_cells_counting.
    """
    labels = _label_map(labels, "labels (instance map)")
    values = errors.check_finite(values, "values (a map per pixel)")
    if values.shape != labels.shape:
        raise ValueError(f"values {values.shape} must have the shape of labels {labels.shape}.")
    ids = np.unique(labels)
    ids = ids[ids > 0]
    return np.asarray(ndi.mean(values, labels, ids), dtype=np.float64) if ids.size else np.zeros(0)


def touching_fraction(labels) -> float:
    """Share of objects that touch another object (8-neighbourhood): how clumped an image is.

    Taught in 08_cells_counting.
    """
    labels = _label_map(labels, "labels (instance map)")
    ids = np.unique(labels)
    n = int(np.count_nonzero(ids))
    if n == 0:
        return 0.0
    touching = set()
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a = labels[dy:, dx:] if dx >= 0 else labels[dy:, :dx]
        b = labels[: labels.shape[0] - dy, : labels.shape[1] - dx] if dx >= 0 else labels[: labels.shape[0] - dy, -dx:]
        differ = (a > 0) & (b > 0) & (a != b)
        touching.update(np.unique(a[differ]).tolist())
        touching.update(np.unique(b[differ]).tolist())
    return len(touching) / n


def instance_stability(reference, samples, threshold: float = 0.5) -> np.ndarray:
    """Per object of ``reference``: the share of the sample instance maps (e.g. one per dropout sample) holding a match
    at IoU above ``threshold``.

    Taught in 08_cells_counting.
    """
    threshold = _check_threshold(threshold)
    reference = _label_map(reference, "reference (instance map)")
    ids = np.unique(reference)
    ids = ids[ids > 0]
    if len(samples) == 0:
        raise ValueError("samples is empty: pass at least one sample instance map.")
    found = np.zeros(len(ids))
    for t, sample in enumerate(samples):
        if np.shape(sample) != reference.shape:
            raise ValueError(f"samples[{t}] has shape {np.shape(sample)}, but reference is {reference.shape}.")
        hit = match_instances(sample, reference, threshold)  # predictions = the reference's objects
        found += np.isin(ids, hit.pred_ids[hit.pred_hit])
    return found / len(samples)
